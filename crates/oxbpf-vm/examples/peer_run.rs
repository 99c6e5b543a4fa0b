//! Runs one benchmark program many times on one engine, for `perf stat`:
//! `peer_run PROGRAM.bin oxbpf|rbpf [N]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = std::fs::read(&args[1]).expect("program");
    let n: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let mut mem = vec![0u8; 4096];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in mem.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut acc = 0u64;
    if args[2] == "rbpf" {
        let mut vm = rbpf::EbpfVmRaw::new(Some(&code)).unwrap();
        vm.jit_compile().unwrap();
        for _ in 0..n {
            // SAFETY: benchmark program, run on 4096 bytes it was written for.
            acc = acc.wrapping_add(unsafe { vm.execute_program_jit(&mut mem) }.unwrap());
        }
    } else {
        let mut vm = oxbpf_vm::Vm::new(oxbpf_vm::Program::from_bytes(&code).unwrap());
        vm.config.engine = oxbpf_vm::Engine::Jit;
        vm.config.count_instructions = false;
        // SAFETY: benchmark program, run on 4096 bytes it was written for.
        vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
        for _ in 0..n {
            acc = acc.wrapping_add(vm.run_raw(&mut mem).unwrap().r0);
        }
    }
    println!("{acc:#x}");
}
