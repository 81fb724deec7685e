//! The crate's layout, checked from its `use` lines so it stays as designed:
//! the module import graph (one node per file) has no circle, and no module
//! imports from a stage above its own. The stages, lowest first, are the
//! pipeline's order (README, "Architecture"):
//!
//! | stage | modules |
//! |---|---|
//! | leaf | `body`, `duration`, `normalize`, `worker`, `metrics` |
//! | upstream | `upstream::*`, `splice` |
//! | store | `store::*` |
//! | auth | `auth::*` (credential kinds) |
//! | routes | `routes::*` (the table and per-route data) |
//! | config | `config::*` (compiles into the stages below) |
//! | proxy | `proxy::*` (the request's phases) |
//! | serve | `server::*`, `admin` |
//! | commands | `run`, `explain`, `tools`, `demo`, `logging`, `lib.rs` |
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod common;

const STAGES: &[(&str, &[&str])] = &[
    ("leaf", &["body", "duration", "normalize", "worker", "metrics", "manifest"]),
    ("upstream", &["upstream", "splice"]),
    ("store", &["store"]),
    ("auth", &["auth"]),
    ("routes", &["routes"]),
    ("config", &["config"]),
    ("proxy", &["proxy"]),
    ("serve", &["server", "admin"]),
    ("commands", &["run", "explain", "tools", "demo", "logging", "crate"]),
];

/// Module path (`auth::kinds::jwt`, `crate` for lib.rs) → source.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            // Unit tests kept beside their module (`jwt_tests.rs`) are not
            // part of the build's graph.
            if path.extension().is_none_or(|e| e != "rs") || path.to_string_lossy().ends_with("_tests.rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = match parts.join("::").as_str() {
                "lib" => "crate".to_owned(),
                "main" => continue,
                other => other.to_owned(),
            };
            out.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// The code that is compiled outside tests, without comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// Every path a `use` declaration names, braces expanded.
fn use_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = rest[..at].chars().last();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        expand(&squeeze(&rest[..end]), &mut out);
        rest = &rest[end..];
    }
    // Paths written inline: `crate::auth::unix_now()`, `super::X`, a child
    // module's `forward::forward(..)` (resolved later; others are external).
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(at) = code[i..].find("::").map(|at| i + at) {
        let mut start = at;
        while start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            start -= 1;
        }
        let path_start = start > 1 && &code[start - 2..start] == "::";
        if start < at && !path_start {
            let end = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| at + e);
            out.push(code[start..end].trim_end_matches(':').to_owned());
            i = end;
        } else {
            i = at + 2;
        }
    }
    out
}

/// A declaration without white space, ` as ` renames written `@`.
fn squeeze(decl: &str) -> String {
    decl.split_whitespace().collect::<Vec<_>>().join(" ").replace(" as ", "@").replace(' ', "")
}

fn expand(decl: &str, out: &mut Vec<String>) {
    let Some(open) = decl.find('{') else {
        out.push(decl.split('@').next().unwrap_or(decl).to_owned());
        return;
    };
    let mut depth = 0;
    let close = decl
        .char_indices()
        .skip(open)
        .find(|&(_, c)| {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            depth == 0
        })
        .map_or(decl.len() - 1, |(i, _)| i);
    let (prefix, inner, suffix) = (&decl[..open], &decl[open + 1..close], &decl[close + 1..]);
    let mut depth = 0;
    let mut item = String::new();
    for c in inner.chars().chain(std::iter::once(',')) {
        match c {
            ',' if depth == 0 => {
                if !item.is_empty() {
                    expand(&format!("{prefix}{item}{suffix}"), out);
                }
                item.clear();
                continue;
            }
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        item.push(c);
    }
}

/// The file module a path names, seen from `module` (longest known prefix).
fn resolve(module: &str, path: &str, known: &BTreeMap<String, String>) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty() && *s != "*").collect();
    let own: Vec<&str> = if module == "crate" { Vec::new() } else { module.split("::").collect() };
    let mut base: Vec<&str> = match segments.first().copied() {
        Some("crate") => {
            segments.remove(0);
            Vec::new()
        }
        Some("self") => {
            segments.remove(0);
            own.clone()
        }
        Some("super") => {
            let mut base = own.clone();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
            base
        }
        // A child module declared in this file (`use kinds::jwt`).
        Some(first) if known.contains_key(&[own.as_slice(), &[first]].concat().join("::")) => own.clone(),
        _ => return None,
    };
    base.extend(segments);
    (1..=base.len()).rev().map(|n| base[..n].join("::")).find(|name| known.contains_key(name))
}

/// The graph of `src/` (or of `$TOLLGATE_ARCH_SRC`, to look at another
/// tree, such as an older commit's).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = std::env::var_os("TOLLGATE_ARCH_SRC").map_or_else(|| common::repo().join("src"), Into::into);
    let known = modules(&src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &known {
        let targets = edges.entry(module.clone()).or_default();
        for path in use_paths(&code(text)) {
            if let Some(target) = resolve(module, &path, &known)
                && target != *module
            {
                targets.insert(target);
            }
        }
    }
    edges
}

/// Groups of modules that import each other in a circle (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let at = s.stack.iter().position(|m| *m == v).unwrap();
            let group: Vec<String> = s.stack.drain(at..).map(str::to_owned).collect();
            if group.len() > 1 {
                s.found.push(group);
            }
        }
    }
    let mut s = State { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn stage(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    STAGES
        .iter()
        .position(|(_, tops)| tops.contains(&top))
        .unwrap_or_else(|| panic!("module {module} has no stage: add it to STAGES and to README's Architecture"))
}

#[test]
fn the_module_graph_has_no_circle() {
    let edges = graph();
    assert!(edges.len() > 40, "the parser found only {} modules", edges.len());
    assert!(edges["proxy"].contains("auth"), "the parser misses imports: {:?}", edges["proxy"]);
    let found = circles(&edges);
    assert!(found.is_empty(), "modules that import each other in a circle: {found:#?}");
}

#[test]
fn no_module_imports_from_a_later_stage() {
    let edges = graph();
    let mut upward = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            if stage(to) > stage(from) {
                upward.push(format!("{from} ({}) -> {to} ({})", STAGES[stage(from)].0, STAGES[stage(to)].0));
            }
        }
    }
    assert!(upward.is_empty(), "imports that run back up the pipeline:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_circles_and_upward_imports() {
    let known: BTreeMap<String, String> =
        [("a", ""), ("a::b", ""), ("c", "")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert_eq!(resolve("a::b", "super::X", &known).as_deref(), Some("a"));
    assert_eq!(resolve("c", "crate::a::b::{X, Y}", &known).as_deref(), Some("a::b"));
    assert_eq!(resolve("a", "b::X", &known).as_deref(), Some("a::b"));
    assert_eq!(resolve("c", "std::fmt", &known), None);
    let mut paths = Vec::new();
    expand(&squeeze("crate::a::{b::{X, Y},\n Z as W, has_key}"), &mut paths);
    assert_eq!(paths, ["crate::a::b::X", "crate::a::b::Y", "crate::a::Z", "crate::a::has_key"]);
    let edges: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]
        .iter()
        .map(|(f, t)| (f.to_string(), BTreeSet::from([t.to_string()])))
        .collect();
    assert_eq!(circles(&edges).len(), 1);
    assert!(stage("proxy::respond") > stage("auth::kinds::jwt"));
}
