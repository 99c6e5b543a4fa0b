//! The standard bpf_conformance suite and the repo's own `.data` tests,
//! run on every engine through the library.

mod common;

use std::path::{Path, PathBuf};

use oxbpf_conformance::{collect_files, run_files};

use oxbpf_conformance::engines::{ConformanceEngine, EngineKind};

fn run_dir(dir: &Path, kind: EngineKind) -> (usize, Vec<(String, String)>) {
    let files = collect_files(&[dir.to_path_buf()]).unwrap();
    let s = run_files(&files, &ConformanceEngine { kind }, |_, _| {});
    (s.passed, s.failures)
}

#[test]
fn own_data_tests_pass_on_every_engine() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    for kind in [EngineKind::Interpreter, EngineKind::Jit] {
        let (passed, failures) = run_dir(&dir, kind);
        assert!(failures.is_empty(), "{}: {failures:#?}", kind.name());
        assert!(passed >= 60, "only {passed} own tests on {}", kind.name());
    }
    // Many own tests check what the kernel refuses to load on purpose
    // (reserved fields, out-of-range jumps) or results above 32 bits; the
    // differential kernel test compares the rest result by result.
    if common::kernel_available() {
        let (passed, _) = run_dir(&dir, EngineKind::Kernel);
        assert!(passed >= 80, "kernel: only {passed} own tests");
    }
}

#[test]
fn bpf_conformance_suite_passes_on_every_engine() {
    let Some(shared) = common::shared_dir() else {
        return common::skip("../shared/bpf_conformance not found");
    };
    let dir = shared.join("bpf_conformance/tests");
    for kind in [EngineKind::Interpreter, EngineKind::Jit] {
        let (passed, failures) = run_dir(&dir, kind);
        assert!(failures.is_empty(), "{}: {failures:#?}", kind.name());
        assert_eq!(passed, 313, "{}", kind.name());
    }
    // The kernel returns 32-bit results and refuses some programs on
    // purpose (the differential kernel test compares it result by result);
    // here it must pass what it can run.
    if common::kernel_available() {
        let (passed, _) = run_dir(&dir, EngineKind::Kernel);
        assert!(passed >= 300, "kernel: only {passed} of 313");
    }
}
