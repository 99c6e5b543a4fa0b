//! `cargo bench -p oxbpf --bench jit`: the table of `oxbpf bench` — oxbpf's
//! JIT (unchecked and checked) and interpreter, the `rbpf` crate's JIT and
//! native code on the programs of benches/programs, side by side with
//! ratios, then the JIT's compile speed.

fn main() {
    // `cargo test --benches` passes `--test`: only check that the engines
    // agree and time each once.
    let quick = std::env::args().any(|a| a == "--test");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_oxbpf"));
    cmd.arg("bench");
    if quick {
        cmd.arg("--quick");
    }
    let status = cmd.status().expect("run oxbpf bench");
    assert!(status.success(), "oxbpf bench failed");
}
