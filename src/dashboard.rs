//! The dashboard service behind `examples/dashboard`: the server's own figures at 10 Hz
//! (from its `ServerStats`, the counters its console and the `metrics` facade show),
//! jobs that report progress, and a few calls, for a browser page built on the
//! TypeScript client.
//!
//! `cargo xtask gen-ts` turns this file into
//! `examples/dashboard/web/src/generated/dashboard_service.ts`; keep every type the
//! service uses in this file.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use witrpc::DotNetType;
use witrpc::server::stats::{ServerStats, StatsSnapshot};

/// One sample of the server's own figures, as the dashboard charts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricsSample {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// CPU used by the server process over the last second, in percent of one core (0
    /// where the platform does not report it).
    pub cpu_percent: f64,
    /// Resident memory of the server process, MiB (0 where the platform does not report it).
    pub memory_mb: f64,
    /// Calls finished per second, over the last second.
    pub requests_per_second: f64,
    /// Clients connected to this server right now.
    pub connected_clients: i32,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStage {
    /// Accepted, not started.
    Queued,
    /// Working through its steps.
    Running,
    /// All steps done.
    Done,
}

/// Progress of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobProgress {
    /// The id `StartJob` returned.
    pub job_id: i32,
    /// 0–100.
    pub percent: f64,
    /// Where the job is.
    pub stage: JobStage,
}

/// What the server says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServerInfo {
    /// Service name.
    pub name: String,
    /// Server version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime_seconds: f64,
    /// Parameter format: `json` or `msgpack`.
    pub format: String,
    /// Whether messages are encrypted.
    pub encrypted: bool,
}

impl DotNetType for MetricsSample {
    fn stable_name() -> String {
        "WitRpc.Demo.MetricsSample".to_owned()
    }
    fn assembly() -> String {
        "WitRpc.Demo".to_owned()
    }
}

impl DotNetType for JobProgress {
    fn stable_name() -> String {
        "WitRpc.Demo.JobProgress".to_owned()
    }
    fn assembly() -> String {
        "WitRpc.Demo".to_owned()
    }
}

/// The dashboard contract.
#[witrpc::service(contract = "WitRpc.Demo.IDashboardService")]
pub trait DashboardService {
    /// Name, version, uptime and wire settings of the server.
    async fn get_info(&self) -> ServerInfo;
    /// Returns `a + b` (wrapping).
    async fn add(&self, a: i32, b: i32) -> i32;
    /// Starts a job of `steps` steps (1–1000), `step_ms` milliseconds each (0–10000);
    /// returns its id at once, then raises `JobProgress` per step and `JobCompleted`.
    async fn start_job(&self, steps: i32, step_ms: i32) -> Result<i32, String>;
    /// The last `count` (at most 600) metrics samples, oldest first.
    async fn history(&self, count: i32) -> Vec<MetricsSample>;

    /// A new sample of the server's figures (10 per second).
    #[event]
    fn metrics(&self, sample: MetricsSample);
    /// A job advanced.
    #[event]
    fn job_progress(&self, progress: JobProgress);
    /// A job finished after `elapsed_ms`.
    #[event]
    fn job_completed(&self, job_id: i32, elapsed_ms: f64);
}

/// Samples kept for `History`.
const HISTORY: usize = 600;

/// The dashboard implementation; clone it freely (state is shared).
#[derive(Debug, Clone)]
pub struct Dashboard {
    events: DashboardServiceEvents,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    started: Instant,
    format: String,
    encrypted: bool,
    next_job: AtomicI32,
    history: std::sync::Mutex<std::collections::VecDeque<MetricsSample>>,
}

impl Dashboard {
    /// A dashboard raising its events through `events`; `format` and `encrypted`
    /// describe the server's settings for `GetInfo`.
    pub fn new(events: DashboardServiceEvents, format: &str, encrypted: bool) -> Self {
        let shared = Shared {
            started: Instant::now(),
            format: format.to_owned(),
            encrypted,
            next_job: AtomicI32::new(1),
            history: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(HISTORY)),
        };
        Self { events, shared: Arc::new(shared) }
    }

    /// Raises `Metrics` every `period` until the process ends, with the figures of
    /// `stats` (the server's live counters, `WitServerBuilder::stats`).
    pub fn run_metrics(&self, period: Duration, stats: ServerStats) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            // Rates over the last second: CPU time comes in 10 ms ticks, too coarse for 100 ms.
            let mut window = std::collections::VecDeque::from([stats.snapshot()]);
            loop {
                ticker.tick().await;
                let now = stats.snapshot();
                let sample =
                    window.front().map_or_else(|| sample_between(&now, &now), |first| sample_between(first, &now));
                if window.len() * period.as_millis().max(1) as usize >= 1000 {
                    window.pop_front();
                }
                window.push_back(now);
                {
                    let mut history = this.shared.history.lock().unwrap_or_else(|e| e.into_inner());
                    if history.len() == HISTORY {
                        history.pop_front();
                    }
                    history.push_back(sample.clone());
                }
                if let Err(e) = this.events.metrics(sample) {
                    tracing::error!(error = %e, "cannot raise Metrics");
                }
            }
        });
    }
}

/// The figures between two snapshots of the server's counters.
fn sample_between(earlier: &StatsSnapshot, now: &StatsSnapshot) -> MetricsSample {
    let interval = now.since(earlier);
    let timestamp_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    MetricsSample {
        timestamp_ms,
        cpu_percent: interval.cpu_percent.unwrap_or(0.0),
        memory_mb: now.process.rss_bytes.map_or(0.0, |b| b as f64 / (1024.0 * 1024.0)),
        requests_per_second: interval.calls_per_second,
        connected_clients: i32::try_from(now.connections).unwrap_or(i32::MAX),
    }
}

impl DashboardService for Dashboard {
    async fn get_info(&self) -> ServerInfo {
        ServerInfo {
            name: "WitRpc.Demo.IDashboardService".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: self.shared.started.elapsed().as_secs_f64(),
            format: self.shared.format.clone(),
            encrypted: self.shared.encrypted,
        }
    }

    async fn add(&self, a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    async fn start_job(&self, steps: i32, step_ms: i32) -> Result<i32, String> {
        if !(1..=1000).contains(&steps) {
            return Err(format!("steps must be between 1 and 1000, got {steps}"));
        }
        if !(0..=10_000).contains(&step_ms) {
            return Err(format!("step_ms must be between 0 and 10000, got {step_ms}"));
        }
        let job_id = self.shared.next_job.fetch_add(1, Ordering::Relaxed);
        let events = self.events.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let raise = |percent: f64, stage: JobStage| events.job_progress(JobProgress { job_id, percent, stage });
            if let Err(e) = raise(0.0, JobStage::Queued) {
                tracing::error!(error = %e, "cannot raise JobProgress");
                return;
            }
            for step in 1..=steps {
                tokio::time::sleep(Duration::from_millis(step_ms as u64)).await;
                let stage = if step == steps { JobStage::Done } else { JobStage::Running };
                if let Err(e) = raise(100.0 * f64::from(step) / f64::from(steps), stage) {
                    tracing::error!(error = %e, "cannot raise JobProgress");
                    return;
                }
            }
            if let Err(e) = events.job_completed(job_id, started.elapsed().as_secs_f64() * 1000.0) {
                tracing::error!(error = %e, "cannot raise JobCompleted");
            }
        });
        Ok(job_id)
    }

    async fn history(&self, count: i32) -> Vec<MetricsSample> {
        let count = usize::try_from(count).unwrap_or(0).min(HISTORY);
        let history = self.shared.history.lock().unwrap_or_else(|e| e.into_inner());
        history.iter().skip(history.len().saturating_sub(count)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_the_servers_figures() {
        let stats = ServerStats::default();
        let a = stats.snapshot();
        let b = stats.snapshot();
        let s = sample_between(&a, &b);
        assert_eq!((s.requests_per_second, s.connected_clients), (0.0, 0));
        assert!(s.cpu_percent >= 0.0 && s.timestamp_ms > 0, "{s:?}");
        #[cfg(target_os = "linux")]
        assert!(s.memory_mb > 0.0, "{s:?}");
    }
}
