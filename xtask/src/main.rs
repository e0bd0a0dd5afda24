//! `cargo xtask <command>`: project automation.
//!
//! - `test-all`: every check CI runs (fmt, clippy, tests + doctests, docs, examples,
//!   `matrix`, a smoke run of the demo server and client). Each step prints its
//!   command; a failure names the step and a hint.
//! - `smoke`: the demo server and client, plain and encrypted.
//! - `soak`: 10k connect/authorize/call/disconnect cycles in release mode.
//! - `gen-ts [--check]`: TypeScript modules from the `#[witrpc::service]` traits.
//! - `matrix`: the feature matrix, the lean-build dependency check, the MSRV guard and
//!   the loom models (`matrix.rs`).
//! - `package`: the publish checks (`publish.rs`): crate metadata, public-API hygiene,
//!   `cargo package` of every published crate, `npm pack` of the TypeScript client.
//! - `bench [--quick] [args]`: witrpc against jsonrpsee and a raw WebSocket echo
//!   (`bench/`); writes `target/bench/report.md`, and a full run also `bench/RESULTS.md`.
//!   `--quick` also runs the resume benchmark (`bench/src/bin/resume/main.rs`) with 200 clients.

mod gen_ts;
mod matrix;
mod publish;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test-all") => test_all(),
        Some("smoke") => smoke(),
        Some("soak") => soak(),
        Some("bench") => bench(&args[1..]),
        Some("gen-ts") => gen_ts::run(&root(), TS_JOBS, args.iter().any(|a| a == "--check")),
        Some("package") => publish::run(&root()),
        Some("matrix") => matrix::run_all(&root()).and_then(|()| matrix::loom(&root())),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\ncommands:\n  test-all   run every check (what CI runs)\n  smoke      run the demo server + demo client once\n  soak       10k-cycle connection churn in release mode (WITRPC_CHURN_CYCLES to change)\n  gen-ts     write the TypeScript modules of the services (--check: fail when stale)\n  package    publish checks: crate metadata, public API, cargo package, npm pack\n  matrix     each feature alone, the lean build's dependencies, MSRV, loom models\n  bench      benchmarks against jsonrpsee and a raw echo (--quick: every scenario briefly)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nxtask: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The generated TypeScript modules; `cargo xtask test-all` fails when one is stale.
const TS_JOBS: &[gen_ts::Job] = &[
    gen_ts::Job {
        source: "src/lib.rs",
        output: "clients/typescript/src/generated/demo_service.ts",
        client_import: "../index.js",
    },
    gen_ts::Job {
        source: "src/dashboard.rs",
        output: "examples/dashboard/web/src/generated/dashboard_service.ts",
        client_import: "../../../../../clients/typescript/src/index.js",
    },
    gen_ts::Job {
        source: "examples/chat/service.rs",
        output: "examples/chat/web/src/generated/chat_service.ts",
        client_import: "../../../../../clients/typescript/src/index.js",
    },
];

struct Step<'a> {
    name: &'a str,
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    hint: &'a str,
}

fn run(step: &Step<'_>) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("\n==> {}: cargo {}", step.name, step.args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(step.args)
        .envs(step.env.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|e| format!("{}: cannot run cargo: {e}", step.name))?;
    if !status.success() {
        return Err(format!("step `{}` failed ({status}); hint: {}", step.name, step.hint));
    }
    eprintln!("==> {}: ok in {:.1?}", step.name, started.elapsed());
    Ok(())
}

fn test_all() -> Result<(), String> {
    let started = Instant::now();
    let steps = [
        Step { name: "fmt", args: &["fmt", "--all", "--", "--check"], env: &[], hint: "run `cargo fmt --all`" },
        Step {
            name: "clippy",
            args: &["clippy", "--workspace", "--all-targets", "--all-features", "--locked", "--", "-D", "warnings"],
            env: &[],
            hint: "fix the warnings above; every `allow` needs a reason",
        },
        Step {
            name: "test",
            args: &["test", "--workspace", "--all-features", "--locked"],
            env: &[],
            hint: "run the failing test alone with `cargo test -p <crate> <name> -- --nocapture`",
        },
        Step {
            name: "doc",
            args: &["doc", "--workspace", "--no-deps", "--all-features", "--locked"],
            env: &[("RUSTDOCFLAGS", "-D warnings")],
            hint: "fix the broken doc links or missing docs above",
        },
        Step {
            name: "examples",
            args: &["build", "--examples", "--locked"],
            env: &[],
            hint: "an example no longer compiles",
        },
    ];
    eprintln!("\n==> gen-ts --check: the committed TypeScript modules match the Rust services");
    gen_ts::run(&root(), TS_JOBS, true)?;
    for step in &steps {
        run(step)?;
    }
    matrix::run_all(&root())?;
    matrix::loom(&root())?;
    eprintln!("\n==> smoke: demo_server + demo_client");
    smoke()?;
    typescript()?;
    chat_page()?;
    eprintln!("\n==> package: the crates and the npm package are ready to publish");
    publish::run(&root())?;
    eprintln!("\n==> bench --quick: every benchmark scenario briefly, so the harness never rots");
    bench(&["--quick".to_owned()])?;
    eprintln!("\nxtask: all checks passed in {:.1?}", started.elapsed());
    Ok(())
}

/// The large churn run: the `churn` end-to-end test in release mode with 10k cycles.
fn soak() -> Result<(), String> {
    let cycles = std::env::var("WITRPC_CHURN_CYCLES").unwrap_or_else(|_| "10000".to_owned());
    run(&Step {
        name: "soak",
        args: &[
            "test",
            "--release",
            "--locked",
            "--all-features",
            "-p",
            "witrpc-demo",
            "--test",
            "it",
            "churn",
            "--",
            "--nocapture",
        ],
        env: &[("WITRPC_CHURN_CYCLES", &cycles)],
        hint: "the churn test prints its figures; rerun with RUST_LOG=debug for details",
    })
}

/// Runs `program args` in `dir` (relative to the root), naming the step on failure.
fn run_in(dir: &str, program: &str, args: &[&str], env: &[(&str, String)], hint: &str) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("\n==> {dir}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root().join(dir))
        .status()
        .map_err(|e| format!("cannot run {program} in {dir}: {e}; {hint}"))?;
    if !status.success() {
        return Err(format!("`{program} {}` failed in {dir} ({status}); {hint}", args.join(" ")));
    }
    eprintln!("==> ok in {:.1?}", started.elapsed());
    Ok(())
}

const NPM_HINT: &str = "needs Node 20 and npm (npm ci reads package-lock.json from the registry)";

/// The TypeScript client's tests against the demo server, then the dashboard page.
fn typescript() -> Result<(), String> {
    let client = "clients/typescript";
    run_in(client, "npm", &["ci", "--no-audit", "--no-fund"], &[], NPM_HINT)?;
    let demo = ("WITRPC_DEMO_SERVER", example("demo_server").display().to_string());
    run_in(client, "npm", &["test"], &[demo], "run `npm test` in clients/typescript to see the failing test")?;
    browser_page("dashboard", "WITRPC_DASHBOARD")
}

/// The chat example's page: three users on three pages.
fn chat_page() -> Result<(), String> {
    browser_page("chat", "WITRPC_CHAT")
}

/// An example's page in `examples/<name>/web`: its build (the committed bundle must be
/// current), then its end-to-end test in headless Chromium against the example binary,
/// whose path the test reads from `env_var`.
fn browser_page(name: &str, env_var: &str) -> Result<(), String> {
    let web = format!("examples/{name}/web");
    run_in(&web, "npm", &["ci", "--no-audit", "--no-fund"], &[], NPM_HINT)?;
    let bundle = root().join(&web).join("dist/app.js");
    let before = std::fs::read(&bundle).unwrap_or_default();
    run_in(&web, "npm", &["run", "build"], &[], &format!("the {name} page does not type-check or bundle"))?;
    if std::fs::read(&bundle).unwrap_or_default() != before {
        return Err(format!("{web}/dist/app.js was stale; it has been rebuilt: commit it"));
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if !Path::new(&chromium).exists() {
        return Err(format!("{chromium} is missing: install Chromium (`apt-get install -y chromium`) or set CHROMIUM"));
    }
    let env = [(env_var, example(name).display().to_string()), ("CHROMIUM", chromium), ("RUST_LOG", "warn".to_owned())];
    run_in(
        &web,
        "npm",
        &["test"],
        &env,
        &format!("the {name} page failed in Chromium; the screenshot is target/{name}.png"),
    )
}

/// Builds the harness in release mode and runs it. A full run also saves the report as
/// `bench/RESULTS.md` (with `bench/charts/`); `--quick` only writes `target/bench/`.
fn bench(args: &[String]) -> Result<(), String> {
    run(&Step {
        name: "bench build",
        args: &["build", "--release", "--locked", "-p", "witrpc-bench"],
        env: &[],
        hint: "the benchmark harness no longer compiles",
    })?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let mut command = Command::new(target.join("release").join("witrpc-bench"));
    command.arg("run").arg("--out").arg(target.join("bench")).args(args).current_dir(root());
    if !args.iter().any(|a| a == "--quick" || a == "--save") {
        command.arg("--save").arg(root().join("bench"));
    }
    let status = command.status().map_err(|e| format!("cannot run witrpc-bench: {e}"))?;
    if !status.success() {
        return Err(format!("benchmark run failed ({status}); its log above names the scenario"));
    }
    if args.iter().any(|a| a == "--quick") {
        // Issue 14's resume benchmark, briefly (200 clients), so its harness never rots;
        // the full run is `cargo run --release -p witrpc-bench --bin resume -- --save bench`.
        eprintln!("\n==> resume --quick: 200 clients resuming after a node restart (needs redis-server)");
        let status = Command::new(target.join("release").join("resume"))
            .arg("--quick")
            .current_dir(root())
            .status()
            .map_err(|e| format!("cannot run the resume benchmark: {e}"))?;
        if !status.success() {
            return Err(format!("the resume benchmark failed ({status}); its log above says where"));
        }
    }
    Ok(())
}

/// Kills the child on drop so a failed check never leaves a server running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    target.join("debug").join("examples").join(name)
}

fn smoke() -> Result<(), String> {
    let server_bin = example("demo_server");
    let client_bin = example("demo_client");
    for bin in [&server_bin, &client_bin] {
        if !bin.exists() {
            return Err(format!("{} is missing; run `cargo build --examples` first", bin.display()));
        }
    }
    smoke_run(&server_bin, &client_bin, &["--token", "SmokeToken"])?;
    smoke_run(&server_bin, &client_bin, &["--token", "SmokeToken", "--encryption", "--format", "msgpack"])
}

/// Starts the demo server with `flags`, runs the demo client with the same flags, stops
/// the server with Ctrl-C.
fn smoke_run(server_bin: &Path, client_bin: &Path, flags: &[&str]) -> Result<(), String> {
    eprintln!("smoke: demo_server {}", flags.join(" "));
    let mut server = Command::new(server_bin)
        .args(["--listen", "http://127.0.0.1:0/ws"])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start demo_server: {e}"))?;
    let stdout = server.stdout.take().ok_or("demo_server has no stdout")?;
    let guard = Guard(server);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| "demo_server printed no ready line within 30 s")?;
    let line = line.trim_end();
    let url = line
        .strip_prefix("listening on ")
        .filter(|u| u.starts_with("ws://127.0.0.1:") && u.ends_with("/ws"))
        .ok_or_else(|| format!("unexpected ready line from demo_server: {line:?}"))?;
    eprintln!("demo_server ready: {url}");
    let status = Command::new(client_bin)
        .args(["--url", url, "--calls", "2000"])
        .args(flags)
        .status()
        .map_err(|e| format!("cannot run demo_client: {e}"))?;
    if !status.success() {
        return Err(format!("demo_client failed against the demo server ({status})"));
    }
    stop_with_ctrl_c(guard)
}

#[cfg(unix)]
fn stop_with_ctrl_c(guard: Guard) -> Result<(), String> {
    let pid = guard.0.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().map_err(|e| format!("cannot run kill: {e}"))?;
    if !sent.success() {
        return Err("cannot send SIGINT to demo_server".into());
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut guard = guard;
        let _ = tx.send(guard.0.wait());
        // `guard` drops here: kill + wait on an exited child are harmless.
    });
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("demo_server exited with {status} after Ctrl-C")),
        Ok(Err(e)) => Err(format!("cannot wait for demo_server: {e}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            Err("demo_server did not stop within 15 s of Ctrl-C".into())
        }
    }
}

#[cfg(not(unix))]
fn stop_with_ctrl_c(_guard: Guard) -> Result<(), String> {
    Ok(())
}
