//! The public-API check of `cargo xtask package`: every foreign type or trait that an
//! exported item names (in a signature, a public field, a bound, a supertrait) must be
//! re-exported by the crate or by a witrpc crate below it, so users can name it without
//! adding the same dependency at a matching version. This is what rustc's nightly-only
//! `exported_private_dependencies` lint checks; here it is read from the source with
//! `syn`, so it sees paths as written (`use` imports resolved, re-exported modules
//! covering their items), not resolved types. Trait impls add no names of their own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::{
    FnArg, GenericArgument, Generics, ImplItem, Item, PathArguments, ReturnType, TraitItem, Type, TypeParamBound,
};

use super::{Krate, section, value};

/// The full path of a foreign item (`["hyper", "http", "Response"]`), or of a re-export.
type Foreign = Vec<String>;

/// Items a dependency re-exports at its root from one of its own public modules, which
/// therefore are nameable through a re-export of that module: hyper's root `Request`,
/// `Response`, ... are the `http` crate's, re-exported as `hyper::http`.
const ROOT_ALIASES: &[(&str, &str, &[&str])] =
    &[("hyper", "http", &["HeaderMap", "Method", "Request", "Response", "StatusCode", "Uri", "Version"])];

/// `hyper::Response` → `hyper::http::Response` (see [`ROOT_ALIASES`]).
fn normalize(mut path: Foreign) -> Foreign {
    for (dep, module, items) in ROOT_ALIASES {
        if path.len() == 2 && path[0] == *dep && items.contains(&path[1].as_str()) {
            path.insert(1, (*module).to_owned());
        }
    }
    path
}

/// Fails naming each foreign path that an exported item shows and no witrpc crate re-exports.
pub(super) fn check(crates: &[Krate]) -> Result<(), String> {
    struct Api {
        named: BTreeMap<Foreign, String>,
        reexports: BTreeSet<Foreign>,
        workspace_deps: Vec<String>,
    }
    let mut apis = BTreeMap::new();
    for krate in crates {
        if value(section(&krate.manifest, "lib"), "proc-macro").as_deref() == Some("true") {
            continue; // a proc-macro crate exports only its macros
        }
        let names: Vec<&str> = section(&krate.manifest, "dependencies")
            .lines()
            .filter_map(|l| l.split(['.', '=', ' ']).next())
            .filter(|n| !n.is_empty() && !n.starts_with('#'))
            .collect();
        let deps: BTreeSet<String> =
            names.iter().filter(|n| !n.starts_with("witrpc")).map(|n| n.replace('-', "_")).collect();
        let workspace_deps = names.iter().filter(|n| n.starts_with("witrpc")).map(|n| n.to_string()).collect();
        let mut files = Vec::new();
        rust_files(&krate.dir.join("src"), &mut files)?;
        let mut api = Api { named: BTreeMap::new(), reexports: BTreeSet::new(), workspace_deps };
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let ast = syn::parse_file(&text).map_err(|e| format!("{}: cannot parse: {e}", file.display()))?;
            let shown = file.strip_prefix(&krate.dir).unwrap_or(file).display().to_string();
            Scan { deps: &deps, imports: BTreeMap::new(), reexports: &mut api.reexports, named: &mut api.named }
                .items(&ast.items, &shown);
        }
        apis.insert(krate.name.clone(), api);
    }
    let mut problems = Vec::new();
    for (name, api) in &apis {
        // A foreign item is nameable when this crate or a witrpc crate below it
        // re-exports it or a module holding it (`witrpc_core::bytes` serves every crate
        // above core).
        let mut below = vec![name.as_str()];
        let mut i = 0;
        while let Some(n) = below.get(i).copied() {
            for dep in apis.get(n).map(|a| a.workspace_deps.as_slice()).unwrap_or_default() {
                if !below.contains(&dep.as_str()) {
                    below.push(dep);
                }
            }
            i += 1;
        }
        for (foreign, site) in &api.named {
            let path = normalize(foreign.clone());
            let reexported =
                below.iter().filter_map(|n| apis.get(*n)).any(|a| a.reexports.iter().any(|r| path.starts_with(r)));
            if !reexported {
                let shown = path.join("::");
                problems.push(format!(
                    "{name}: {site} names `{shown}`, which neither {name} nor a witrpc crate below it re-exports; add `pub use {shown};` (or re-export its crate or module) or keep it out of the API"
                ));
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(format!("\n  {}", problems.join("\n  "))) }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?.path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if stem == "tests" {
            continue; // `#[cfg(test)] mod tests;`
        }
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Collects, for one file, the foreign paths its exported items name.
struct Scan<'a> {
    deps: &'a BTreeSet<String>,
    /// Local name → full path of `use dep::..::Name [as Local]`.
    imports: BTreeMap<String, Foreign>,
    /// Paths re-exported by a `pub use` (a crate, a module or an item).
    reexports: &'a mut BTreeSet<Foreign>,
    named: &'a mut BTreeMap<Foreign, String>,
}

impl Scan<'_> {
    fn items(&mut self, items: &[Item], file: &str) {
        for item in items {
            if let Item::Use(u) = item {
                let public = matches!(u.vis, syn::Visibility::Public(_));
                self.use_tree(&u.tree, Vec::new(), public);
            }
        }
        for item in items {
            if hidden(item_attrs(item)) {
                continue;
            }
            let mut types = Vec::new();
            let mut bounds = Vec::new();
            let what = match item {
                Item::Fn(f) if public(&f.vis) => {
                    signature(&f.sig, &mut types, &mut bounds);
                    format!("fn {}", f.sig.ident)
                }
                Item::Struct(s) if public(&s.vis) => {
                    generics(&s.generics, &mut types, &mut bounds);
                    types.extend(s.fields.iter().filter(|f| public(&f.vis)).map(|f| f.ty.clone()));
                    format!("struct {}", s.ident)
                }
                Item::Enum(e) if public(&e.vis) => {
                    generics(&e.generics, &mut types, &mut bounds);
                    types.extend(e.variants.iter().flat_map(|v| v.fields.iter().map(|f| f.ty.clone())));
                    format!("enum {}", e.ident)
                }
                Item::Type(t) if public(&t.vis) => {
                    generics(&t.generics, &mut types, &mut bounds);
                    types.push((*t.ty).clone());
                    format!("type {}", t.ident)
                }
                Item::Const(c) if public(&c.vis) => {
                    types.push((*c.ty).clone());
                    format!("const {}", c.ident)
                }
                Item::Static(s) if public(&s.vis) => {
                    types.push((*s.ty).clone());
                    format!("static {}", s.ident)
                }
                Item::Trait(t) if public(&t.vis) => {
                    generics(&t.generics, &mut types, &mut bounds);
                    bounds.extend(t.supertraits.iter().cloned());
                    for item in &t.items {
                        match item {
                            TraitItem::Fn(f) => signature(&f.sig, &mut types, &mut bounds),
                            TraitItem::Type(a) => {
                                bounds.extend(a.bounds.iter().cloned());
                                types.extend(a.default.iter().map(|(_, ty)| ty.clone()));
                            }
                            TraitItem::Const(c) => types.push(c.ty.clone()),
                            _ => {}
                        }
                    }
                    format!("trait {}", t.ident)
                }
                // Inherent methods are API; trait impls add no names of their own.
                Item::Impl(i) if i.trait_.is_none() => {
                    let mut any = false;
                    for item in &i.items {
                        let ImplItem::Fn(f) = item else { continue };
                        if public(&f.vis) && !hidden(&f.attrs) {
                            signature(&f.sig, &mut types, &mut bounds);
                            any = true;
                        }
                    }
                    if any {
                        generics(&i.generics, &mut types, &mut bounds);
                    }
                    format!("a method of `{}`", quote::ToTokens::to_token_stream(&i.self_ty))
                }
                Item::Mod(m) => {
                    if let Some((_, inner)) = &m.content {
                        let saved = self.imports.clone();
                        self.items(inner, file);
                        self.imports = saved;
                    }
                    continue;
                }
                _ => continue,
            };
            let mut paths = Vec::new();
            for ty in &types {
                type_paths(ty, &mut paths);
            }
            for bound in &bounds {
                bound_paths(bound, &mut paths);
            }
            for path in paths {
                if let Some(foreign) = self.foreign(&path) {
                    self.named.entry(foreign).or_insert_with(|| format!("{what} ({file})"));
                }
            }
        }
    }

    fn use_tree(&mut self, tree: &syn::UseTree, prefix: Vec<String>, public: bool) {
        match tree {
            syn::UseTree::Path(p) => {
                let mut prefix = prefix;
                prefix.push(p.ident.to_string());
                self.use_tree(&p.tree, prefix, public);
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(tree, prefix.clone(), public);
                }
            }
            syn::UseTree::Name(n) => self.use_name(&prefix, n.ident.to_string(), n.ident.to_string(), public),
            syn::UseTree::Rename(r) => self.use_name(&prefix, r.ident.to_string(), r.rename.to_string(), public),
            syn::UseTree::Glob(_) => {
                if public && prefix.first().is_some_and(|first| self.deps.contains(first)) {
                    self.reexports.insert(prefix);
                }
            }
        }
    }

    fn use_name(&mut self, prefix: &[String], name: String, local: String, public: bool) {
        // `use dep::module::{self}` imports `module` itself.
        let mut full = prefix.to_vec();
        if name != "self" {
            full.push(name);
        }
        if !full.first().is_some_and(|first| self.deps.contains(first)) {
            return;
        }
        let local = if local == "self" { full.last().cloned().unwrap_or_default() } else { local };
        if public {
            self.reexports.insert(full.clone());
        }
        self.imports.insert(local, full);
    }

    /// The full path when `path` leads into a foreign crate.
    fn foreign(&self, path: &syn::Path) -> Option<Foreign> {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        let first = segments.first()?;
        if self.deps.contains(first) {
            return Some(segments);
        }
        let mut full = self.imports.get(first)?.clone();
        full.extend(segments.into_iter().skip(1));
        Some(full)
    }
}

fn public(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

fn item_attrs(item: &Item) -> &[syn::Attribute] {
    match item {
        Item::Fn(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Const(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        _ => &[],
    }
}

/// `#[doc(hidden)]` or `#[cfg(test)]`: not part of the documented API.
fn hidden(attrs: &[syn::Attribute]) -> bool {
    is_test(attrs)
        || attrs.iter().any(|a| {
            a.path().is_ident("doc") && quote::ToTokens::to_token_stream(&a.meta).to_string().contains("hidden")
        })
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && quote::ToTokens::to_token_stream(&a.meta).to_string().contains("test"))
}

fn signature(sig: &syn::Signature, types: &mut Vec<Type>, bounds: &mut Vec<TypeParamBound>) {
    generics(&sig.generics, types, bounds);
    for input in &sig.inputs {
        match input {
            FnArg::Typed(t) => types.push((*t.ty).clone()),
            FnArg::Receiver(r) => types.push((*r.ty).clone()),
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        types.push((**ty).clone());
    }
}

fn generics(g: &Generics, types: &mut Vec<Type>, bounds: &mut Vec<TypeParamBound>) {
    for param in &g.params {
        match param {
            syn::GenericParam::Type(t) => {
                bounds.extend(t.bounds.iter().cloned());
                types.extend(t.default.iter().cloned());
            }
            syn::GenericParam::Const(c) => types.push(c.ty.clone()),
            syn::GenericParam::Lifetime(_) => {}
        }
    }
    for predicate in g.where_clause.iter().flat_map(|w| &w.predicates) {
        if let syn::WherePredicate::Type(p) = predicate {
            types.push(p.bounded_ty.clone());
            bounds.extend(p.bounds.iter().cloned());
        }
    }
}

fn bound_paths(bound: &TypeParamBound, out: &mut Vec<syn::Path>) {
    if let TypeParamBound::Trait(t) = bound {
        path_paths(&t.path, out);
    }
}

fn path_paths(path: &syn::Path, out: &mut Vec<syn::Path>) {
    out.push(path.clone());
    for segment in &path.segments {
        match &segment.arguments {
            PathArguments::AngleBracketed(a) => {
                for arg in &a.args {
                    match arg {
                        GenericArgument::Type(t) => type_paths(t, out),
                        GenericArgument::AssocType(a) => type_paths(&a.ty, out),
                        GenericArgument::Constraint(c) => c.bounds.iter().for_each(|b| bound_paths(b, out)),
                        _ => {}
                    }
                }
            }
            PathArguments::Parenthesized(p) => {
                p.inputs.iter().for_each(|t| type_paths(t, out));
                if let ReturnType::Type(_, t) = &p.output {
                    type_paths(t, out);
                }
            }
            PathArguments::None => {}
        }
    }
}

fn type_paths(ty: &Type, out: &mut Vec<syn::Path>) {
    match ty {
        Type::Path(p) => {
            if let Some(q) = &p.qself {
                type_paths(&q.ty, out);
            }
            path_paths(&p.path, out);
        }
        Type::Array(a) => type_paths(&a.elem, out),
        Type::Slice(s) => type_paths(&s.elem, out),
        Type::Reference(r) => type_paths(&r.elem, out),
        Type::Ptr(p) => type_paths(&p.elem, out),
        Type::Paren(p) => type_paths(&p.elem, out),
        Type::Group(g) => type_paths(&g.elem, out),
        Type::Tuple(t) => t.elems.iter().for_each(|t| type_paths(t, out)),
        Type::ImplTrait(i) => i.bounds.iter().for_each(|b| bound_paths(b, out)),
        Type::TraitObject(o) => o.bounds.iter().for_each(|b| bound_paths(b, out)),
        Type::BareFn(f) => {
            f.inputs.iter().for_each(|a| type_paths(&a.ty, out));
            if let ReturnType::Type(_, t) = &f.output {
                type_paths(t, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_aliases_map_to_the_reexported_module() {
        let path = |p: &str| p.split("::").map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(normalize(path("hyper::Response")), path("hyper::http::Response"));
        assert_eq!(normalize(path("hyper::body::Incoming")), path("hyper::body::Incoming"));
    }

    fn findings(deps: &[&str], source: &str) -> (BTreeMap<Foreign, String>, BTreeSet<Foreign>) {
        let deps = deps.iter().map(|d| d.to_string()).collect();
        let mut reexports = BTreeSet::new();
        let mut named = BTreeMap::new();
        let ast = syn::parse_file(source).expect("test source parses");
        Scan { deps: &deps, imports: BTreeMap::new(), reexports: &mut reexports, named: &mut named }
            .items(&ast.items, "t.rs");
        (named, reexports)
    }

    #[test]
    fn finds_foreign_types_in_exported_signatures_only() {
        let (named, reexports) = findings(
            &["bytes", "tokio", "uuid"],
            "use bytes::Bytes; use tokio::sync::mpsc; pub use uuid::Uuid;
             pub fn f(b: Bytes) -> Option<mpsc::Sender<u8>> { todo() }
             pub(crate) fn hidden(_: tokio::net::TcpStream) {}
             pub struct S { pub id: Uuid, inner: tokio::task::JoinHandle<()> }
             impl S { pub fn g(&self) -> impl Iterator<Item = bytes::BytesMut> { todo() } fn h(_: tokio::time::Instant) {} }
             impl From<tokio::time::Instant> for S {}",
        );
        let names: Vec<_> = named.keys().map(|p| p.join("::")).collect();
        assert_eq!(names, ["bytes::Bytes", "bytes::BytesMut", "tokio::sync::mpsc::Sender", "uuid::Uuid"]);
        let reexports: Vec<_> = reexports.iter().map(|p| p.join("::")).collect();
        assert_eq!(reexports, ["uuid::Uuid"]);
    }

    #[test]
    fn reexports_below_and_of_modules_count_and_the_rest_is_named() {
        let root = std::env::temp_dir().join(format!("witrpc-api-check-{}", std::process::id()));
        let krate = |name: &str, deps: &str, lib: &str| {
            let dir = root.join(name);
            std::fs::create_dir_all(dir.join("src")).expect("temp dir");
            std::fs::write(dir.join("src/lib.rs"), lib).expect("temp file");
            let manifest = format!("[package]\nname = \"{name}\"\n\n[dependencies]\n{deps}");
            Krate { name: name.to_owned(), dir, manifest }
        };
        let crates = [
            krate("witrpc-a", "bytes.workspace = true\n", "pub use bytes;\n"),
            krate(
                "witrpc-b",
                "witrpc-a.workspace = true\nbytes.workspace = true\nhyper = { workspace = true }\n",
                "use hyper::Response;\npub use hyper::http;\n\
                 pub fn ok(_: bytes::Bytes) -> Response<()> { todo() }\n\
                 pub fn bad(_: hyper::body::Incoming) {}\n",
            ),
        ];
        let result = check(&crates);
        let _ = std::fs::remove_dir_all(&root);
        let message = result.expect_err("hyper::body::Incoming is not re-exported");
        assert!(message.contains("witrpc-b: fn bad (src/lib.rs) names `hyper::body::Incoming`"), "{message}");
        assert_eq!(message.matches("names `").count(), 1, "{message}");
    }
}
