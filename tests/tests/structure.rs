//! The host's structure as ARCHITECTURE.md promises it: dependencies run one
//! way, between modules and between the files of a module (no file imports
//! one that imports it back), and no file is too big to hold in one's head.
//! Read from the sources, so a change that breaks either fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines a source file may have.
const LINES_MAX: usize = 600;

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path (`discovery/index`; `mod.rs` is its directory's).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let name = relative
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/");
    name.strip_suffix("/mod")
        .map_or(name.clone(), str::to_string)
}

/// The code of a file without its unit tests (which may reach anywhere).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {")
        .map_or(text, |at| &text[..at])
}

/// Identifier-path segments after `prefix::`, each occurrence (braced groups
/// expanded to their first segments).
fn paths_after<'a>(text: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let needle = format!("{prefix}::");
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        let before = rest[..at].chars().last();
        rest = &rest[at + needle.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `self::super::`, `a_crate::`, …
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let first = item.trim().split("::").next().unwrap_or("");
                if !first.is_empty() {
                    found.push(vec![first]);
                }
            }
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        found.push(rest[..end].split("::").filter(|s| !s.is_empty()).collect());
    }
    found
}

/// Module → the modules it imports (files of the host library).
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeMap<String, String> = files
        .iter()
        .filter(|f| !f.starts_with(src.join("bin")))
        .map(|f| {
            (
                module_of(src, f),
                std::fs::read_to_string(f).expect("readable"),
            )
        })
        .filter(|(m, _)| m != "lib" && m != "main" && !m.ends_with("/tests") && m != "tests")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &modules {
        let code = without_tests(text);
        let parent = module.rsplit_once('/').map_or("", |(p, _)| p);
        let mut targets = Vec::new();
        for path in paths_after(code, "crate") {
            // The longest prefix that names a module file.
            if let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("/"))
                .find(|t| modules.contains_key(t))
            {
                targets.push(target);
            }
        }
        for path in paths_after(code, "super") {
            let Some(first) = path.first() else { continue };
            let target = if parent.is_empty() {
                first.to_string()
            } else {
                format!("{parent}/{first}")
            };
            if modules.contains_key(&target) {
                targets.push(target);
            }
        }
        for target in targets {
            // A file may use its own ancestors' façades (their re-exports).
            if target != *module && !module.starts_with(&format!("{target}/")) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// A path from `from` back to `to`, if one exists.
fn path_to(
    edges: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![to.to_string()]);
    }
    if !seen.insert(from.to_string()) {
        return None;
    }
    for next in edges.get(from).into_iter().flatten() {
        if let Some(mut rest) = path_to(edges, next, to, seen) {
            rest.insert(0, from.to_string());
            return Some(rest);
        }
    }
    None
}

fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in edges {
        for to in targets {
            if let Some(back) = path_to(edges, to, from, &mut BTreeSet::new()) {
                found.push(format!("{from} → {}", back.join(" → ")));
            }
        }
    }
    found
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src")
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let files = graph(&src());
    assert!(
        files.len() > 50,
        "the host's files were read: {}",
        files.len()
    );
    let found = cycles(&files);
    assert!(
        found.is_empty(),
        "import cycles between files:\n{}",
        found.join("\n")
    );
}

#[test]
fn modules_depend_one_way() {
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in graph(&src()) {
        let head = |m: &str| m.split('/').next().unwrap_or(m).to_string();
        for to in targets {
            if head(&from) != head(&to) {
                top.entry(head(&from)).or_default().insert(head(&to));
            }
        }
    }
    let found = cycles(&top);
    assert!(
        found.is_empty(),
        "import cycles between modules:\n{}",
        found.join("\n")
    );
    // The layering ARCHITECTURE.md draws: doors → shared door layer → market.
    for door in ["api", "mcp", "a2a"] {
        assert!(
            top[door].contains("doors"),
            "{door} frames the shared door layer"
        );
    }
    for below in ["market", "doors"] {
        for door in ["api", "mcp", "a2a"] {
            assert!(
                !top.get(below).is_some_and(|t| t.contains(door)),
                "{below} must not depend on the {door} door"
            );
        }
    }
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let edges: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let found = cycles(&edges);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found.iter().all(|c| !c.contains('d')));
    assert_eq!(
        paths_after(
            "use super::{graph::Inner, lock};\nuse crate::market::Market;",
            "super"
        ),
        vec![vec!["graph"], vec!["lock"]]
    );
}

#[test]
fn no_source_file_is_over_the_size_limit() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let over: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).ok()?.lines().count();
            (lines > LINES_MAX).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(over.is_empty(), "over {LINES_MAX} lines: {over:?}");
}
