//! The module structure: the top-level modules of `src/` form layers, a
//! module imports only from its own layer or those below, and no set of
//! modules imports each other in a cycle. A newcomer can then read the code
//! bottom-up, and a module can be tested without the ones above it.
//!
//! Reads the source text (no NATS, no build of anything else): every
//! `crate::x` path and `use crate::{x, ..}` group in non-test code, comments
//! and string literals left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules from the bottom up; a module may import from its
/// own layer and the ones before it. A new module gets a place here.
const LAYERS: &[&[&str]] = &[
    // Foundations: no I/O of their own.
    &["util", "subject", "error", "trace_context"],
    &["config", "frame"],
    &["telemetry", "net", "metrics"],
    &["otlp"],
    // The NATS connection, then what is built on it.
    &["bus"],
    &["streams", "protocol", "auth"],
    &["fanout"],
    &["replay"],
    &["subscription"],
    &["ws"],
    &["sse"],
    &["stats"],
    // Documents and wiring.
    &["asyncapi"],
    &["state"],
    &["openapi", "console", "swagger_ui"],
    &["routes"],
    &["app"],
    &["cli"],
];

#[test]
fn no_module_imports_a_higher_layer() {
    let graph = module_graph();
    let layer = layer_of();
    let mut wrong = Vec::new();
    for (from, deps) in &graph {
        let Some(&own) = layer.get(from.as_str()) else {
            wrong.push(format!("{from} has no place in LAYERS"));
            continue;
        };
        for to in deps {
            if layer.get(to.as_str()).is_some_and(|&l| l > own) {
                wrong.push(format!(
                    "{from} (layer {own}) imports {to} (layer {})",
                    layer[to.as_str()]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layering broken:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn no_module_cycle() {
    let graph = module_graph();
    let cycles: Vec<String> = strongly_connected(&graph)
        .into_iter()
        .filter(|scc| scc.len() > 1)
        .map(|scc| describe_cycle(&graph, &scc))
        .collect();
    assert!(
        cycles.is_empty(),
        "module cycles:\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn the_checks_see_test_code_and_comments_as_nothing() {
    let code = r#"
        // use crate::app::AppState;
        /* crate::routes */ use crate::{bus::Bus, frame::{Frame, StoredAt}, error};
        let s = "crate::console";
        let c = '"'; let l: &'static str = crate::subject::X;
        #[cfg(test)]
        mod tests { use crate::ws::Y; fn f() { let _ = "}"; } }
        fn after() { crate::metrics::M; }
    "#;
    let deps = dependencies(
        &strip_tests(&blank_comments_and_strings(code)),
        &BTreeMap::new(),
    );
    let want: BTreeSet<String> = ["bus", "frame", "error", "subject", "metrics"]
        .map(String::from)
        .into();
    assert_eq!(deps, want);
}

fn layer_of() -> BTreeMap<&'static str, usize> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.iter().map(move |m| (*m, i)))
        .collect()
}

/// Top-level module -> the top-level modules its non-test code uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let reexports = reexports(&lib);
    let test_files = test_only_files(&src);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        if matches!(&*first, "bin" | "lib.rs" | "main.rs") || test_files.contains(&file) {
            continue;
        }
        let module = first.trim_end_matches(".rs").to_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let deps = dependencies(&strip_tests(&blank_comments_and_strings(&text)), &reexports);
        graph.entry(module).or_default().extend(deps);
    }
    for (module, deps) in graph.iter_mut() {
        deps.remove(module);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Files declared as `#[cfg(test)] mod x;` (with or without `#[path]`).
fn test_only_files(src: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for file in rust_files(src) {
        let text = std::fs::read_to_string(&file).unwrap();
        let dir = file.parent().unwrap();
        let stem = file.file_stem().unwrap().to_string_lossy();
        let own_dir = if matches!(&*stem, "mod" | "lib" | "main") {
            dir.to_owned()
        } else {
            dir.join(&*stem)
        };
        let mut rest = text.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = &rest[at + "#[cfg(test)]".len()..];
            let item = rest.trim_start();
            let (path, item) = match item.strip_prefix("#[path = \"") {
                Some(p) => {
                    let end = p.find('"').unwrap();
                    (
                        Some(dir.join(&p[..end])),
                        p[end..].split_once(']').unwrap().1.trim_start(),
                    )
                }
                None => (None, item),
            };
            let Some(decl) = item.strip_prefix("mod ") else {
                continue;
            };
            let name: String = decl
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !decl[name.len()..].trim_start().starts_with(';') {
                continue;
            }
            found.insert(path.unwrap_or_else(|| {
                let flat = own_dir.join(format!("{name}.rs"));
                if flat.exists() {
                    flat
                } else {
                    own_dir.join(&name).join("mod.rs")
                }
            }));
        }
    }
    found
}

/// `pub use x::{A, B}` in lib.rs: `crate::A` is a use of `x`.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.trim_end_matches(';').split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            map.insert(name.trim().to_owned(), module.to_owned());
        }
    }
    map
}

/// The source with comments removed and the contents of string and char
/// literals blanked, so neither braces nor paths inside them count.
fn blank_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"/*") {
                        depth += 1;
                        i += 2;
                    } else if b[i..].starts_with(b"*/") {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            b'r' if raw_string_hashes(&b[i..]).is_some() && !ident_byte(b, i) => {
                let hashes = raw_string_hashes(&b[i..]).unwrap();
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                i += 2 + hashes;
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                i += close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => {
                i += 3;
                out.push_str("' '");
            }
            c => {
                // Multi-byte UTF-8 goes through whole (only ASCII is matched).
                let len = utf8_len(c);
                out.push_str(&src[i..i + len]);
                i += len;
            }
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

fn ident_byte(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// `r"`, `r#"`, `r##"` ...: the number of hashes.
fn raw_string_hashes(b: &[u8]) -> Option<usize> {
    let hashes = b[1..].iter().take_while(|&&c| c == b'#').count();
    (b.get(1 + hashes) == Some(&b'"')).then_some(hashes)
}

/// Drops every item marked `#[cfg(test)]` (a `mod tests { .. }`, a fn, a use).
fn strip_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = skip_item(&rest[at + "#[cfg(test)]".len()..]);
    }
    out.push_str(rest);
    out
}

/// The text after the item that starts `code`: at its first `;` outside
/// braces, or at the brace closing its first `{`.
fn skip_item(code: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in code.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[i + 1..];
                }
            }
            ';' if depth == 0 => return &code[i + 1..],
            _ => {}
        }
    }
    ""
}

/// The top-level names after `crate::` (each path, and each member of a
/// `use crate::{..}` group), re-exports from lib.rs resolved.
fn dependencies(code: &str, reexports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut add = |name: &str| {
        let name = reexports.get(name).map_or(name, String::as_str);
        if !name.is_empty() && name != "self" {
            deps.insert(name.to_owned());
        }
    };
    for (at, _) in code.match_indices("crate::") {
        let after = &code[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        add(&ident_at(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            add(&ident_at(after));
        }
    }
    deps
}

fn ident_at(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    self.low.insert(v, self.low[v].min(self.low[w]));
                } else if self.on_stack.contains(w) {
                    self.low.insert(v, self.low[v].min(self.index[w]));
                }
            }
            if self.low[v] == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    scc.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                scc.sort();
                self.found.push(scc);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

/// The modules of a cycle and, for each, which of the others it imports.
fn describe_cycle(graph: &BTreeMap<String, BTreeSet<String>>, scc: &[String]) -> String {
    let edges: Vec<String> = scc
        .iter()
        .map(|m| {
            let inside: Vec<&str> = graph[m]
                .iter()
                .filter(|d| scc.contains(d))
                .map(String::as_str)
                .collect();
            format!("{m} -> {}", inside.join(", "))
        })
        .collect();
    format!("[{}]: {}", scc.join(", "), edges.join("; "))
}
