//! The standard bpf_conformance suite and the repo's own `.data` tests,
//! run on every engine through the library.

mod common;

use std::path::{Path, PathBuf};

use oxbpf_conformance::{collect_files, run_files};

#[path = "../src/engine.rs"]
#[allow(dead_code)]
mod engine;

use engine::{ConformanceEngine, EngineKind};

fn run_dir(dir: &Path, kind: EngineKind) -> (usize, Vec<(String, String)>) {
    let files = collect_files(&[dir.to_path_buf()]).unwrap();
    let s = run_files(&files, &ConformanceEngine { kind }, |_, _| {});
    (s.passed, s.failures)
}

#[test]
fn own_data_tests_pass_on_every_engine() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    {
        let kind = EngineKind::Interpreter;
        let (passed, failures) = run_dir(&dir, kind);
        assert!(failures.is_empty(), "{}: {failures:#?}", kind.name());
        assert!(passed >= 60, "only {passed} own tests");
    }
}

#[test]
fn bpf_conformance_suite_passes_on_every_engine() {
    let Some(shared) = common::shared_dir() else {
        return common::skip("../shared/bpf_conformance not found");
    };
    let dir = shared.join("bpf_conformance/tests");
    {
        let kind = EngineKind::Interpreter;
        let (passed, failures) = run_dir(&dir, kind);
        assert!(failures.is_empty(), "{}: {failures:#?}", kind.name());
        assert_eq!(passed, 313);
    }
}
