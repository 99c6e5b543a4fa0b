//! Per-run overhead of each engine on a two-instruction program.
use std::time::Instant;
fn main() {
    let code = [0xb7u8, 0, 0, 0, 7, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    let program = oxbpf_vm::Program::from_bytes(&code).unwrap();
    for (engine, trusted) in [
        (oxbpf_vm::Engine::Interpreter, false),
        (oxbpf_vm::Engine::Jit, false),
        (oxbpf_vm::Engine::Jit, true),
    ] {
        let mut vm = oxbpf_vm::Vm::new(program.clone());
        vm.config.engine = engine;
        if trusted {
            // SAFETY: `r0 = 7; exit` touches no memory.
            vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
        }
        let mut mem = vec![0u8; 64];
        let n = 1_000_000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(vm.run_raw(&mut mem).unwrap());
        }
        println!(
            "{engine:?}: {:.0} ns per run",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
    let mut rvm = rbpf::EbpfVmRaw::new(Some(&code)).unwrap();
    rvm.jit_compile().unwrap();
    let mut mem = vec![0u8; 64];
    let n = 1_000_000;
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: `r0 = 7; exit` touches no memory.
        std::hint::black_box(unsafe { rvm.execute_program_jit(&mut mem) }.unwrap());
    }
    println!(
        "rbpf jit: {:.0} ns per run",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
