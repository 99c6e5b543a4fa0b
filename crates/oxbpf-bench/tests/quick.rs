//! The benchmark binary runs and its engines agree (`oxbpf-bench jit
//! --quick` fails when any engine's result differs from the interpreter's).

use std::process::Command;

#[test]
fn jit_bench_engines_agree() {
    let out = Command::new(env!("CARGO_BIN_EXE_oxbpf-bench"))
        .args(["jit", "--quick"])
        .output()
        .expect("run oxbpf-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "oxbpf-bench jit --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "arith_div",
        "checksum",
        "switch",
        "sieve",
        "load64",
        "xdp_parse",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no row for {name}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("JIT compile, benchmark programs one by one"),
        "{stdout}"
    );
}
