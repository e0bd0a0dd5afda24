//! `cargo xtask package`: the checks that the crates and the npm package can be published.
//!
//! 1. **Metadata**: every published crate (`crates/*`, unless `publish = false`) has a
//!    description, the workspace's license and repository, `documentation` on docs.rs, a
//!    README that says it is an independent implementation, at most 5 valid keywords,
//!    crates.io category slugs, docs.rs metadata that documents every feature, and both
//!    license files; the workspace's repository URL is not a placeholder.
//! 2. **Public API**: no item a crate exports names a type or trait of a foreign crate
//!    that neither the crate nor a witrpc crate below it re-exports (what rustc's nightly-only
//!    `exported_private_dependencies` lint would say, read from the source with `syn`).
//! 3. **`cargo package`** of all of them in one run (cargo orders them by dependency and
//!    resolves each against the ones packaged before it), without the per-crate verify
//!    build, which would rebuild the dependency tree once per crate; instead the packaged
//!    facade is unpacked outside the workspace and built with every feature against the
//!    other packaged crates, which compiles every crate's packaged sources once (a
//!    published crate the facade does not depend on is built the same way on its own).
//! 4. **npm**: a copy of `clients/typescript` without `node_modules` and `dist` runs
//!    `npm ci`, `npm run build`, `npm pack --dry-run` (the package must hold ES modules,
//!    `.d.ts` types and the README) and `npm run size`, whose minified + gzip figure may
//!    not grow more than 10% past the one in its README.

mod api;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// crates.io category slugs this workspace may use (all valid on crates.io; extend from
/// <https://crates.io/category_slugs> when a crate needs another).
const CATEGORY_SLUGS: &[&str] = &[
    "api-bindings",
    "asynchronous",
    "cryptography",
    "development-tools",
    "development-tools::procedural-macro-helpers",
    "encoding",
    "network-programming",
    "parser-implementations",
    "web-programming",
    "web-programming::http-client",
    "web-programming::http-server",
    "web-programming::websocket",
];

/// The crate that re-exports all the others; its packaged copy is the one built.
const FACADE: &str = "witrpc";

/// A published crate of the workspace.
#[derive(Debug)]
struct Krate {
    name: String,
    dir: PathBuf,
    manifest: String,
}

/// Runs every publish check.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let crates = publishable(root)?;
    step("metadata", || metadata(root, &crates))?;
    step("public API", || api::check(&crates))?;
    step("cargo package", || package(root, &crates))?;
    step("npm pack", || npm_pack(root))
}

fn step(name: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let started = Instant::now();
    eprintln!("\n==> package: {name}");
    f().map_err(|e| format!("package step `{name}`: {e}"))?;
    eprintln!("==> package: {name}: ok in {:.1?}", started.elapsed());
    Ok(())
}

fn publishable(root: &Path) -> Result<Vec<Krate>, String> {
    let dir = root.join("crates");
    let mut crates = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let dir = entry.map_err(|e| format!("cannot list crates/: {e}"))?.path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else { continue };
        let package = section(&manifest, "package");
        if value(package, "publish").as_deref() == Some("false") {
            continue;
        }
        let name = value(package, "name").ok_or_else(|| format!("{}: no package name", dir.display()))?;
        crates.push(Krate { name, dir, manifest });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    if crates.is_empty() {
        return Err("no publishable crate under crates/".into());
    }
    Ok(crates)
}

/// The body of `[name]` in a manifest (up to the next table header), or "".
fn section<'a>(manifest: &'a str, name: &str) -> &'a str {
    let header = format!("[{name}]");
    let mut start = 0;
    for line in manifest.split_inclusive('\n') {
        start += line.len();
        if line.trim() == header {
            let body = &manifest[start..];
            let end = body.find("\n[").map_or(body.len(), |i| i + 1);
            return &body[..end];
        }
    }
    ""
}

/// The raw value of `key = value` in a section body (quotes removed from strings).
fn value(section: &str, key: &str) -> Option<String> {
    section.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The strings of `key = ["a", "b"]` (on one line).
fn list(section: &str, key: &str) -> Option<Vec<String>> {
    let raw = value(section, key)?;
    let inner = raw.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split(',').map(|s| s.trim().trim_matches('"').to_owned()).filter(|s| !s.is_empty()).collect())
}

fn metadata(root: &Path, crates: &[Krate]) -> Result<(), String> {
    let mut problems = Vec::new();
    let workspace =
        std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    let shared = section(&workspace, "workspace.package");
    for key in ["license", "repository", "homepage"] {
        match value(shared, key) {
            None => problems.push(format!("[workspace.package] has no `{key}`")),
            Some(v)
                if key != "license"
                    && (!v.starts_with("https://") || v.contains(".invalid") || v.contains("example.")) =>
            {
                problems.push(format!("[workspace.package] `{key}` = {v:?} is a placeholder; give the real URL"));
            }
            Some(_) => {}
        }
    }
    for file in ["LICENSE-MIT", "LICENSE-APACHE"] {
        if !root.join(file).is_file() {
            problems.push(format!("{file} is missing at the repository root"));
        }
    }
    for krate in crates {
        let name = &krate.name;
        let package = section(&krate.manifest, "package");
        let mut problem = |what: String| problems.push(format!("{name}: {what}"));
        if value(package, "description").is_none_or(|d| d.len() < 20) {
            problem("needs a `description` of a sentence".into());
        }
        for key in ["license", "repository", "homepage"] {
            if value(package, &format!("{key}.workspace")).as_deref() != Some("true") {
                problem(format!("needs `{key}.workspace = true` (one URL/license for every crate)"));
            }
        }
        let docs = format!("https://docs.rs/{name}");
        if value(package, "documentation").as_deref() != Some(docs.as_str()) {
            problem(format!("needs `documentation = \"{docs}\"`"));
        }
        match value(package, "readme") {
            Some(readme) => match std::fs::read_to_string(krate.dir.join(&readme)) {
                Ok(text) if text.contains("not** the") || text.contains("not the") => {}
                Ok(_) => problem(format!("{readme} must say that witrpc is not the official WitRPC")),
                Err(e) => problem(format!("cannot read {readme}: {e}")),
            },
            None => problem("needs `readme = \"README.md\"`".into()),
        }
        match list(package, "keywords") {
            Some(k) if (1..=5).contains(&k.len()) => {
                for bad in k.iter().filter(|k| !valid_keyword(k)) {
                    problem(format!(
                        "keyword {bad:?}: at most 20 ASCII letters, digits, `-` or `_`, starting with a letter"
                    ));
                }
            }
            _ => problem("needs 1 to 5 `keywords` (one line)".into()),
        }
        match list(package, "categories") {
            Some(c) if !c.is_empty() && c.len() <= 5 => {
                for bad in c.iter().filter(|c| !CATEGORY_SLUGS.contains(&c.as_str())) {
                    problem(format!(
                        "category {bad:?} is not a crates.io slug this check knows (xtask/src/publish.rs)"
                    ));
                }
            }
            _ => problem("needs 1 to 5 `categories` (one line)".into()),
        }
        let docs_rs = section(&krate.manifest, "package.metadata.docs.rs");
        if value(docs_rs, "all-features").as_deref() != Some("true")
            || list(docs_rs, "rustdoc-args").as_deref() != Some(&["--cfg".to_owned(), "docsrs".to_owned()])
        {
            problem("needs [package.metadata.docs.rs] with `all-features = true` and `rustdoc-args = [\"--cfg\", \"docsrs\"]`".into());
        }
        for file in ["LICENSE-MIT", "LICENSE-APACHE"] {
            if !krate.dir.join(file).is_file() {
                problem(format!("{file} is missing (a symlink to the root's)"));
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("\n  {}", problems.join("\n  "))) }
}

fn valid_keyword(k: &str) -> bool {
    k.len() <= 20
        && k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '+')
}

// ---- cargo package ---------------------------------------------------------------------

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn command(program: &str, args: &[&str], dir: &Path, hint: &str) -> Result<(), String> {
    eprintln!("  $ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}; {hint}"))?;
    if status.success() { Ok(()) } else { Err(format!("`{program} {}` failed ({status}); {hint}", args.join(" "))) }
}

fn package(root: &Path, crates: &[Krate]) -> Result<(), String> {
    let workspace =
        std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    let version =
        value(section(&workspace, "workspace.package"), "version").ok_or("[workspace.package] has no version")?;
    let mut args = vec!["package", "--no-verify", "--locked", "--allow-dirty"];
    for krate in crates {
        args.extend(["-p", krate.name.as_str()]);
    }
    command(
        &cargo(),
        &args,
        root,
        "read cargo's message: a missing file, a bad manifest key or a dependency without a version",
    )?;

    // Unpack outside the workspace: cargo refuses a package under a workspace that does
    // not list it.
    let unpacked = std::env::temp_dir().join(format!("witrpc-package-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(unpacked.clone());
    std::fs::create_dir_all(&unpacked).map_err(|e| format!("cannot create {}: {e}", unpacked.display()))?;
    let packages = target_dir(root).join("package");
    let mut patches = Vec::new();
    for krate in crates {
        let file = packages.join(format!("{}-{version}.crate", krate.name));
        let listing =
            Command::new("tar").arg("-tzf").arg(&file).output().map_err(|e| format!("cannot run tar: {e}"))?;
        let listing = String::from_utf8_lossy(&listing.stdout);
        for needed in ["Cargo.toml", "Cargo.lock", "README.md", "LICENSE-MIT", "LICENSE-APACHE", "src/lib.rs"] {
            let entry = format!("{}-{version}/{needed}", krate.name);
            if !listing.lines().any(|l| l == entry) {
                return Err(format!("{} does not hold {needed}", file.display()));
            }
        }
        command(
            "tar",
            &["-xzf", &file.display().to_string(), "-C", &unpacked.display().to_string()],
            root,
            "the packaged .crate is not a gzip tarball",
        )?;
        let dir = unpacked.join(format!("{}-{version}", krate.name));
        patches.push((
            krate.name.as_str(),
            format!("patch.crates-io.{}.path={:?}", krate.name, dir.display().to_string()),
        ));
    }
    if !crates.iter().any(|k| k.name == FACADE) {
        return Err(format!("the facade `{FACADE}` is not among the published crates"));
    }
    // The facade, with every feature, compiles every crate it depends on. A published
    // crate it does not depend on is built on its own, with every feature too.
    let facade = crates.iter().find(|k| k.name == FACADE).map_or("", |k| k.manifest.as_str());
    let facade_deps = section(facade, "dependencies");
    let built = crates.iter().filter(|k| {
        k.name == FACADE || !facade_deps.lines().any(|l| l.split(['.', '=', ' ']).next() == Some(k.name.as_str()))
    });
    // The workspace's target directory: dependencies built for the tests are reused.
    let target = target_dir(root).display().to_string();
    for krate in built {
        let manifest = unpacked.join(format!("{}-{version}", krate.name)).join("Cargo.toml").display().to_string();
        let mut args = vec!["build", "--manifest-path", manifest.as_str(), "--all-features"];
        // Every other packaged crate stands in for its crates.io release.
        for (_, patch) in patches.iter().filter(|(name, _)| *name != krate.name) {
            args.extend(["--config", patch.as_str()]);
        }
        args.extend(["--target-dir", target.as_str()]);
        command(
            &cargo(),
            &args,
            root,
            "the packaged sources do not build on their own: a file outside the crate (include_str!), a path-only dependency, or a feature that needs another",
        )?;
    }
    Ok(())
}

/// Removes a temporary directory when the step ends, however it ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---- npm pack --------------------------------------------------------------------------

fn npm_pack(root: &Path) -> Result<(), String> {
    let source = root.join("clients/typescript");
    let copy = std::env::temp_dir().join(format!("witrpc-npm-pack-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(copy.clone());
    copy_tree(&source, &copy)?;
    let hint = "needs Node 20 and npm (npm ci reads package-lock.json from the registry)";
    command("npm", &["ci", "--no-audit", "--no-fund"], &copy, hint)?;
    command("npm", &["run", "build"], &copy, "the TypeScript client does not compile from a clean install")?;
    eprintln!("  $ npm pack --dry-run --json");
    let out = Command::new("npm")
        .args(["pack", "--dry-run", "--json", "--ignore-scripts"])
        .current_dir(&copy)
        .output()
        .map_err(|e| format!("cannot run npm pack: {e}; {hint}"))?;
    if !out.status.success() {
        return Err(format!("`npm pack --dry-run` failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    for needed in
        ["README.md", "package.json", "dist/index.js", "dist/index.d.ts", "dist/client.js", "dist/client.d.ts"]
    {
        if !listing.contains(&format!("\"path\": \"{needed}\"")) {
            return Err(format!(
                "the npm package would not hold {needed}; check `files` in clients/typescript/package.json"
            ));
        }
    }
    for unwanted in ["\"path\": \"test/", "\"path\": \"dist/generated/", "\"path\": \"node_modules/"] {
        if listing.contains(unwanted) {
            return Err(format!("the npm package would hold {unwanted:?}…; check `files` in package.json"));
        }
    }
    eprintln!("  $ npm run --silent size");
    let out = Command::new("npm")
        .args(["run", "--silent", "size"])
        .current_dir(&copy)
        .output()
        .map_err(|e| format!("cannot run npm run size: {e}; {hint}"))?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    eprintln!("  {line}");
    let measured = gzip_figure(&line).ok_or_else(|| format!("unexpected output of `npm run size`: {line:?}"))?;
    let readme = std::fs::read_to_string(source.join("README.md")).map_err(|e| format!("cannot read README: {e}"))?;
    let documented = readme
        .lines()
        .find(|l| l.starts_with("| minified + gzip |"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|cell| cell.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse::<u64>().ok())
        .ok_or("clients/typescript/README.md has no `| minified + gzip | N |` row")?;
    if measured * 10 > documented * 11 {
        return Err(format!(
            "the browser bundle is {measured} bytes minified + gzip, over 10% more than the {documented} in clients/typescript/README.md; update the figure (npm run size) or trim the client"
        ));
    }
    Ok(())
}

/// `bundle: 25469 bytes minified, 8698 bytes minified + gzip` → 8698.
fn gzip_figure(line: &str) -> Option<u64> {
    let (_, rest) = line.split_once(", ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Copies `from` to `to`, leaving out what a clean checkout does not have.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("cannot create {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("cannot list {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", from.display()))?;
        let name = entry.file_name();
        if name == "node_modules" || name == "dist" || name.to_string_lossy().ends_with(".tgz") {
            continue;
        }
        let path = entry.path();
        let target = to.join(&name);
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| format!("cannot copy {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_package_section_values_and_lists() {
        let manifest = "[package]\nname = \"a\"\nkeywords = [\"x\", \"y\"]\n\n[dependencies]\nname = \"b\"\n";
        let package = section(manifest, "package");
        assert_eq!(value(package, "name").as_deref(), Some("a"));
        assert_eq!(list(package, "keywords"), Some(vec!["x".to_owned(), "y".to_owned()]));
        assert_eq!(value(section(manifest, "dependencies"), "name").as_deref(), Some("b"));
        assert_eq!(section(manifest, "features"), "");
    }

    #[test]
    fn keywords_follow_crates_io_rules() {
        assert!(valid_keyword("websocket"));
        assert!(!valid_keyword("web socket"));
        assert!(!valid_keyword("1rpc"));
        assert!(!valid_keyword("a-keyword-that-is-far-too-long"));
    }

    #[test]
    fn metadata_names_each_missing_or_placeholder_field() {
        let root = std::env::temp_dir().join(format!("witrpc-metadata-check-{}", std::process::id()));
        let dir = root.join("crates/witrpc-x");
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace.package]\nlicense = \"MIT\"\nrepository = \"https://example.invalid/x\"\nhomepage = \"https://example.invalid/x\"\n",
        )
        .expect("temp file");
        std::fs::write(dir.join("README.md"), "# witrpc-x\n").expect("temp file");
        let manifest = "[package]\nname = \"witrpc-x\"\ndescription = \"A crate that does one thing well.\"\n\
            license.workspace = true\nrepository.workspace = true\nhomepage.workspace = true\nreadme = \"README.md\"\n\
            keywords = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\"]\ncategories = [\"networking\"]\n";
        let krate = Krate { name: "witrpc-x".into(), dir, manifest: manifest.into() };
        let result = metadata(&root, &[krate]);
        let _ = std::fs::remove_dir_all(&root);
        let message = result.expect_err("the fixture breaks every rule");
        for expected in [
            "`repository` = \"https://example.invalid/x\" is a placeholder",
            "LICENSE-MIT is missing at the repository root",
            "witrpc-x: needs `documentation = \"https://docs.rs/witrpc-x\"`",
            "witrpc-x: README.md must say that witrpc is not the official WitRPC",
            "witrpc-x: needs 1 to 5 `keywords`",
            "witrpc-x: category \"networking\" is not a crates.io slug",
            "witrpc-x: needs [package.metadata.docs.rs]",
            "witrpc-x: LICENSE-APACHE is missing",
        ] {
            assert!(message.contains(expected), "missing {expected:?} in:\n{message}");
        }
        assert!(!message.contains("description"), "{message}");
    }

    #[test]
    fn reads_the_gzip_figure_of_npm_run_size() {
        assert_eq!(gzip_figure("bundle: 25469 bytes minified, 8698 bytes minified + gzip"), Some(8698));
        assert_eq!(gzip_figure("bundle: 25469 bytes"), None);
    }
}
