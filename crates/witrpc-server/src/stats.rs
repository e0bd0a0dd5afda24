//! [`ServerStats`]: the server's own counters, the one source of its figures.
//!
//! Every figure is recorded once, by the functions in this file, at the place where the
//! event happens (a connection opens, a message is read, a call finishes, an event is
//! queued). Each recording function updates the atomics here *and* feeds the
//! [`metrics`](crate::metrics) facade, so what a Prometheus exporter shows and what
//! [`WitServer::stats`](crate::WitServer::stats) (or a console) shows cannot disagree.
//!
//! Counters are relaxed atomics: cheap on the hot path, exact in total, and a snapshot
//! is a set of independent reads (two figures of one snapshot may be a few events
//! apart). Memory is fixed: the latency histogram has [`LatencyHistogram::BUCKETS`]
//! buckets whatever the load.
//!
//! Rates (calls per second, CPU %) and interval percentiles are differences between two
//! snapshots: [`StatsSnapshot::since`] computes them for whoever samples (the console
//! samples once a second).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Live counters of one server, shared by its connections. Cheap to clone (all clones
/// see the same numbers); [`ServerStats::snapshot`] reads them.
///
/// Get it before the server is built with
/// [`WitServerBuilder::stats`](crate::WitServerBuilder::stats) (e.g. for a console
/// mounted on the transport) or from a running server with
/// [`WitServer::live_stats`](crate::WitServer::live_stats).
///
/// ```
/// let stats = witrpc_server::stats::ServerStats::default();
/// let snapshot = stats.snapshot();
/// assert_eq!(snapshot.calls, 0);
/// assert_eq!(snapshot.connections_in_handshake(), 0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ServerStats(Arc<Counters>);

/// The counters, grouped by who writes them, one group per cache line (128 bytes, the
/// prefetch pair on x86 and the line on Apple silicon): a core counting calls does not
/// steal the line another core needs to count a read.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) life: Lifecycle,
    pub(crate) read: ReadPath,
    write: WritePath,
    calls: Calls,
    queues: Queues,
    latency: LatencyHistogram,
}

/// Connections: rare writes.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Lifecycle {
    active: AtomicUsize,
    authorized: AtomicUsize,
    pub(crate) accepted: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
}

/// Written by connection tasks as they read.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ReadPath {
    pub(crate) messages_in: AtomicU64,
    bytes_in: AtomicU64,
}

/// Written by connection tasks as they write.
#[derive(Debug, Default)]
#[repr(align(128))]
struct WritePath {
    messages_out: AtomicU64,
    bytes_out: AtomicU64,
}

/// Written as calls finish (connection tasks and call tasks).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Calls {
    calls: AtomicU64,
    call_errors: AtomicU64,
}

/// Written by emitters and by connection tasks draining their queues.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Queues {
    events_out: AtomicU64,
    events_dropped: AtomicU64,
    /// Signed: a decrement may be recorded before the increment it matches is visible.
    outbound_bytes: AtomicI64,
}

impl ServerStats {
    /// Reads every counter now, with the process figures (CPU time, RSS) where the
    /// platform has them.
    pub fn snapshot(&self) -> StatsSnapshot {
        let c = &*self.0;
        let active = c.life.active.load(Ordering::Relaxed);
        StatsSnapshot {
            taken: Instant::now(),
            connections: active,
            // Read after `active`: a connection is counted authorized only while open.
            connections_authorized: c.life.authorized.load(Ordering::Relaxed).min(active),
            connections_accepted: c.life.accepted.load(Ordering::Relaxed),
            auth_failures: c.life.auth_failures.load(Ordering::Relaxed),
            messages_in: c.read.messages_in.load(Ordering::Relaxed),
            messages_out: c.write.messages_out.load(Ordering::Relaxed),
            bytes_in: c.read.bytes_in.load(Ordering::Relaxed),
            bytes_out: c.write.bytes_out.load(Ordering::Relaxed),
            calls: c.calls.calls.load(Ordering::Relaxed),
            call_errors: c.calls.call_errors.load(Ordering::Relaxed),
            events_out: c.queues.events_out.load(Ordering::Relaxed),
            events_dropped: c.queues.events_dropped.load(Ordering::Relaxed),
            slow_consumer_disconnects: c.life.slow_consumers.load(Ordering::Relaxed),
            outbound_queue_bytes: u64::try_from(c.queues.outbound_bytes.load(Ordering::Relaxed)).unwrap_or(0),
            latency: c.latency.counts(),
            process: ProcessFigures::read(),
        }
    }

    /// One total, without reading the rest.
    pub(crate) fn counter(&self, which: fn(&Counters) -> &AtomicU64) -> u64 {
        which(&self.0).load(Ordering::Relaxed)
    }

    pub(crate) fn connections(&self) -> usize {
        self.0.life.active.load(Ordering::Relaxed)
    }

    pub(crate) fn connection_opened(&self) {
        self.0.life.active.fetch_add(1, Ordering::Relaxed);
        self.0.life.accepted.fetch_add(1, Ordering::Relaxed);
        crate::metrics::connection_opened();
    }

    /// A connection ended; `authorized` says whether it had authorized.
    pub(crate) fn connection_closed(&self, authorized: bool) {
        if authorized {
            self.0.life.authorized.fetch_sub(1, Ordering::Relaxed);
        }
        self.0.life.active.fetch_sub(1, Ordering::Relaxed);
        crate::metrics::connection_closed();
    }

    pub(crate) fn authorized(&self) {
        self.0.life.authorized.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn auth_failed(&self) {
        self.0.life.auth_failures.fetch_add(1, Ordering::Relaxed);
        crate::metrics::auth_failed();
    }

    /// A WitRPC message of `len` bytes was read.
    pub(crate) fn message_in(&self, len: usize) {
        self.0.read.messages_in.fetch_add(1, Ordering::Relaxed);
        self.0.read.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
        crate::metrics::message_in();
    }

    /// A WitRPC message of `len` bytes was handed to the transport.
    pub(crate) fn message_out(&self, len: usize) {
        self.0.write.messages_out.fetch_add(1, Ordering::Relaxed);
        self.0.write.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
        crate::metrics::message_out();
    }

    /// A call finished with `status` after `elapsed`.
    pub(crate) fn call_finished(&self, method: &'static str, status: i32, elapsed: Duration) {
        self.0.calls.calls.fetch_add(1, Ordering::Relaxed);
        if status != 200 {
            self.0.calls.call_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.0.latency.record(elapsed);
        crate::metrics::request(method, status, elapsed);
    }

    /// An event was queued to one connection; `dropped` older ones were dropped or
    /// replaced by its policy to make room.
    pub(crate) fn event_queued(&self, dropped: usize) {
        self.0.queues.events_out.fetch_add(1, Ordering::Relaxed);
        if dropped > 0 {
            self.0.queues.events_dropped.fetch_add(dropped as u64, Ordering::Relaxed);
            crate::metrics::events_dropped(dropped as u64);
        }
    }

    pub(crate) fn slow_consumer(&self) {
        self.0.life.slow_consumers.fetch_add(1, Ordering::Relaxed);
        crate::metrics::slow_consumer();
    }

    /// The bytes waiting in outbound queues changed by `delta`.
    pub(crate) fn outbound_bytes(&self, delta: i64) {
        self.0.queues.outbound_bytes.fetch_add(delta, Ordering::Relaxed);
        crate::metrics::outbound_bytes(delta);
    }
}

/// The server's counters at one moment: totals since the server was built, gauges now.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// When the snapshot was taken.
    pub taken: Instant,
    /// Connections open now (upgraded, authorized or not).
    pub connections: usize,
    /// Connections open now that have authorized.
    pub connections_authorized: usize,
    /// Connections accepted since the server was built.
    pub connections_accepted: u64,
    /// Authorizations refused.
    pub auth_failures: u64,
    /// WitRPC messages read (all connections).
    pub messages_in: u64,
    /// WitRPC messages written (responses, events, handshake answers).
    pub messages_out: u64,
    /// Bytes of the WitRPC messages read, as they came off the transport (sealed when
    /// encrypted; WebSocket framing and HTTP not included).
    pub bytes_in: u64,
    /// Bytes of the WitRPC messages written, as handed to the transport.
    pub bytes_out: u64,
    /// Calls finished (any status).
    pub calls: u64,
    /// Calls finished with a status other than 200.
    pub call_errors: u64,
    /// Events queued to connections (one per receiving connection); those a
    /// `DropOldest` / `CoalesceLatest` policy later dropped are also in `events_dropped`.
    pub events_out: u64,
    /// Events dropped or replaced by a `DropOldest` / `CoalesceLatest` policy.
    pub events_dropped: u64,
    /// Clients disconnected because they did not read their events fast enough.
    pub slow_consumer_disconnects: u64,
    /// Bytes waiting in the outbound queues of all connections now.
    pub outbound_queue_bytes: u64,
    /// Call latencies since the server was built.
    pub latency: LatencyCounts,
    /// CPU time and memory of the whole process, where the platform reports them.
    pub process: ProcessFigures,
}

impl StatsSnapshot {
    /// Connections open that have not authorized yet (in the handshake).
    pub fn connections_in_handshake(&self) -> usize {
        self.connections - self.connections_authorized
    }

    /// Rates and interval figures between `earlier` and this snapshot.
    ///
    /// ```
    /// let stats = witrpc_server::stats::ServerStats::default();
    /// let a = stats.snapshot();
    /// let b = stats.snapshot();
    /// let interval = b.since(&a);
    /// assert_eq!(interval.calls_per_second, 0.0);
    /// assert_eq!(interval.latency_p50, None); // no call in the interval
    /// ```
    pub fn since(&self, earlier: &StatsSnapshot) -> Interval {
        let elapsed = self.taken.saturating_duration_since(earlier.taken);
        let seconds = elapsed.as_secs_f64();
        let rate = |now: u64, then: u64| if seconds > 0.0 { now.saturating_sub(then) as f64 / seconds } else { 0.0 };
        let latency = self.latency.since(&earlier.latency);
        let cpu_percent = match (self.process.cpu_time, earlier.process.cpu_time) {
            (Some(now), Some(then)) if seconds > 0.0 => Some(now.saturating_sub(then).as_secs_f64() / seconds * 100.0),
            _ => None,
        };
        Interval {
            elapsed,
            calls_per_second: rate(self.calls, earlier.calls),
            events_per_second: rate(self.events_out, earlier.events_out),
            bytes_in_per_second: rate(self.bytes_in, earlier.bytes_in),
            bytes_out_per_second: rate(self.bytes_out, earlier.bytes_out),
            latency_p50: latency.quantile(0.5),
            latency_p99: latency.quantile(0.99),
            cpu_percent,
        }
    }
}

/// What happened between two snapshots ([`StatsSnapshot::since`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Interval {
    /// Time between the snapshots.
    pub elapsed: Duration,
    /// Calls finished per second.
    pub calls_per_second: f64,
    /// Events queued to connections per second.
    pub events_per_second: f64,
    /// Message bytes read per second.
    pub bytes_in_per_second: f64,
    /// Message bytes written per second.
    pub bytes_out_per_second: f64,
    /// Median latency of the calls that finished in the interval (the upper edge of its
    /// histogram bucket: at most 25% high); `None` without calls.
    pub latency_p50: Option<Duration>,
    /// 99th-percentile latency of the interval's calls, as for `latency_p50`.
    pub latency_p99: Option<Duration>,
    /// CPU time of the process over wall time, in percent (100 = one core busy);
    /// `None` where the platform does not report CPU time.
    pub cpu_percent: Option<f64>,
}

/// A fixed-size latency histogram: [`Self::BUCKETS`] buckets on a log scale, four per
/// power of two of microseconds (so a bucket's upper edge is at most 25% above its lower one), from 1 µs
/// to about two hours; longer calls land in the last bucket. Recording is one relaxed
/// atomic add; memory never grows.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LatencyHistogram::BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { buckets: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
}

impl LatencyHistogram {
    /// Number of buckets.
    pub const BUCKETS: usize = 128;

    /// Counts one latency.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn counts(&self) -> LatencyCounts {
        LatencyCounts(std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)))
    }
}

/// The bucket counts of a [`LatencyHistogram`] at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyCounts([u64; LatencyHistogram::BUCKETS]);

impl LatencyCounts {
    /// Latencies counted.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The counts recorded after `earlier` (bucket by bucket).
    pub fn since(&self, earlier: &LatencyCounts) -> LatencyCounts {
        LatencyCounts(std::array::from_fn(|i| self.0[i].saturating_sub(earlier.0[i])))
    }

    /// The latency at or below which a fraction `q` (0–1) of the counted latencies lie,
    /// as the upper edge of that bucket; `None` when nothing was counted.
    ///
    /// ```
    /// use std::time::Duration;
    /// let histogram = witrpc_server::stats::LatencyHistogram::default();
    /// for _ in 0..99 { histogram.record(Duration::from_micros(100)); }
    /// histogram.record(Duration::from_millis(50));
    /// let counts = histogram.counts();
    /// let p50 = counts.quantile(0.5).unwrap();
    /// assert!(p50 >= Duration::from_micros(100) && p50 < Duration::from_micros(120));
    /// assert!(counts.quantile(1.0).unwrap() >= Duration::from_millis(50));
    /// ```
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.0.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_micros(upper_edge(i)));
            }
        }
        Some(Duration::from_micros(upper_edge(LatencyHistogram::BUCKETS - 1)))
    }
}

/// Buckets 0–3 hold 0–3 µs exactly; from 4 µs on, four buckets per power of two.
fn bucket_of(micros: u64) -> usize {
    if micros < 4 {
        return micros as usize;
    }
    let octave = 63 - micros.leading_zeros() as usize; // 2 for 4..8
    let sub = ((micros >> (octave - 2)) & 3) as usize;
    ((octave - 1) * 4 + sub).min(LatencyHistogram::BUCKETS - 1)
}

/// The smallest latency (µs) of bucket `i`.
fn lower_edge(i: usize) -> u64 {
    if i < 4 {
        return i as u64;
    }
    let octave = i / 4 + 1;
    let sub = (i % 4) as u64;
    (4 + sub) << (octave - 2)
}

/// The first latency (µs) above bucket `i`.
fn upper_edge(i: usize) -> u64 {
    lower_edge(i + 1)
}

/// The process's CPU time and resident memory. Read from `/proc/self` on Linux; `None`
/// elsewhere (and if `/proc` cannot be read), never a panic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessFigures {
    /// User plus system CPU time of the whole process since it started
    /// (`/proc/self/stat` fields `utime` + `stime`, in clock ticks of 1/100 s: Linux
    /// reports these in `USER_HZ`, which is 100 on every architecture it supports).
    pub cpu_time: Option<Duration>,
    /// Resident set size in bytes (`VmRSS` of `/proc/self/status`, which the kernel
    /// reports in KiB, so no page size is assumed).
    pub rss_bytes: Option<u64>,
}

impl ProcessFigures {
    /// Reads the figures of this process now.
    pub fn read() -> Self {
        #[cfg(target_os = "linux")]
        {
            Self {
                cpu_time: std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_cpu_time(&s)),
                rss_bytes: std::fs::read_to_string("/proc/self/status").ok().and_then(|s| parse_rss(&s)),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Self::default()
        }
    }
}

/// `utime + stime` of a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may contain spaces and `)`, so fields are counted after the last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_cpu_time(stat: &str) -> Option<Duration> {
    const USER_HZ: u64 = 100;
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so utime (14) is 11 and stime (15) 12.
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks = utime.checked_add(stime)?;
    Some(Duration::from_secs(ticks / USER_HZ) + Duration::from_millis(ticks % USER_HZ * (1000 / USER_HZ)))
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for i in 0..LatencyHistogram::BUCKETS - 1 {
            assert!(lower_edge(i) < lower_edge(i + 1), "bucket {i}");
            assert_eq!(bucket_of(lower_edge(i)), i, "lower edge of {i}");
            assert_eq!(bucket_of(upper_edge(i) - 1), i, "last value of {i}");
        }
        // The widest bucket spans at most a quarter of its lower edge (plus one below 4 µs).
        for i in 4..LatencyHistogram::BUCKETS - 1 {
            assert!(upper_edge(i) - lower_edge(i) <= lower_edge(i) / 4, "bucket {i}");
        }
    }

    #[test]
    fn the_histogram_is_bounded_whatever_it_records() {
        let h = LatencyHistogram::default();
        for d in [Duration::ZERO, Duration::from_nanos(1), Duration::from_secs(86_400 * 365), Duration::MAX] {
            h.record(d);
        }
        let counts = h.counts();
        assert_eq!(counts.total(), 4);
        assert_eq!(counts.0.len(), LatencyHistogram::BUCKETS);
        assert_eq!(counts.0[LatencyHistogram::BUCKETS - 1], 2, "very long calls share the last bucket");
        assert_eq!(counts.0[0], 2);
        assert_eq!(std::mem::size_of::<LatencyHistogram>(), LatencyHistogram::BUCKETS * 8);
    }

    #[test]
    fn interval_percentiles_cover_only_the_interval() {
        let stats = ServerStats::default();
        for _ in 0..100 {
            stats.call_finished("Slow", 200, Duration::from_millis(500));
        }
        let before = stats.snapshot();
        for _ in 0..98 {
            stats.call_finished("Fast", 200, Duration::from_micros(200));
        }
        stats.call_finished("Fast", 200, Duration::from_millis(10));
        stats.call_finished("Fast", 400, Duration::from_millis(10));
        let after = stats.snapshot();
        let interval = after.since(&before);
        let p50 = interval.latency_p50.unwrap();
        assert!(p50 >= Duration::from_micros(200) && p50 < Duration::from_micros(250), "{p50:?}");
        let p99 = interval.latency_p99.unwrap();
        assert!(p99 >= Duration::from_millis(10) && p99 < Duration::from_millis(12), "{p99:?}");
        assert_eq!((after.calls, after.call_errors), (200, 1));
        assert_eq!(
            after.latency.quantile(0.75),
            Some(Duration::from_micros(upper_edge(bucket_of(500_000)))),
            "all time"
        );
    }

    #[test]
    fn rates_divide_by_the_time_between_snapshots() {
        let stats = ServerStats::default();
        let mut before = stats.snapshot();
        for _ in 0..10 {
            stats.call_finished("M", 200, Duration::from_micros(5));
            stats.message_in(100);
            stats.message_out(40);
        }
        stats.event_queued(0);
        let mut after = stats.snapshot();
        before.taken = after.taken - Duration::from_secs(2);
        after.process.cpu_time = Some(Duration::from_millis(1500));
        before.process.cpu_time = Some(Duration::from_millis(500));
        let i = after.since(&before);
        assert_eq!(i.calls_per_second, 5.0);
        assert_eq!(i.bytes_in_per_second, 500.0);
        assert_eq!(i.bytes_out_per_second, 200.0);
        assert_eq!(i.events_per_second, 0.5);
        assert_eq!(i.cpu_percent, Some(50.0));
        // The same snapshot twice: no time passed, no rate (not a division by zero).
        assert_eq!(after.since(&after).calls_per_second, 0.0);
    }

    #[test]
    fn connections_are_split_into_authorized_and_in_handshake() {
        let stats = ServerStats::default();
        stats.connection_opened();
        stats.connection_opened();
        stats.authorized();
        let s = stats.snapshot();
        assert_eq!((s.connections, s.connections_authorized, s.connections_in_handshake()), (2, 1, 1));
        stats.connection_closed(true);
        stats.connection_closed(false);
        let s = stats.snapshot();
        assert_eq!((s.connections, s.connections_authorized, s.connections_accepted), (0, 0, 2));
    }

    #[test]
    fn the_outbound_gauge_never_reads_negative() {
        let stats = ServerStats::default();
        stats.outbound_bytes(-10);
        assert_eq!(stats.snapshot().outbound_queue_bytes, 0);
        stats.outbound_bytes(25);
        assert_eq!(stats.snapshot().outbound_queue_bytes, 15);
    }

    /// A `metrics` recorder that sums what it is fed, per metric name (counters: the
    /// increments; gauges: the net change; histograms: the number of values).
    #[derive(Default)]
    struct Tallies(Mutex<HashMap<String, Arc<Tally>>>);

    #[derive(Default)]
    struct Tally(Mutex<f64>);

    impl Tally {
        fn add(&self, v: f64) {
            *self.0.lock().unwrap() += v;
        }
    }
    impl metrics::CounterFn for Tally {
        fn increment(&self, value: u64) {
            self.add(value as f64);
        }
        fn absolute(&self, _: u64) {}
    }
    impl metrics::GaugeFn for Tally {
        fn increment(&self, value: f64) {
            self.add(value);
        }
        fn decrement(&self, value: f64) {
            self.add(-value);
        }
        fn set(&self, _: f64) {}
    }
    impl metrics::HistogramFn for Tally {
        fn record(&self, _: f64) {
            self.add(1.0);
        }
    }

    impl Tallies {
        fn tally(&self, key: &metrics::Key) -> Arc<Tally> {
            self.0.lock().unwrap().entry(key.name().to_owned()).or_default().clone()
        }
        fn get(&self, name: &str) -> f64 {
            self.0.lock().unwrap().get(name).map_or(0.0, |t| *t.0.lock().unwrap())
        }
    }

    impl metrics::Recorder for Tallies {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            metrics::Counter::from_arc(self.tally(key))
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::from_arc(self.tally(key))
        }
        fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::from_arc(self.tally(key))
        }
    }

    #[test]
    fn the_metrics_facade_is_fed_by_the_same_recordings() {
        use crate::metrics as m;
        let recorder = Tallies::default();
        let stats = ServerStats::default();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                stats.connection_opened();
            }
            stats.authorized();
            stats.connection_closed(true);
            stats.auth_failed();
            for len in [10, 20, 30] {
                stats.message_in(len);
            }
            stats.message_out(7);
            stats.call_finished("Add", 200, Duration::from_micros(50));
            stats.call_finished("Fail", 500, Duration::from_millis(2));
            stats.event_queued(0);
            stats.event_queued(2);
            stats.slow_consumer();
            stats.outbound_bytes(100);
            stats.outbound_bytes(-40);
        });
        let s = stats.snapshot();
        assert_eq!(recorder.get(m::CONNECTIONS_ACTIVE), s.connections as f64);
        assert_eq!(recorder.get(m::CONNECTIONS_TOTAL), s.connections_accepted as f64);
        assert_eq!(recorder.get(m::AUTH_FAILURES), s.auth_failures as f64);
        assert_eq!(recorder.get(m::MESSAGES_IN), s.messages_in as f64);
        assert_eq!(recorder.get(m::MESSAGES_OUT), s.messages_out as f64);
        assert_eq!(recorder.get(m::REQUEST_DURATION), s.calls as f64);
        assert_eq!(recorder.get(m::EVENTS_DROPPED), s.events_dropped as f64);
        assert_eq!(recorder.get(m::SLOW_CONSUMERS), s.slow_consumer_disconnects as f64);
        assert_eq!(recorder.get(m::OUTBOUND_BYTES), s.outbound_queue_bytes as f64);
        assert_eq!((s.connections, s.messages_in, s.bytes_in, s.calls, s.outbound_queue_bytes), (2, 3, 60, 2, 60));
    }

    #[test]
    fn proc_files_are_parsed_and_bad_ones_give_none() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 130 0 0 20 0 9 0 1234 \
                    100000000 2000 18446744073709551615";
        assert_eq!(parse_cpu_time(stat), Some(Duration::from_millis(3800)));
        assert_eq!(parse_cpu_time("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_time("garbage"), None);
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads:\t9\n";
        assert_eq!(parse_rss(status), Some(2 * 1024 * 1024));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert_eq!(parse_rss("VmRSS:\tlots kB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_memory() {
        let p = ProcessFigures::read();
        assert!(p.rss_bytes.is_some_and(|b| b > 0));
        assert!(p.cpu_time.is_some());
    }
}
