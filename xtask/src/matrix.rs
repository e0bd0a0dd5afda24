//! `cargo xtask matrix`: the build checks that one `--all-features` run cannot make.
//!
//! - **Feature matrix**: every published crate is checked with no default features and
//!   with each of its features alone (what `cargo hack check --each-feature` does; cargo-hack
//!   is not installed on fresh CI machines). A feature that only compiles next to another
//!   one, or an import that is unused without it, fails here. The checks share the main
//!   target directory and stop at `check` (no code generation); warnings in the checked
//!   crate are errors.
//! - **Lean build**: the facade with `server,client,json,macros` (JSON only, no encryption)
//!   must not pull in RSA, MessagePack or witrpc-crypto (`cargo tree`). `ring` *is* in that
//!   build: rustls needs it for `wss://`/`https://`, and the check pins that it comes only
//!   through rustls. Control runs with `encryption` and `msgpack` prove the check can fail.
//! - **MSRV**: only one toolchain exists on these machines and none can be downloaded, so
//!   the `rust-version` promise is kept by clippy's `incompatible_msrv` lint, which reads
//!   `rust-version` and flags standard-library items stabilized later. This step checks
//!   that every published crate inherits the workspace's `rust-version`, that nothing
//!   allows the lint, and that this toolchain's clippy really fires it (a canary crate);
//!   `test-all`'s clippy run (`-D warnings`) is what then enforces it on our code. The lint
//!   does not see language features, so a scan rejects the one newer than 1.86 that
//!   edition 2024 code reaches for most: `let` chains (stable in 1.88).
//! - **Loom** ([`loom`]): the models of the cross-task handoffs (the server's outbox, the
//!   client's pending-call table) under every interleaving, built with `--cfg loom` in
//!   `target/loom`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

use crate::{Step, run};

/// Runs every check of this module.
pub(crate) fn run_all(root: &Path) -> Result<(), String> {
    features(root)?;
    lean_tree(root)?;
    msrv(root)
}

/// The loom models of the cross-task handoffs: (package, test target).
const LOOM_TESTS: &[(&str, &str)] = &[("witrpc-server", "loom_outbox"), ("witrpc-client", "loom_pending")];

/// Runs the loom models (`RUSTFLAGS="--cfg loom"`) in their own target directory, so the
/// changed flags never evict the main build's artifacts.
pub(crate) fn loom(root: &Path) -> Result<(), String> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let target = target.join("loom").display().to_string();
    let mut lint = vec!["clippy", "--locked", "--tests"];
    for (package, _) in LOOM_TESTS {
        lint.extend(["-p", package]);
    }
    lint.extend(["--", "-D", "warnings"]);
    // The models are `cfg(loom)`, so test-all's clippy run does not see them.
    run(&Step {
        name: "loom clippy",
        args: &lint,
        env: &[("RUSTFLAGS", "--cfg loom"), ("CARGO_TARGET_DIR", &target)],
        hint: "fix the warnings in the loom models (tests/loom_*.rs)",
    })?;
    for (package, test) in LOOM_TESTS {
        run(&Step {
            name: &format!("loom {package} {test}"),
            args: &["test", "--locked", "-p", package, "--test", test],
            // The models bound the search to 3 preemptions unless LOOM_MAX_PREEMPTIONS says otherwise.
            env: &[("RUSTFLAGS", "--cfg loom"), ("CARGO_TARGET_DIR", &target)],
            hint: "loom found an interleaving that breaks the model; rerun with LOOM_LOG=trace LOOM_LOCATION=1 \
                   to see it, then fix the handoff (or the model, if the code changed)",
        })?;
    }
    Ok(())
}

/// A published crate of `crates/` and its features (without `default`).
#[derive(Debug)]
struct Crate {
    name: String,
    features: Vec<String>,
}

/// The published crates: every `crates/*/Cargo.toml` without `publish = false`.
fn published_crates(root: &Path) -> Result<Vec<Crate>, String> {
    let dir = root.join("crates");
    let mut crates = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let manifest = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let parsed = parse_manifest(&text).ok_or_else(|| format!("{}: no [package] name", manifest.display()))?;
        if parsed.publish {
            crates.push(parsed.krate);
        }
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    if crates.is_empty() {
        return Err(format!("no published crates found under {}", dir.display()));
    }
    Ok(crates)
}

#[derive(Debug)]
struct Manifest {
    krate: Crate,
    publish: bool,
    /// `rust-version.workspace = true` in `[package]`.
    inherits_rust_version: bool,
}

/// Reads what the checks need from one of our manifests (flat TOML, one key a line).
fn parse_manifest(text: &str) -> Option<Manifest> {
    let mut section = "";
    let mut name = None;
    let mut publish = true;
    let mut inherits_rust_version = false;
    let mut features = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim(), value.trim());
        match section {
            "[package]" => match key {
                "name" => name = Some(value.trim_matches('"').to_owned()),
                "publish" => publish = value != "false",
                "rust-version.workspace" => inherits_rust_version = value == "true",
                _ => {}
            },
            "[features]" if key != "default" && !key.starts_with('#') => features.push(key.to_owned()),
            _ => {}
        }
    }
    Some(Manifest { krate: Crate { name: name?, features }, publish, inherits_rust_version })
}

/// `cargo check` of each published crate's library with no default features, then with
/// each feature alone.
fn features(root: &Path) -> Result<(), String> {
    let started = Instant::now();
    let crates = published_crates(root)?;
    let mut checks = 0;
    for krate in &crates {
        let configs = std::iter::once(None).chain(krate.features.iter().map(Some));
        for feature in configs {
            // `cargo rustc` passes `-D warnings` to the checked crate only: RUSTFLAGS would
            // rebuild every dependency and evict the main build's artifacts.
            let mut args = vec!["rustc", "-p", &krate.name, "--lib", "--profile", "check", "--locked"];
            args.push("--no-default-features");
            if let Some(feature) = feature {
                args.extend(["--features", feature]);
            }
            args.extend(["--", "-D", "warnings"]);
            let name = format!("matrix {} [{}]", krate.name, feature.map_or("no default features", String::as_str));
            run(&Step {
                name: &name,
                args: &args,
                env: &[],
                hint: "a feature must compile on its own: gate the code or the import on the feature that needs it",
            })?;
            checks += 1;
        }
    }
    eprintln!("==> feature matrix: {checks} checks of {} crates in {:.1?}", crates.len(), started.elapsed());
    Ok(())
}

/// The facade's features for a JSON-only, unencrypted server and client.
const LEAN: &str = "server,client,json,macros";

/// Crates a lean build must not contain, and what each would mean.
const NOT_IN_LEAN: &[(&str, &str)] = &[
    ("rsa", "RSA key transport (encryption)"),
    ("witrpc-crypto", "the encryptor (encryption)"),
    ("rmp-serde", "MessagePack (msgpack)"),
    ("witrpc-serializer-msgpack", "MessagePack (msgpack)"),
    ("axum", "mounting in axum (axum)"),
    ("tower-service", "the tower Service (tower)"),
];

/// The only crates that may depend on `ring` in a lean build: TLS for `wss://` and
/// `https://`, which the WebSocket transports always offer.
const RING_USERS_IN_LEAN: &[&str] = &["rustls", "rustls-webpki"];

/// `cargo tree` of the facade's lean build: no RSA, no MessagePack, `ring` only for TLS.
fn lean_tree(root: &Path) -> Result<(), String> {
    eprintln!("\n==> lean build: `-p witrpc --no-default-features --features {LEAN}` (cargo tree)");
    let lean = tree(root, LEAN, &[])?;
    for (krate, what) in NOT_IN_LEAN {
        if lean.iter().any(|c| c == krate) {
            let path = tree(root, LEAN, &["--invert", krate]).map(|p| p.join(" <- ")).unwrap_or_default();
            return Err(format!(
                "the JSON-only, unencrypted facade pulls in `{krate}` ({what}) through {path}; \
                 make the dependency optional behind its feature"
            ));
        }
    }
    let ring_users = tree(root, LEAN, &["--invert", "ring", "--depth", "1"])?;
    let stray: Vec<_> =
        ring_users.iter().filter(|c| *c != "ring" && !RING_USERS_IN_LEAN.contains(&c.as_str())).collect();
    if !stray.is_empty() {
        return Err(format!(
            "in the lean build `ring` is used by {stray:?}, not only by TLS ({RING_USERS_IN_LEAN:?}); \
             encryption code must stay behind the `encryption` feature"
        ));
    }
    if ring_users.iter().any(|c| c == "ring") {
        eprintln!(
            "note: `ring` is in the lean build, used only by {RING_USERS_IN_LEAN:?} (TLS for wss:// and https://)"
        );
    }
    // Controls: the same parse finds what the features do add, so the check can fail.
    for (feature, expect) in [("encryption", "rsa"), ("encryption", "witrpc-crypto"), ("msgpack", "rmp-serde")] {
        if !tree(root, &format!("{LEAN},{feature}"), &[])?.iter().any(|c| c == expect) {
            return Err(format!(
                "control failed: `{expect}` is not in the tree with `{feature}`; the lean-build check cannot be trusted \
                 (did `cargo tree`'s output format change?)"
            ));
        }
    }
    eprintln!("==> lean build: ok (no rsa, witrpc-crypto, rmp-serde or witrpc-serializer-msgpack)");
    Ok(())
}

/// The crate names in `cargo tree` of the facade with `features` (normal dependencies,
/// every target platform), in output order.
fn tree(root: &Path, features: &str, extra: &[&str]) -> Result<Vec<String>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["tree", "--locked", "-p", "witrpc", "--no-default-features", "--features", features])
        .args(["-e", "normal", "--target", "all", "--prefix", "none", "--format", "{p}"])
        .args(extra)
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo tree --features {features} {}` failed: {}",
            extra.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_owned).collect())
}

/// The MSRV guard: inherited `rust-version`, the lint not allowed anywhere, the lint alive
/// in this toolchain, and no `let` chains.
fn msrv(root: &Path) -> Result<(), String> {
    eprintln!("\n==> msrv: clippy's incompatible_msrv guards rust-version");
    let msrv = workspace_rust_version(root)?;
    for entry in std::fs::read_dir(root.join("crates")).map_err(|e| format!("cannot list crates/: {e}"))? {
        let manifest = entry.map_err(|e| format!("cannot list crates/: {e}"))?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        match parse_manifest(&text) {
            Some(m) if m.publish && !m.inherits_rust_version => {
                return Err(format!(
                    "{}: a published crate must inherit the MSRV: `rust-version.workspace = true`",
                    manifest.display()
                ));
            }
            _ => {}
        }
    }
    let mut files = Vec::new();
    collect_files(root, &mut files);
    let lint = ["incompatible", "msrv"].join("_");
    let path = format!("clippy::{lint}");
    // Built here, so this file does not match itself.
    let group_allows: Vec<String> = ["allow", "expect"]
        .iter()
        .flat_map(|level| ["suspicious", "all"].map(|group| format!("{level}(clippy::{group}")))
        .collect();
    let mut offences = Vec::new();
    let mut chains = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        let shown = file.strip_prefix(root).unwrap_or(file).display().to_string();
        let is_rust = file.extension().is_some_and(|e| e == "rs");
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            let relaxes = if is_rust {
                // Its level belongs in [workspace.lints] only; the groups hold it too.
                line.contains(&path) || group_allows.iter().any(|a| line.contains(a.as_str()))
            } else if file.ends_with("Cargo.toml") {
                [lint.as_str(), "suspicious", "all"].iter().any(|k| line.starts_with(k)) && line.contains("\"allow\"")
            } else {
                line.starts_with("msrv")
            };
            if relaxes {
                offences.push(format!("{shown}:{}: {line}", n + 1));
            }
        }
        // The promise is the published libraries' (xtask, tests and examples are built
        // with the one toolchain here).
        let published_source =
            file.starts_with(root.join("crates")) && file.components().any(|c| c.as_os_str() == "src");
        if is_rust && published_source && let_chains(&text) > 0 {
            chains.push(shown);
        }
    }
    if !offences.is_empty() {
        return Err(format!(
            "the MSRV lint is relaxed or overridden (rust-version in Cargo.toml is the only MSRV): {}",
            offences.join("; ")
        ));
    }
    if !chains.is_empty() {
        return Err(format!(
            "`let` chains need Rust 1.88 but the published crates promise rust-version {msrv}; nest the `if let`s \
             or use `let ... else` in: {}",
            chains.join(", ")
        ));
    }
    canary(root, &msrv)?;
    eprintln!("==> msrv: ok (rust-version {msrv}; test-all's clippy -D warnings enforces it)");
    Ok(())
}

/// `rust-version` of `[workspace.package]`.
fn workspace_rust_version(root: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if let Some(value) = line.strip_prefix("rust-version").filter(|_| in_package) {
            return Ok(value.trim_start_matches([' ', '=']).trim().trim_matches('"').to_owned());
        }
    }
    Err("Cargo.toml: [workspace.package] has no rust-version".into())
}

/// Our Rust sources and configuration: everything but build output, dependencies and
/// version control.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | "node_modules" | ".git") {
                collect_files(&path, out);
            }
        } else if name.ends_with(".rs") || name == "Cargo.toml" || name == "clippy.toml" || name == ".clippy.toml" {
            out.push(path);
        }
    }
}

/// A crate that uses a standard-library item newer than `msrv`: clippy must reject it.
/// Proves that this toolchain's clippy reads `rust-version` and that the lint is on by
/// default (so `test-all`'s clippy step enforces the MSRV).
fn canary(root: &Path, msrv: &str) -> Result<(), String> {
    let started = Instant::now();
    let dir = root.join("target").join("msrv-canary");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(|e| format!("cannot create {}: {e}", src.display()))?;
    let manifest = format!(
        "[package]\nname = \"msrv-canary\"\nversion = \"0.0.0\"\nedition = \"2024\"\nrust-version = \"{msrv}\"\npublish = false\n\n[workspace]\n"
    );
    // `u32::is_multiple_of` is stable since 1.87.
    let lib =
        "//! MSRV canary.\n\n/// Whether `n` is even.\npub fn even(n: u32) -> bool {\n    n.is_multiple_of(2)\n}\n";
    std::fs::write(dir.join("Cargo.toml"), manifest).map_err(|e| format!("cannot write the canary: {e}"))?;
    std::fs::write(src.join("lib.rs"), lib).map_err(|e| format!("cannot write the canary: {e}"))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["clippy", "--quiet", "--offline", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .args(["--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .map_err(|e| format!("cannot run cargo clippy on the MSRV canary: {e}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lint = ["incompatible", "msrv"].join("_");
    let minor = msrv.strip_prefix("1.").and_then(|v| v.split('.').next()).and_then(|v| v.parse::<u32>().ok());
    if minor.is_none_or(|m| m >= 87) {
        eprintln!("note: rust-version {msrv} is newer than the canary's API (1.87); canary skipped");
    } else if output.status.success() || !stderr.contains(&lint) {
        return Err(format!(
            "clippy accepted an API stabilized in 1.87 under rust-version {msrv}: the MSRV is not enforced \
             (is clippy too old, or the lint disabled?)\n{stderr}"
        ));
    }
    eprintln!("==> msrv canary: clippy rejects a 1.87 API under rust-version {msrv} ({:.1?})", started.elapsed());
    Ok(())
}

/// How many `if`/`while` conditions in `source` are `let` chains (`if let A = b && c`).
/// A token scan, so it needs no syntax tree: at each nesting level, the tokens between an
/// `if`/`while` and the next `{` group are a condition; a `let` and a `&&` operator side
/// by side in one condition make a chain. A file that does not tokenize counts as none
/// (the compiler reports it).
fn let_chains(source: &str) -> usize {
    source.parse::<TokenStream>().map_or(0, count_chains)
}

fn count_chains(tokens: TokenStream) -> usize {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut count = 0;
    let mut i = 0;
    while i < tokens.len() {
        if let TokenTree::Group(g) = &tokens[i] {
            count += count_chains(g.stream());
        }
        let is_condition = matches!(&tokens[i], TokenTree::Ident(id) if id == "if" || id == "while");
        i += 1;
        if !is_condition {
            continue;
        }
        let start = i;
        while i < tokens.len() && !matches!(&tokens[i], TokenTree::Group(g) if g.delimiter() == Delimiter::Brace) {
            i += 1;
        }
        if is_let_chain(&tokens[start..i]) {
            count += 1;
        }
        // Groups inside the condition (closures, calls) are scanned too.
        for t in &tokens[start..i] {
            if let TokenTree::Group(g) = t {
                count += count_chains(g.stream());
            }
        }
    }
    count
}

/// A `let` and a `&&` operator at the top level of one condition. `&&` right after `let`,
/// `=`, `|`, `&` or `,` is a double reference (`let &&x = ..`, `= &&y`), not the operator.
fn is_let_chain(condition: &[TokenTree]) -> bool {
    let has_let = condition.iter().any(|t| matches!(t, TokenTree::Ident(id) if id == "let"));
    let has_and = condition.windows(3).any(|w| {
        let operator = matches!(&w[1], TokenTree::Punct(p) if p.as_char() == '&' && p.spacing() == Spacing::Joint)
            && matches!(&w[2], TokenTree::Punct(p) if p.as_char() == '&');
        let after_reference_start = match &w[0] {
            TokenTree::Ident(id) => id == "let",
            TokenTree::Punct(p) => matches!(p.as_char(), '=' | '|' | '&' | ','),
            _ => false,
        };
        operator && !after_reference_start
    });
    has_let && has_and
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_let_chains_and_not_their_look_alikes() {
        assert_eq!(let_chains("fn f() { if let Some(x) = a && x > 1 { } }"), 1);
        assert_eq!(let_chains("fn f() { while a && let Some(x) = b.pop() { } }"), 1);
        assert_eq!(let_chains("fn f() { if c { g(|| { if let Some(_) = a && b {} }) } }"), 1);
        assert_eq!(let_chains("fn f() { if x { } else if let Some(y) = z && y {} }"), 1);
        assert_eq!(let_chains("fn f() { if let Some(x) = a { if x && y {} } }"), 0);
        assert_eq!(let_chains("fn f() { if a && b { let c = d && e; } }"), 0);
        assert_eq!(let_chains("fn f() { if let &&x = y { } if let Some(&&z) = w { } }"), 0);
        assert_eq!(let_chains("fn f() { if let x = &&y { } }"), 0);
    }

    #[test]
    fn reads_features_publish_and_rust_version() {
        let m = parse_manifest(
            "[package]\nname = \"a\"\nrust-version.workspace = true\n\n[features]\ndefault = [\"x\"]\n## Docs.\nx = []\ny = [\"dep:z\"]\n\n[dependencies]\nz = \"1\"\n",
        )
        .expect("a package");
        assert_eq!((m.krate.name.as_str(), m.publish, m.inherits_rust_version), ("a", true, true));
        assert_eq!(m.krate.features, ["x", "y"]);
        let m =
            parse_manifest("[package]\nname = \"b\"\npublish = false\nrust-version = \"1.87\"\n").expect("a package");
        assert!(!m.publish && !m.inherits_rust_version && m.krate.features.is_empty());
        assert!(parse_manifest("[workspace]\nmembers = []\n").is_none());
    }
}
