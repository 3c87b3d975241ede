//! The layout rules of ARCHITECTURE.md, checked on the source tree: no import cycle among the
//! crate's top-level modules, none among the files of one folder, and no file over the size a
//! reader can hold in mind.
//!
//! The module graph is read from the source text: every `crate::a::b` / `super::x` path outside
//! `#[cfg(test)]` code (and every name in a `use crate::{a, b}` group) is an edge from the file it
//! is written in to the deepest module it names. A parent's `mod child;` is not an edge.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Lines of code a file may have before its tests (`#[cfg(test)]`); ARCHITECTURE.md says ~400.
const MAX_CODE_LINES: usize = 420;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under src/ with its module path (`src/render/context/mod.rs` → render::context).
fn modules() -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(src()).unwrap().with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|last| last == "mod") {
                module.pop();
            }
            if module == ["lib"] || module == ["main"] {
                module.clear();
            }
            (module, path)
        })
        .collect()
}

/// The code of a file before its test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The deepest known module that `path` starts with.
fn resolve(known: &BTreeMap<Module, PathBuf>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains_key(m))
}

/// `crate::`, `super::` and `self::` paths in `text`, made absolute from `module`.
fn paths(module: &Module, text: &str) -> Vec<Module> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_ident(bytes[i - 1]);
        let rest: String = bytes[i..bytes.len().min(i + 8)].iter().collect();
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| rest.starts_with(h));
        let (Some(head), true) = (head, boundary) else {
            i += 1;
            continue;
        };
        let mut base: Module = match head {
            "crate::" => Vec::new(),
            "super::" => module[..module.len().saturating_sub(1)].to_vec(),
            _ => module.clone(),
        };
        i += head.len();
        // Segments: idents separated by `::`; a `{` group ends the path (handled below).
        let mut segments = Vec::new();
        loop {
            let start = i;
            while i < bytes.len() && is_ident(bytes[i]) {
                i += 1;
            }
            if start == i {
                break;
            }
            segments.push(bytes[start..i].iter().collect::<String>());
            if bytes[i..].starts_with(&[':', ':']) {
                i += 2;
            } else {
                break;
            }
        }
        while segments.first().is_some_and(|s| s == "super") {
            segments.remove(0);
            base.pop();
        }
        if bytes.get(i) == Some(&'{') {
            // `crate::{a, b::c}`: each name in the group, one level deep.
            let end = bytes[i..]
                .iter()
                .position(|c| *c == '}')
                .map_or(i, |p| i + p);
            let group: String = bytes[i + 1..end].iter().collect();
            for name in group.split(',') {
                let first = name.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    let mut p = base.clone();
                    p.extend(segments.iter().cloned());
                    p.push(first.to_owned());
                    out.push(p);
                }
            }
        }
        base.extend(segments);
        out.push(base);
    }
    out
}

fn edges() -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules();
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, path) in &known {
        for p in paths(module, &code(path)) {
            if let Some(target) = resolve(&known, &p) {
                if target != *module {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    edges
}

/// The strongly connected groups of more than one node (Tarjan).
fn cycles(
    nodes: &BTreeSet<Module>,
    edges: &BTreeMap<Module, BTreeSet<Module>>,
) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        next: usize,
        found: Vec<Vec<Module>>,
    }
    fn visit(s: &mut State, v: &Module) {
        s.index.insert(v.clone(), s.next);
        s.low.insert(v.clone(), s.next);
        s.next += 1;
        s.stack.push(v.clone());
        let targets: Vec<Module> = s.edges.get(v).into_iter().flatten().cloned().collect();
        for w in targets {
            if !s.index.contains_key(&w) {
                visit(s, &w);
                let low = s.low[v].min(s.low[&w]);
                s.low.insert(v.clone(), low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[&w]);
                s.low.insert(v.clone(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                let done = w == *v;
                group.push(w);
                if done {
                    break;
                }
            }
            if group.len() > 1 {
                s.found.push(group);
            }
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in nodes {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

/// The graph between the children of `parent`: an edge from child a to child b when any module
/// inside a names any module inside b.
fn child_graph(
    parent: &[String],
    edges: &BTreeMap<Module, BTreeSet<Module>>,
) -> (BTreeSet<Module>, BTreeMap<Module, BTreeSet<Module>>) {
    let depth = parent.len() + 1;
    let child = |m: &Module| {
        (m.len() >= depth && m[..parent.len()] == *parent).then(|| m[..depth].to_vec())
    };
    let mut nodes = BTreeSet::new();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for m in modules().keys() {
        if let Some(c) = child(m) {
            nodes.insert(c);
        }
    }
    for (from, targets) in edges {
        let Some(a) = child(from) else { continue };
        for to in targets {
            if let Some(b) = child(to) {
                if a != b {
                    graph.entry(a.clone()).or_default().insert(b);
                }
            }
        }
    }
    (nodes, graph)
}

fn show(groups: &[Vec<Module>]) -> String {
    groups
        .iter()
        .map(|g| {
            let names: Vec<String> = g.iter().map(|m| m.join("::")).collect();
            format!("[{}]", names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn the_reader_finds_the_edges_it_must() {
    let edges = edges();
    let from = |m: &str| {
        edges
            .get(&m.split("::").map(str::to_owned).collect::<Module>())
            .cloned()
            .unwrap_or_default()
    };
    let module = |m: &str| m.split("::").map(str::to_owned).collect::<Module>();
    // Known imports, one of each form: `use crate::x::Y`, `use super::x`, a `crate::{..}` group.
    assert!(
        from("app").contains(&module("pipeline")),
        "{:?}",
        from("app")
    );
    assert!(from("cli::check").contains(&module("cli::exit")));
    assert!(from("store::deliveries").contains(&module("store")));
}

#[test]
fn no_import_cycle_among_modules_or_among_the_files_of_a_folder() {
    let edges = edges();
    let mut problems = Vec::new();
    let parents: BTreeSet<Module> = modules()
        .keys()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    for parent in parents {
        let (nodes, graph) = child_graph(&parent, &edges);
        let found = cycles(&nodes, &graph);
        if !found.is_empty() {
            let place = if parent.is_empty() {
                "crate".to_owned()
            } else {
                parent.join("::")
            };
            problems.push(format!("{place}: {}", show(&found)));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles: {}",
        problems.join("\n")
    );
}

#[test]
fn no_source_file_outgrows_a_reader() {
    let long: Vec<String> = modules()
        .values()
        .filter_map(|path| {
            let lines = code(path).lines().count();
            (lines > MAX_CODE_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {long:?}");
}

/// The store is one interface with two implementations: outside `src/store/` nothing names a
/// database driver, so every caller goes through the typed methods (`store/api.rs`) and works
/// on SQLite and PostgreSQL alike. (`config/` parses `state.url` with tokio-postgres's own
/// parser, so that `check` and `run` agree on it.)
#[test]
fn only_the_store_talks_to_a_database() {
    let leaks: Vec<String> = modules()
        .into_iter()
        .filter(|(module, _)| module.first().is_none_or(|top| top != "store"))
        .filter(|(module, _)| module != &["config", "build"])
        .filter_map(|(_, path)| {
            let code = code(&path);
            ["rusqlite", "tokio_postgres", "deadpool_postgres"]
                .iter()
                .find(|driver| code.contains(*driver))
                .map(|driver| format!("{} uses {driver}", path.display()))
        })
        .collect();
    assert!(leaks.is_empty(), "{leaks:?}");
}
