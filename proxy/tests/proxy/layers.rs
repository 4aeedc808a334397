//! The proxy's modules form layers that import only downward (design §4): this test reads every
//! `crate::` path in `proxy/src` and fails on an import from a higher layer, and on a cycle
//! between top-level modules of the same layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → layer. A module missing here fails the test: place it on purpose.
const LAYERS: &[(&str, u8)] = &[
    ("body", 0),
    ("clock", 0),
    ("config", 0),
    ("context", 0),
    ("error", 0),
    ("auth", 1),
    ("cache", 1),
    ("cors", 1),
    ("gateway_response", 1),
    ("hygiene", 1),
    ("integration", 1),
    ("limits", 1),
    ("telemetry", 1),
    ("upstream", 1),
    ("validation", 1),
    ("websocket", 1),
    ("state", 2),
    ("tables", 2),
    ("pipeline", 3),
    ("server", 4),
    ("lib", 5),
    ("snapshot_client", 5),
    ("fuzzing", 5),
];

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read proxy/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`pipeline/admit.rs` → `pipeline`).
fn owner(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// Every top-level module named after `crate::` in the text, outside comments (`crate::{a, b}`
/// names each of `a` and `b`).
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name = item.trim().split("::").next().unwrap_or_default();
                    if !name.is_empty() {
                        found.insert(name.to_string());
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

#[test]
fn no_module_of_the_proxy_imports_from_a_higher_layer_or_in_a_circle() {
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let from = owner(&src, file);
        let Some(&from_layer) = layers.get(from.as_str()) else {
            problems.push(format!("module {from} has no layer in LAYERS"));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for to in imports(&text) {
            // Items at the crate root (`crate::Proxy`) are the top layer's.
            let to = if to.starts_with(|c: char| c.is_ascii_uppercase()) {
                "lib".to_string()
            } else {
                to
            };
            let Some(&to_layer) = layers.get(to.as_str()) else {
                problems.push(format!("{}: crate::{to} is not a module", file.display()));
                continue;
            };
            if to == from {
                continue;
            }
            if to_layer > from_layer {
                problems.push(format!(
                    "{} (L{from_layer}) imports crate::{to} (L{to_layer})",
                    file.display()
                ));
            }
            graph.entry(from.clone()).or_default().insert(to);
        }
    }
    // Same-layer imports are allowed only without a circle.
    for start in graph.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    problems.push(format!("circle: {} -> {start}", path.join(" -> ")));
                } else if !path.contains(next) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_import_reader_sees_grouped_and_plain_paths_and_skips_comments() {
    let text = "use crate::{body::full, context};\nlet x = crate::tables::T; // crate::server\n";
    let got: Vec<String> = imports(text).into_iter().collect();
    assert_eq!(got, ["body", "context", "tables"]);
}
