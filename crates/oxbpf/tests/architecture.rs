//! ARCHITECTURE.md's dependency table is the graph the Cargo.tomls have.

use std::collections::BTreeMap;
use std::path::Path;

fn oxbpf_deps(manifest: &str) -> Vec<String> {
    // The [dependencies] section only (dev-dependencies are not the graph).
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_deps = l == "[dependencies]";
            continue;
        }
        if in_deps
            && let Some(name) = l.split(['.', ' ', '=']).next()
            && name.starts_with("oxbpf-")
        {
            out.push(name.to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn the_documented_graph_is_the_cargo_graph() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let arch = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut documented = BTreeMap::new();
    for line in arch.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() == 4 && cells[1].starts_with("oxbpf") && !cells[1].contains(' ') {
            let mut deps: Vec<String> = cells[2]
                .split(',')
                .map(str::trim)
                .filter(|d| d.starts_with("oxbpf"))
                .map(String::from)
                .collect();
            deps.sort();
            documented.insert(cells[1].to_string(), deps);
        }
    }
    let mut actual = BTreeMap::new();
    for e in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let manifest = std::fs::read_to_string(e.path().join("Cargo.toml")).unwrap();
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = \""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap()
            .to_string();
        actual.insert(name, oxbpf_deps(&manifest));
    }
    assert_eq!(
        documented, actual,
        "ARCHITECTURE.md's table vs the Cargo.tomls"
    );
}

/// The peer `rbpf` is linked into the benchmark harness only: no other
/// crate has it among its `[dependencies]` (dev-dependencies may).
#[test]
fn rbpf_is_a_benchmark_dependency_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for e in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        let manifest = std::fs::read_to_string(e.path().join("Cargo.toml")).unwrap();
        let mut section = String::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
            } else if line.starts_with("rbpf") && section == "[dependencies]" {
                assert!(
                    e.path().ends_with("oxbpf-bench"),
                    "{} links rbpf outside dev-dependencies",
                    e.path().display()
                );
            }
        }
    }
}
