//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The read-only `shared/` data directory beside the repository, if present.
/// `OXBPF_SHARED` overrides the location.
pub fn shared_dir() -> Option<PathBuf> {
    let p = match std::env::var_os("OXBPF_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    p.is_dir().then_some(p)
}

/// Every `.o` file under `dir`, sorted.
pub fn objects_under(dir: &Path) -> Vec<PathBuf> {
    oxbpf_obj::object_files(&[dir.to_path_buf()])
        .into_iter()
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "o"))
        .collect()
}

/// Sample objects outside `invalid/`.
pub fn valid_samples() -> Option<Vec<PathBuf>> {
    let shared = shared_dir()?;
    Some(
        objects_under(&shared.join("ebpf-samples"))
            .into_iter()
            .filter(|p| !p.components().any(|c| c.as_os_str() == "invalid"))
            .collect(),
    )
}

/// Says why a test cannot run here. In CI (`CI` set) nothing may be
/// skipped: a missing prerequisite fails the test instead, so a green CI
/// never hides an untested path.
pub fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run every test, but this one lacks a prerequisite: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

/// Whether bpf(2) works here (root); says why not otherwise (and fails
/// in CI, see [`skip`]).
pub fn kernel_available() -> bool {
    match oxbpf_sys::available() {
        Ok(()) => true,
        Err(e) => {
            skip(&format!(
                "bpf() unavailable ({e}); the kernel tests run in CI as root"
            ));
            false
        }
    }
}

pub fn oxbpf_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oxbpf"))
}
