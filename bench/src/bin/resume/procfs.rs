//! CPU and TCP counters read from `/proc`: a process's utime + stime, the machine's busy
//! time, and `TcpExt` counters.

use std::process::Command;
use std::time::{Duration, Instant};

/// utime + stime of a process, in clock ticks.
pub(crate) fn cpu_ticks(pid: &str) -> Option<u64> {
    process_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime from the text of `/proc/<pid>/stat`.
fn process_ticks(stat: &str) -> Option<u64> {
    // The command name, in parentheses, may hold spaces and parentheses: read from the
    // last `)`. After it, state is field 3, utime field 14 and stime field 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
}

/// Busy clock ticks of the whole machine (every CPU: `/proc/stat` minus idle and iowait).
pub(crate) fn machine_busy_ticks() -> Option<u64> {
    busy_ticks(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// Busy ticks from the text of `/proc/stat`: its `cpu` line's user, nice, system, irq,
/// softirq and steal (guest time is counted inside user).
fn busy_ticks(stat: &str) -> Option<u64> {
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let ticks: Vec<u64> = cpu.split_whitespace().map(|t| t.parse().ok()).collect::<Option<_>>()?;
    let (idle, iowait) = (*ticks.get(3)?, ticks.get(4).copied().unwrap_or(0));
    Some(ticks.iter().take(8).sum::<u64>().saturating_sub(idle + iowait))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that cannot be read).
pub(crate) fn clock_ticks() -> (f64, bool) {
    let read = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0);
    read.map_or((100.0, false), |t| (t, true))
}

/// CPU used by one process over a window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuMark {
    pub(crate) at: Instant,
    pub(crate) ticks: u64,
}

impl CpuMark {
    pub(crate) fn now(pid: &str) -> Self {
        Self { at: Instant::now(), ticks: cpu_ticks(pid).unwrap_or(0) }
    }

    /// Cores used from `self` to `later`.
    pub(crate) fn cores_until(&self, later: &CpuMark, tck: f64) -> f64 {
        let secs = later.at.duration_since(self.at).as_secs_f64().max(1e-6);
        later.ticks.saturating_sub(self.ticks) as f64 / tck / secs
    }
}

/// Samples `pid` every 100 ms until `stop`; returns the peak cores of one sample window.
pub(crate) async fn sample_peak(pid: String, tck: f64, mut stop: tokio::sync::oneshot::Receiver<()>) -> f64 {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let (mut last, mut peak) = (CpuMark::now(&pid), 0.0f64);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = CpuMark::now(&pid);
                peak = peak.max(last.cores_until(&now, tck));
                last = now;
            }
            _ = &mut stop => return peak,
        }
    }
}

/// The machine's count of connections dropped because a listen queue was full
/// (`TcpExt: ListenOverflows` in /proc/net/netstat).
pub(crate) fn listen_overflows() -> Option<u64> {
    tcp_ext("ListenOverflows")
}

pub(crate) fn tcp_ext(name: &str) -> Option<u64> {
    netstat_value(&std::fs::read_to_string("/proc/net/netstat").ok()?, name)
}

/// Counter `name` of the `TcpExt:` lines (names, then values) of `/proc/net/netstat`.
fn netstat_value(text: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_read_utime_and_stime_past_an_odd_command_name() {
        let stat = "4242 (redis (a) b) S 1 4242 4242 0 -1 4194560 1234 0 0 0 37 12 0 0 20 0 5 0 100 0";
        assert_eq!(process_ticks(stat), Some(49));
        assert_eq!(process_ticks("4242 (short) S 1 2"), None);
        assert_eq!(process_ticks("no parenthesis"), None);
    }

    #[test]
    fn machine_busy_ticks_leave_out_idle_and_iowait() {
        let stat = "cpu  100 5 40 1000 7 3 2 1 0 0\ncpu0 50 2 20 500 3 1 1 0 0 0\n";
        assert_eq!(busy_ticks(stat), Some(100 + 5 + 40 + 3 + 2 + 1));
        assert_eq!(busy_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn netstat_counters_are_found_by_name() {
        let text = "TcpExt: SyncookiesSent ListenOverflows TCPSynRetrans\nTcpExt: 1 363 3525\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(netstat_value(text, "ListenOverflows"), Some(363));
        assert_eq!(netstat_value(text, "TCPSynRetrans"), Some(3525));
        assert_eq!(netstat_value(text, "InNoRoutes"), None, "only TcpExt lines");
        assert_eq!(netstat_value(text, "Missing"), None);
    }
}
