//! Per-run overhead of the trusted JIT on a two-instruction program (for
//! profiling): `jit_overhead [N]`.
fn main() {
    let code = [0xb7u8, 0, 0, 0, 7, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let program = oxbpf_vm::Program::from_bytes(&code).unwrap();
    let mut vm = oxbpf_vm::Vm::new(program);
    vm.config.engine = oxbpf_vm::Engine::Jit;
    vm.config.count_instructions = false;
    // SAFETY: `r0 = 7; exit` touches no memory.
    vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let mut mem = vec![0u8; 64];
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(vm.run_raw(&mut mem).unwrap());
    }
    println!("{:.1} ns per run", t.elapsed().as_nanos() as f64 / n as f64);
}
