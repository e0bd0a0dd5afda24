//! The witrpc benchmark harness (`cargo xtask bench`; not published).
//!
//! ```text
//! witrpc-bench run [--quick] [--out DIR] [--save DIR] [--runs N] [--workers N] [--targets a,b]
//!                  [--scenarios 1x1,64x16] [--parts calls,idle,fanout,large] [--fan-out-events N]
//! witrpc-bench server <witrpc-json|witrpc-msgpack|witrpc-encrypted|jsonrpsee|raw-echo> [--workers N]
//! witrpc-bench attack [--seconds N] [--attacks ping-flood,preauth-big,header-flood,idle-sockets] [--server PATH]
//! ```
//!
//! `run` starts each server as a child process of this binary (so its CPU time and memory
//! can be read from /proc), drives it with the clients in `client.rs`, and writes
//! `report.md`, `results.json` and SVG charts to `--out`. `--save DIR` also writes the
//! report as `DIR/RESULTS.md` with its charts under `DIR/charts/`. `attack` runs the
//! hostile-network attacks of issue 16 against demo server processes (`attack.rs`).

mod attack;
mod client;
mod measure;
mod report;
mod server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::report::{Results, Row};
use crate::server::Target;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("server") => server::main(&args[1..]),
        Some("run") => run(&args[1..]),
        Some("attack") => attack::main(&args[1..]),
        _ => anyhow::bail!(
            "usage: witrpc-bench run [--quick] [--out DIR] [--save DIR] [--runs N] [--workers N] [--targets a,b]\n       witrpc-bench server <target> [--workers N]\n       witrpc-bench attack [--seconds N] [--attacks a,b] [--server PATH]"
        ),
    }
}

#[derive(Debug)]
struct Options {
    quick: bool,
    out: PathBuf,
    save: Option<PathBuf>,
    runs: usize,
    workers: usize,
    targets: Vec<Target>,
    warmup: Duration,
    window: Duration,
    idle_sizes: Vec<usize>,
    fan_out_clients: usize,
    fan_out_events: i32,
    large_iterations: usize,
    /// `CxD` scenarios to run (all by default).
    scenarios: Vec<(usize, usize)>,
    /// Which parts run: `calls`, `idle`, `fanout`, `large` (all by default).
    parts: Vec<String>,
}

fn options(args: &[String]) -> anyhow::Result<Options> {
    let value = |name: &str| -> Option<&String> { args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)) };
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = if quick {
        Options {
            quick,
            out: PathBuf::from("target/bench"),
            save: None,
            runs: 1,
            workers: 2,
            targets: Target::ALL.to_vec(),
            warmup: Duration::from_millis(150),
            window: Duration::from_millis(400),
            idle_sizes: vec![1000],
            fan_out_clients: 1000,
            fan_out_events: 50,
            large_iterations: 5,
            scenarios: SCENARIOS.to_vec(),
            parts: PARTS.map(str::to_owned).to_vec(),
        }
    } else {
        Options {
            quick,
            out: PathBuf::from("target/bench"),
            save: None,
            runs: 3,
            workers: 2,
            targets: Target::ALL.to_vec(),
            warmup: Duration::from_secs(1),
            window: Duration::from_secs(3),
            idle_sizes: vec![1000, 10_000],
            fan_out_clients: 1000,
            fan_out_events: 1000,
            large_iterations: 30,
            scenarios: SCENARIOS.to_vec(),
            parts: PARTS.map(str::to_owned).to_vec(),
        }
    };
    if let Some(v) = value("--out") {
        o.out = PathBuf::from(v);
    }
    o.save = value("--save").map(PathBuf::from);
    if let Some(v) = value("--runs") {
        o.runs = v.parse().context("--runs")?;
    }
    if let Some(v) = value("--workers") {
        o.workers = v.parse().context("--workers")?;
    }
    if let Some(v) = value("--scenarios") {
        o.scenarios = v
            .split(',')
            .map(|s| {
                let (c, d) = s.split_once('x').context("a scenario is CxD, e.g. 64x16")?;
                Ok((c.parse()?, d.parse()?))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(v) = value("--parts") {
        o.parts = v.split(',').map(str::to_owned).collect();
        if let Some(bad) = o.parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
            anyhow::bail!("unknown part `{bad}`; expected some of {PARTS:?}");
        }
    }
    if let Some(v) = value("--fan-out-events") {
        o.fan_out_events = v.parse().context("--fan-out-events")?;
    }
    if let Some(v) = value("--targets") {
        o.targets = server::parse_targets(v)?;
    }
    Ok(o)
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let o = options(args)?;
    // The driver gets the same number of worker threads as each server.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(o.workers).enable_all().build()?;
    let results = runtime.block_on(measure_all(&o))?;
    std::fs::create_dir_all(&o.out)?;
    measure::write_json(&o.out.join("results.json"), &results)?;
    results.write_charts(&o.out)?;
    std::fs::write(o.out.join("report.md"), results.markdown(""))?;
    println!("report: {}", o.out.join("report.md").display());
    if let Some(dir) = &o.save {
        std::fs::create_dir_all(dir.join("charts"))?;
        results.write_charts(&dir.join("charts"))?;
        std::fs::write(dir.join("RESULTS.md"), results.markdown("charts/"))?;
        println!("saved: {}", dir.join("RESULTS.md").display());
    }
    for (name, goal, measured, met) in results.verdicts() {
        println!("{} {name}: {measured} (goal {goal})", if met { "met    " } else { "NOT MET" });
    }
    Ok(())
}

const SCENARIOS: [(usize, usize); 4] = [(1, 1), (1, 64), (64, 16), (1000, 1)];
const PARTS: [&str; 4] = ["calls", "idle", "fanout", "large"];

impl Options {
    fn runs_part(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }
}

async fn measure_all(o: &Options) -> anyhow::Result<Results> {
    let started = Instant::now();
    let mut results = Results {
        quick: o.quick,
        runs: o.runs,
        workers: o.workers,
        warmup_s: o.warmup.as_secs_f64(),
        window_s: o.window.as_secs_f64(),
        machine: machine(),
        versions: versions(),
        ..Results::default()
    };
    for &(c, d) in &o.scenarios {
        for &t in &o.targets {
            results.throughput.push(Row {
                scenario: format!("{c}x{d}"),
                target: t.name().to_owned(),
                runs: Vec::new(),
            });
        }
    }
    let idle_targets = [Target::WitJson, Target::Jsonrpsee, Target::Echo];
    for &n in &o.idle_sizes {
        for t in idle_targets.iter().filter(|t| o.targets.contains(t)) {
            results.idle.push(Row { scenario: format!("idle {n}"), target: t.name().to_owned(), runs: Vec::new() });
        }
    }
    for &t in &o.targets {
        results.large.push(Row { scenario: "1 MiB".to_owned(), target: t.name().to_owned(), runs: Vec::new() });
    }
    for run in 0..o.runs {
        eprintln!("== run {}/{}", run + 1, o.runs);
        for (i, &(c, d)) in o.scenarios.iter().enumerate().filter(|_| o.runs_part("calls")) {
            for (j, &t) in o.targets.iter().enumerate() {
                let m = measure::throughput(t, o.workers, c, d, o.warmup, o.window)
                    .await
                    .with_context(|| format!("{c}x{d} on {}", t.name()))?;
                eprintln!(
                    "{c:>4}x{d:<3} {:<17} {:>9.0} req/s  p50 {:>6.0} µs  p99 {:>6.0} µs  cpu {:>6.2} µs/req",
                    t.name(),
                    m.requests_per_s,
                    m.p50_us,
                    m.p99_us,
                    m.server_cpu_us_per_request
                );
                results.throughput[i * o.targets.len() + j].runs.push(m);
            }
        }
        for row in results.idle.iter_mut().filter(|_| o.runs_part("idle")) {
            let t = Target::parse(&row.target).context("target")?;
            let n: usize = row.scenario.trim_start_matches("idle ").parse()?;
            let m = measure::idle_memory(t, o.workers, n).await.with_context(|| format!("idle {n} on {}", t.name()))?;
            eprintln!("idle {n:>6} {:<17} {:>8.0} bytes/connection", t.name(), m.bytes_per_connection);
            row.runs.push(m);
        }
        if o.runs_part("fanout") {
            let f = measure::fan_out(o.workers, o.fan_out_clients, (o.fan_out_events / 10).max(1), o.fan_out_events)
                .await
                .context("event fan-out")?;
            eprintln!("fan-out {} clients: {:.0} deliveries/s, p99 {:.0} µs", f.clients, f.deliveries_per_s, f.p99_us);
            results.fan_out.push(f);
        }
        for row in results.large.iter_mut().filter(|_| o.runs_part("large")) {
            let t = Target::parse(&row.target).context("target")?;
            let m = measure::large(t, o.workers, 1 << 20, o.large_iterations)
                .await
                .with_context(|| format!("1 MiB on {}", t.name()))?;
            eprintln!("1 MiB {:<17} p50 {:.2} ms", t.name(), m.p50_ms);
            row.runs.push(m);
        }
    }
    results.seconds = started.elapsed().as_secs_f64();
    Ok(results)
}

fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let memory = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("unknown".to_owned(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    vec![
        ("CPU".to_owned(), model),
        ("cores available".to_owned(), cores.to_string()),
        ("memory".to_owned(), memory),
        ("kernel".to_owned(), read("/proc/sys/kernel/osrelease").trim().to_owned()),
        ("rustc".to_owned(), rustc),
    ]
}

/// Versions of the crates that matter, from the workspace's Cargo.lock.
fn versions() -> Vec<(String, String)> {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap_or_default();
    let wanted = [
        "witrpc-server",
        "jsonrpsee-server",
        "tokio",
        "tokio-tungstenite",
        "tungstenite",
        "hyper",
        "serde_json",
        "rmp-serde",
        "ring",
    ];
    let mut out = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("name = \"").and_then(|n| n.strip_suffix('"')) {
            if wanted.contains(&name) {
                if let Some(v) =
                    lines.next().and_then(|l| l.strip_prefix("version = \"")).and_then(|v| v.strip_suffix('"'))
                {
                    out.push((format!("crate {name}"), v.to_owned()));
                }
            }
        }
    }
    out
}
