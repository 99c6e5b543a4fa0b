//! Compiles a program many times (for profiling the JIT's compile speed):
//! `compile_loop PROGRAM.bin [N]` (`TRUSTED=1`: code for verified programs).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = std::fs::read(&args[1]).expect("program");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20000);
    let program = oxbpf_vm::Program::from_bytes(&code).unwrap();
    let mut config = oxbpf_vm::Config::default();
    if std::env::var_os("TRUSTED").is_some() {
        // SAFETY: the code is compiled, never run.
        config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
        config.count_instructions = false;
    }
    let t = std::time::Instant::now();
    for _ in 0..n {
        let p = program.clone_uncompiled();
        std::hint::black_box(oxbpf_vm::jit::compile(&p, &config).unwrap());
    }
    let e = t.elapsed();
    println!(
        "{:.1} us per compile, {:.1} M insns/s",
        e.as_secs_f64() * 1e6 / n as f64,
        (program.len() * n) as f64 / e.as_secs_f64() / 1e6
    );
}
