//! The workspace keeps the shape `docs/architecture.md` describes: the
//! crates without IO depend on no runtime, broker, database or network
//! crate; no two modules of a crate import each other, directly or round a
//! loop; and no source file outside the tests grows past about 600 lines.
//! Needs no services.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a non-test source file may be, in lines.
const MAX_LINES: usize = 650;

/// The crates' source folders, relative to the workspace.
const SOURCES: [&str; 10] = [
    "schemas/src",
    "connectors/src",
    "pipeline/ledger/src",
    "pipeline/extract/src",
    "pipeline/llm/src",
    "pipeline/stages/src",
    "pipeline/runtime/src",
    "pipeline/tools/src",
    "pipeline/src",
    "tests/src",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of `file` in the crate rooted at `src`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("a file of the crate");
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// A test module's file (`tests.rs`, `*_tests.rs`), or one inside a module
/// that only tests compile (the simulation).
fn is_test_file(module: &[String]) -> bool {
    module
        .iter()
        .any(|m| m == "tests" || m.ends_with("_tests") || m == "sim")
}

/// `text` without its `#[cfg(test)] mod tests { … }` block (always last)
/// and without `//` comments.
fn code_of(text: &str) -> String {
    let end = text
        .find("#[cfg(test)]\nmod tests {")
        .or_else(|| text.find("#[cfg(test)]\npub(crate) mod tests {"))
        .unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(text: &str, at: usize) -> Option<&str> {
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Every path a module names through `crate::`, `super::` or `self::`,
/// as segments, with each item of a `{…}` group as its own path.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let start_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let Some(head) = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| start_ok && code[i..].starts_with(h))
        else {
            i += 1;
            continue;
        };
        let mut path = vec![head.trim_end_matches("::").to_owned()];
        let mut j = i + head.len();
        loop {
            if code[j..].starts_with('{') {
                let close = code[j..].find('}').map_or(code.len(), |c| j + c);
                for item in code[j + 1..close].split(',') {
                    let item = item.trim();
                    if let Some(first) = ident_at(item, 0)
                        && first != "self"
                    {
                        let mut p = path.clone();
                        p.push(first.to_owned());
                        out.push(p);
                    }
                }
                j = close;
                break;
            }
            match ident_at(code, j) {
                Some(id) => {
                    path.push(id.to_owned());
                    j += id.len();
                    if code[j..].starts_with("::") {
                        j += 2;
                    } else {
                        out.push(path.clone());
                        break;
                    }
                }
                None => break,
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// Edges between sibling modules (`parent` → (from, to)) of one crate.
fn sibling_edges(src: &Path) -> BTreeMap<String, BTreeSet<(String, String)>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in files {
        let module = module_of(src, &file);
        if is_test_file(&module) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("reading a source file");
        for path in paths_in(&code_of(&text)) {
            let mut target: Vec<String> = module.clone();
            let mut rest = path.as_slice();
            if rest[0] == "crate" {
                target.clear();
                rest = &rest[1..];
            } else {
                while let Some(head) = rest.first() {
                    match head.as_str() {
                        "super" => {
                            target.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
            }
            target.extend(rest.iter().cloned());
            let shared = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if shared < module.len() && shared < target.len() {
                let parent = module[..shared].join("::");
                edges
                    .entry(parent)
                    .or_default()
                    .insert((module[shared].clone(), target[shared].clone()));
            }
        }
    }
    edges
}

/// A loop among `edges`, if there is one.
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeSet<(String, String)>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for (_, to) in edges.iter().filter(|(from, to)| from == node && to != node) {
            if let Some(cycle) = visit(to, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .iter()
        .find_map(|(from, _)| visit(from, edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_its_importer() {
    let mut cycles = Vec::new();
    for src in SOURCES {
        for (parent, edges) in sibling_edges(&workspace().join(src)) {
            if let Some(cycle) = find_cycle(&edges) {
                cycles.push(format!("{src}, in `{parent}`: {}", cycle.join(" → ")));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let edges: BTreeSet<(String, String)> =
        [("html", "charts"), ("charts", "svg"), ("svg", "html")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
    let cycle = find_cycle(&edges).expect("a loop of three");
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    let code = "use super::{charts, format_time};\nuse super::svg::escape;\nlet x = crate::report::data::Report;";
    let paths: Vec<String> = paths_in(code).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        paths,
        [
            "super::charts",
            "super::format_time",
            "super::svg::escape",
            "crate::report::data::Report"
        ]
    );
}

#[test]
fn source_files_stay_readable() {
    let mut long = Vec::new();
    // The test kit is test code: only the crates' own sources count.
    for src in SOURCES.into_iter().filter(|s| *s != "tests/src") {
        let src = workspace().join(src);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            if is_test_file(&module_of(&src, &file)) {
                continue;
            }
            let text = std::fs::read_to_string(&file).expect("reading a source file");
            let lines = code_of(&text).lines().count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines (their tests not counted): split them\n{}",
        long.join("\n")
    );
}

/// `cargo tree` of `package`'s normal dependencies, one crate name a line.
fn dependencies(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(workspace())
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .output()
        .expect("running cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_crates_without_io_depend_on_no_io_crate() {
    let io = ["tokio", "rdkafka", "clickhouse", "reqwest", "hyper", "mio"];
    for package in ["chatcart-schemas", "chatcart-ledger", "chatcart-extract"] {
        let deps = dependencies(package);
        let found: Vec<&str> = io.into_iter().filter(|c| deps.contains(*c)).collect();
        assert!(found.is_empty(), "{package} depends on {found:?}");
    }
    // The stages reach the network only through the LLM adapter, and no
    // broker or database client at all.
    let deps = dependencies("chatcart-stages");
    for client in ["rdkafka", "clickhouse"] {
        assert!(
            !deps.contains(client),
            "chatcart-stages depends on {client}"
        );
    }
    assert!(deps.contains("chatcart-ledger"), "{deps:?}");
}

/// The workspace's crates from the bottom layer up: a crate may depend only
/// on crates before it.
const LAYERS: [&str; 10] = [
    "chatcart-schemas",
    "chatcart-ledger",
    "chatcart-extract",
    "chatcart-llm",
    "chatcart-stages",
    "chatcart-connectors",
    "chatcart-runtime",
    "chatcart-gateway",
    "chatcart-tools",
    "chatcart",
];

#[test]
fn dependencies_run_one_way_down_the_layers() {
    for (i, package) in LAYERS.iter().enumerate() {
        let deps = dependencies(package);
        let above: Vec<&str> = LAYERS[i + 1..]
            .iter()
            .copied()
            .filter(|c| deps.contains(*c))
            .collect();
        assert!(above.is_empty(), "{package} depends on {above:?}, above it");
    }
    // The check sees workspace crates at all (else it could not fail).
    assert!(dependencies("chatcart").contains("chatcart-runtime"));
}
