//! The live console (feature `console`): a page that charts the server's own figures,
//! mounted at a path of the server's port and guarded by a token of its own.
//!
//! ```no_run
//! use witrpc_server::WitServerBuilder;
//! use witrpc_server_websocket::console::ConsoleOptions;
//! use witrpc_server_websocket::{WebSocketOptions, WebSocketServerExt};
//! # fn demo(service: impl witrpc_core::Service) -> Result<(), witrpc_server::ServerError> {
//! let server = WitServerBuilder::new()
//!     .with_service(service)
//!     .with_websocket("http://127.0.0.1:5000/ws", 100)
//!     .with_access_token("app-token")
//!     // http://127.0.0.1:5000/console/#token=console-secret
//!     .with_console("/console", ConsoleOptions::new("console-secret"))
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! What is served under the mount path `P`:
//!
//! | request | answer |
//! |---|---|
//! | `GET P` | 308 to `P/` (so the page's relative links resolve) |
//! | `GET P/`, `P/console.js`, `P/console.css` | the page, compiled into the binary; public (it holds no figures) |
//! | `GET P/figures?after=N` with `Authorization: Bearer <console token>` | JSON: the samples newer than sequence number `N` |
//! | `P/figures` without the token, or with another one | **401** |
//! | any other path | not the console's: the application's handler answers |
//!
//! The page takes the token from the URL fragment (`P/#token=...`, which browsers do not
//! send to the server) or a form, and polls `P/figures` once per sampling interval.
//!
//! **Why HTTP polling, not a second WitRPC endpoint.** A server has one transport, one
//! WebSocket path and one access-token validator; a second WitRPC endpoint guarded by a
//! different token would mean routing upgrades to a second server inside the accept
//! path. The page only needs a few numbers a second, one way: a `GET` with a bearer
//! token is enough, needs no client library in the page, and keeps the console apart
//! from the application's own token and contracts.
//!
//! **Sampling.** Figures are sampled lazily: an authorized `figures` request takes a new
//! sample when the last one is at least one interval old (default 1 s), so several
//! open pages share the same samples, and a console nobody watches costs nothing. Rates
//! and latency percentiles are computed between consecutive samples
//! ([`witrpc_server::stats::StatsSnapshot::since`]). At most
//! [`ConsoleOptions::with_history`] samples are kept.
//!
//! The figures of one sample (JSON field: meaning, source):
//!
//! | field | meaning | source |
//! |---|---|---|
//! | `seq`, `t` | sequence number, Unix time (ms) | the sampler |
//! | `connections_authorized` | open connections that have authorized | `ServerStats` |
//! | `connections_in_handshake` | open connections not authorized yet | `ServerStats` |
//! | `pending_upgrades` | TCP connections still in the HTTP phase | [`crate::WebSocketStats`] |
//! | `calls_total`, `calls_per_second` | calls finished (any status) | `ServerStats`, sampler |
//! | `call_errors_total` | calls with a status other than 200 | `ServerStats` |
//! | `latency_p50_ms`, `latency_p99_ms` | latency of the interval's calls (`null` without calls) | `ServerStats` histogram |
//! | `events_total`, `events_per_second` | events queued to connections (one per receiver) | `ServerStats` |
//! | `bytes_in_total`, `bytes_out_total` (+ `_per_second`) | WitRPC message bytes read / written | `ServerStats` |
//! | `outbound_queue_bytes` | bytes waiting in the server's per-connection queues | `ServerStats` |
//! | `write_buffered_bytes` | encoded bytes waiting in the transport's write buffers | [`crate::WebSocketStats`] |
//! | `slow_consumer_disconnects` | clients closed for not reading their events | `ServerStats` |
//! | `cpu_percent` | process CPU over the interval, 100 = one core (`null` off Linux) | `/proc/self/stat` |
//! | `rss_bytes` | resident memory of the process (`null` off Linux) | `/proc/self/status` |

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};
use witrpc_server::constant_time_eq;
use witrpc_server::stats::{ServerStats, StatsSnapshot};

use crate::WebSocketStats;

/// The console's page, compiled in.
const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// Most samples a console may keep (one hour at the default interval).
const MAX_HISTORY: usize = 3600;

/// Settings of a console mounted with
/// [`WebSocketOptions::with_console`](crate::WebSocketOptions::with_console).
#[derive(Clone)]
pub struct ConsoleOptions {
    token: Option<String>,
    interval: Duration,
    history: usize,
}

impl std::fmt::Debug for ConsoleOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("interval", &self.interval)
            .field("history", &self.history)
            .finish()
    }
}

impl ConsoleOptions {
    /// A console whose figures need `token` (sent by the page as
    /// `Authorization: Bearer <token>`). Keep it different from the application's
    /// access token: the console never accepts the application's token, only this one.
    /// An empty token refuses every request.
    pub fn new(token: impl Into<String>) -> Self {
        Self { token: Some(token.into()), interval: Duration::from_secs(1), history: 300 }
    }

    /// A console whose figures anyone who reaches the port may read (for a demo on
    /// localhost). The figures show load and traffic, not data; still, prefer
    /// [`ConsoleOptions::new`] on a network.
    pub fn without_token() -> Self {
        Self { token: None, ..Self::new("") }
    }

    /// Time between samples (default 1 s, at least 100 ms).
    pub fn with_sample_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Samples kept for a page that opens late (default 300, at most 3600, at least 1).
    pub fn with_history(mut self, samples: usize) -> Self {
        self.history = samples.clamp(1, MAX_HISTORY);
        self
    }
}

/// One sample as the page receives it.
#[derive(Debug, Clone)]
struct Sample {
    seq: u64,
    unix_ms: u64,
    snapshot: StatsSnapshot,
    pending_upgrades: usize,
    write_buffered: usize,
    /// Rates since the previous sample; `None` for the first one.
    interval: Option<witrpc_server::stats::Interval>,
}

#[derive(Debug)]
struct Sampler {
    samples: VecDeque<Sample>,
    next_seq: u64,
}

/// A mounted console: answers the requests under its path.
#[derive(Debug)]
pub(crate) struct Console {
    /// The mount path without a trailing slash (`""` at the root).
    base: String,
    options: ConsoleOptions,
    stats: ServerStats,
    transport: WebSocketStats,
    sampler: Mutex<Sampler>,
}

impl Console {
    pub(crate) fn new(path: &str, options: ConsoleOptions, stats: ServerStats, transport: WebSocketStats) -> Self {
        let base = format!("/{}", path.trim_matches('/'));
        let base = if base == "/" { String::new() } else { base };
        if options.token.as_deref() == Some("") {
            tracing::warn!(path = %base, "the console token is empty: every figures request will be refused");
        }
        let history = options.history;
        Self {
            base,
            options,
            stats,
            transport,
            sampler: Mutex::new(Sampler { samples: VecDeque::with_capacity(history), next_seq: 1 }),
        }
    }

    /// The answer to `request` when it is under the console's path.
    pub(crate) fn answer(&self, request: &Parts) -> Option<Response<Bytes>> {
        let path = request.uri.path();
        let rest = if self.base.is_empty() { path } else { path.strip_prefix(self.base.as_str())? };
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None; // `/consoleX` is not ours
        }
        if !matches!(rest, "" | "/" | "/index.html" | "/console.js" | "/console.css" | "/figures") {
            return None;
        }
        if request.method != Method::GET && request.method != Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "the console answers GET only\n");
        }
        match rest {
            "" => Response::builder()
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(header::LOCATION, format!("{}/", self.base))
                .body(Bytes::new())
                .ok(),
            "/" | "/index.html" => asset("text/html; charset=utf-8", INDEX),
            "/console.js" => asset("text/javascript; charset=utf-8", SCRIPT),
            "/console.css" => asset("text/css; charset=utf-8", STYLE),
            "/figures" => Some(self.figures(request)),
            // Not the console's: the application's handler (or a 404) answers, so a
            // console mounted at `/` hides nothing but its own four paths.
            _ => None,
        }
    }

    fn authorized(&self, request: &Parts) -> bool {
        let Some(expected) = &self.options.token else { return true };
        if expected.is_empty() {
            return false;
        }
        let given = request
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(given.as_bytes(), expected.as_bytes())
    }

    fn figures(&self, request: &Parts) -> Response<Bytes> {
        if !self.authorized(request) {
            tracing::debug!("console figures refused: wrong or missing console token");
            let mut response = plain(
                StatusCode::UNAUTHORIZED,
                "the console needs its own token (not the application's): send `Authorization: Bearer <console token>`\n",
            )
            .unwrap_or_default();
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        let after = request
            .uri
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("after=")))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let body = {
            let mut sampler = self.sampler.lock().unwrap_or_else(|e| e.into_inner());
            self.sample_if_due(&mut sampler);
            render(&sampler, after, self.options.interval)
        };
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(Bytes::from(body))
            .unwrap_or_default()
    }

    fn sample_if_due(&self, sampler: &mut Sampler) {
        let snapshot = self.stats.snapshot();
        let previous = sampler.samples.back();
        // A little early is still due: a page polling every interval must not miss one.
        let due = previous.is_none_or(|p| {
            snapshot.taken.saturating_duration_since(p.snapshot.taken) >= self.options.interval * 9 / 10
        });
        if !due {
            return;
        }
        let interval = previous.map(|p| snapshot.since(&p.snapshot));
        let sample = Sample {
            seq: sampler.next_seq,
            unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
            snapshot,
            pending_upgrades: self.transport.pending_upgrades(),
            write_buffered: self.transport.write_buffered(),
            interval,
        };
        sampler.next_seq += 1;
        if sampler.samples.len() >= self.options.history {
            sampler.samples.pop_front();
        }
        sampler.samples.push_back(sample);
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Option<Response<Bytes>> {
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-content-type-options", "nosniff")
        .body(Bytes::from_static(body.as_bytes()))
        .ok()
}

fn plain(status: StatusCode, text: &'static str) -> Option<Response<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Bytes::from_static(text.as_bytes()))
        .ok()
}

/// `{"interval_ms":..,"samples":[..]}` with the samples newer than `after`.
fn render(sampler: &Sampler, after: u64, interval: Duration) -> String {
    let mut out = String::with_capacity(256 + 600 * sampler.samples.len());
    let _ = write!(out, "{{\"interval_ms\":{},\"samples\":[", interval.as_millis());
    let mut first = true;
    for s in sampler.samples.iter().filter(|s| s.seq > after) {
        if !first {
            out.push(',');
        }
        first = false;
        render_sample(&mut out, s);
    }
    out.push_str("]}");
    out
}

fn render_sample(out: &mut String, s: &Sample) {
    let n = &s.snapshot;
    let i = s.interval.as_ref();
    let ms = |d: Option<Duration>| number(d.map(|d| d.as_secs_f64() * 1000.0));
    let _ = write!(
        out,
        "{{\"seq\":{},\"t\":{},\"connections_authorized\":{},\"connections_in_handshake\":{},\
         \"pending_upgrades\":{},\"calls_total\":{},\"calls_per_second\":{},\"call_errors_total\":{},\
         \"latency_p50_ms\":{},\"latency_p99_ms\":{},\"events_total\":{},\"events_per_second\":{},\
         \"bytes_in_total\":{},\"bytes_out_total\":{},\"bytes_in_per_second\":{},\"bytes_out_per_second\":{},\
         \"outbound_queue_bytes\":{},\"write_buffered_bytes\":{},\"slow_consumer_disconnects\":{},\
         \"cpu_percent\":{},\"rss_bytes\":{}}}",
        s.seq,
        s.unix_ms,
        n.connections_authorized,
        n.connections_in_handshake(),
        s.pending_upgrades,
        n.calls,
        number(i.map(|i| i.calls_per_second)),
        n.call_errors,
        ms(i.and_then(|i| i.latency_p50)),
        ms(i.and_then(|i| i.latency_p99)),
        n.events_out,
        number(i.map(|i| i.events_per_second)),
        n.bytes_in,
        n.bytes_out,
        number(i.map(|i| i.bytes_in_per_second)),
        number(i.map(|i| i.bytes_out_per_second)),
        n.outbound_queue_bytes,
        s.write_buffered,
        n.slow_consumer_disconnects,
        number(i.and_then(|i| i.cpu_percent)),
        n.process.rss_bytes.map_or_else(|| "null".to_owned(), |b| b.to_string()),
    );
}

/// A JSON number with up to three decimals, or `null` (also for NaN and infinities).
fn number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => {
            let text = format!("{v:.3}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            if text.is_empty() || text == "-" { "0".to_owned() } else { text.to_owned() }
        }
        _ => "null".to_owned(),
    }
}

/// The console's handler, tried before the application's own HTTP handler.
pub(crate) fn handler(console: Arc<Console>) -> crate::listener::HttpHandler {
    crate::listener::HttpHandler(Arc::new(move |request: &Parts| console.answer(request)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str, token: Option<&str>) -> Parts {
        let mut builder = hyper::http::Request::builder().uri(uri);
        if let Some(t) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn console(options: ConsoleOptions) -> (Console, ServerStats) {
        let stats = ServerStats::default();
        (Console::new("/console/", options, stats.clone(), WebSocketStats::default()), stats)
    }

    #[test]
    fn the_page_is_public_and_the_figures_need_the_console_token() {
        let (c, _) = console(ConsoleOptions::new("console-secret"));
        let page = c.answer(&get("/console/", None)).unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(String::from_utf8_lossy(page.body()).contains("console.js"));
        assert_eq!(c.answer(&get("/console", None)).unwrap().status(), StatusCode::PERMANENT_REDIRECT);
        for token in [None, Some("wrong"), Some(""), Some("console-secre")] {
            let r = c.answer(&get("/console/figures", token)).unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{token:?}");
            assert!(!String::from_utf8_lossy(r.body()).contains("samples"));
        }
        let ok = c.answer(&get("/console/figures", Some("console-secret"))).unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert!(String::from_utf8_lossy(ok.body()).contains("\"calls_total\":0"));
        // Not ours: the application's handler answers these.
        assert!(c.answer(&get("/consoled", None)).is_none());
        assert!(c.answer(&get("/", None)).is_none());
        assert!(c.answer(&get("/console/other", None)).is_none());
        // At the root, the console claims only its own paths.
        let root =
            Console::new("/", ConsoleOptions::without_token(), ServerStats::default(), WebSocketStats::default());
        assert_eq!(root.answer(&get("/figures", None)).unwrap().status(), StatusCode::OK);
        assert!(root.answer(&get("/app.js", None)).is_none());
    }

    #[test]
    fn an_empty_token_refuses_everyone() {
        let (c, _) = console(ConsoleOptions::new(""));
        for token in [None, Some("")] {
            assert_eq!(c.answer(&get("/console/figures", token)).unwrap().status(), StatusCode::UNAUTHORIZED);
        }
    }

    #[test]
    fn samples_are_taken_once_per_interval_and_kept_bounded() {
        let (c, stats) = console(ConsoleOptions::without_token().with_history(3));
        let body = |after: u64| {
            String::from_utf8(c.answer(&get(&format!("/console/figures?after={after}"), None)).unwrap().body().to_vec())
                .unwrap()
        };
        let first = body(0);
        assert_eq!(first.matches("\"seq\"").count(), 1);
        // The first sample has nothing to compare with: no rates yet.
        assert!(first.contains("\"calls_per_second\":null"), "{first}");
        // Asked again at once: no new sample (another page shares the same ones).
        assert_eq!(body(0).matches("\"seq\"").count(), 1);
        assert_eq!(body(1).matches("\"seq\"").count(), 0);
        // Samples taken later: make them due by moving the earlier ones back in time.
        for _ in 0..5 {
            let mut s = c.sampler.lock().unwrap();
            for sample in &mut s.samples {
                sample.snapshot.taken -= Duration::from_secs(1);
            }
            drop(s);
            body(0);
        }
        let all = body(0);
        assert_eq!(all.matches("\"seq\"").count(), 3, "history is capped: {all}");
        assert!(all.contains("\"seq\":6"), "{all}");
        assert!(all.contains("\"calls_total\":0"), "{all}");
        assert!(all.contains(&format!("\"connections_authorized\":{}", stats.snapshot().connections_authorized)));
        assert!(!all.contains("\"calls_per_second\":null"), "later samples have rates: {all}");
    }

    #[test]
    fn numbers_are_valid_json() {
        assert_eq!(number(Some(1.5)), "1.5");
        assert_eq!(number(Some(2.0)), "2");
        assert_eq!(number(Some(0.0001)), "0");
        assert_eq!(number(Some(f64::NAN)), "null");
        assert_eq!(number(None), "null");
    }
}
