//! The layers `src/lib.rs` writes down, kept: a module uses only the modules of lower layers
//! (and its own). Each path into the crate (`crate::x`, `use crate::{x, ..}`) of every source
//! file is checked against the table; comments are not code and are left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layer of each top-level module, as `src/lib.rs` has them.
const LAYERS: &[(&str, u8)] = &[
    ("domain", 0),
    ("contract", 0),
    ("config", 0),
    ("support", 0),
    ("telemetry", 1),
    ("kafka", 2),
    ("shared", 2),
    ("schema_registry", 2),
    ("live", 3),
    ("consumer", 4),
    ("http", 5),
    ("startup", 6),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module)
        .map(|(_, layer)| *layer)
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The code of `source` without its comments.
fn code(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string is rare in this code base, and never before `crate::`.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` reaches with `crate::`, including inside `use crate::{a, b}`.
fn used_modules(code: &str) -> Vec<String> {
    let mut used = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                if !name.is_empty() {
                    used.push(name.to_owned());
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            used.push(name);
        }
    }
    used
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut breaches = BTreeMap::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        let Some(own) = layer(&module) else {
            assert!(
                ["lib", "main"].contains(&module.as_str()),
                "{module} is in no layer: add it to src/lib.rs and to LAYERS here"
            );
            continue;
        };
        let source = std::fs::read_to_string(file).unwrap();
        for used in used_modules(&code(&source)) {
            match layer(&used) {
                Some(theirs) if theirs > own => {
                    breaches
                        .entry(relative.display().to_string())
                        .or_insert_with(Vec::new)
                        .push(used);
                }
                Some(_) => {}
                // `crate::Config` and the like: what lib.rs re-exports.
                None => assert!(
                    ["Config", "Application"].contains(&used.as_str()),
                    "{}: crate::{used} is no module of a layer",
                    relative.display()
                ),
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "modules that reach up a layer: {breaches:#?}"
    );
}

#[test]
fn the_check_sees_uses_of_both_forms() {
    let used = used_modules("use crate::{http::router, kafka};\nlet x = crate::live::View;");
    assert_eq!(used, ["http", "kafka", "live"]);
    assert!(used_modules(&code("// crate::startup")).is_empty());
}
