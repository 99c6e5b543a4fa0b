//! Soundness of widened loops (`Options::widen_loops`): a program the
//! verifier accepts with loops proven by widening never faults in the
//! runtime-checked interpreter within an instruction budget (reaching the
//! budget is allowed: termination is what widening does not prove). Input
//! as verify_then_run's: the first byte sizes the memory, the next bytes
//! fill it, the rest is bytecode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oxbpf_vm::{Config, Helpers, Program, Vm};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n as usize).min(rest.len());
    let (mem, code) = rest.split_at(n);
    let code = &code[..code.len() / 8 * 8];
    let Ok(program) = Program::from_bytes(code) else { return };
    let opts = oxbpf_verifier::Options {
        raw_mem_len: Some(mem.len() as u64),
        max_insns_processed: 100_000,
        widen_loops: true,
        ..Default::default()
    };
    if oxbpf_verifier::verify(program.slots(), &opts).is_err() {
        return;
    }
    let mut vm = Vm::new(program);
    vm.helpers = Helpers::conformance();
    vm.config = Config { instruction_budget: Some(1_000_000), max_call_depth: 8, ..Config::default() };
    let mut m = mem.to_vec();
    if let Err(e) = vm.run_raw(&mut m) {
        assert!(
            !matches!(e.kind(), "memory_fault" | "call_depth" | "fell_off_end"),
            "widened program faulted: {e}\n{}",
            oxbpf_isa::decode_bytes(code).map(|d| oxbpf_isa::listing(&d)).unwrap_or_default()
        );
    }
});
