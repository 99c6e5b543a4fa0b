//! `cargo bench -p oxbpf-bench --bench jit`: the table of `oxbpf bench` —
//! oxbpf's JIT (unchecked and checked) and interpreter, the `rbpf` crate's
//! JIT and native code on the programs of benches/programs, side by side
//! with ratios, then the JIT's compile speed.

fn main() {
    // `cargo test --benches` passes `--test`: only check that the engines
    // agree and time each once.
    let quick = std::env::args().any(|a| a == "--test");
    if let Err(e) = oxbpf_bench::jit::run(quick) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
