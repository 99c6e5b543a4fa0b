//! The JIT against the interpreter on arbitrary bytecode. The first byte
//! chooses the memory size (r1 = memory, r2 = its length), the next bytes
//! fill it, the rest is bytecode. Every program runs in the interpreter and
//! in the checked JIT (with the same budget, then without one when it
//! terminated); a program the verifier accepts also runs in the trusted JIT.
//! r0, instruction count, memory and the error (kind, pc, access size and
//! direction) must be identical.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oxbpf_vm::{Config, Engine, Helpers, Program, RunResult, Vm, VmError};

fn normalize(r: &Result<RunResult, VmError>) -> String {
    match r {
        Ok(r) => format!("ok r0={:#x} executed={}", r.r0, r.executed),
        Err(VmError::MemoryFault { pc, fault }) => {
            format!("fault pc={pc} size={} write={}", fault.size, fault.write)
        }
        Err(e) => format!("{} pc={}", e.kind(), e.pc()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n as usize).min(rest.len());
    let (mem, code) = rest.split_at(n);
    let code = &code[..code.len() / 8 * 8];
    let Ok(program) = Program::from_bytes(code) else { return };
    let mut vm = Vm::new(program.clone());
    vm.helpers = Helpers::conformance();
    vm.config = Config { instruction_budget: Some(100_000), ..Config::default() };
    // One buffer for all runs: r1 is then the same in each.
    let mut buf = mem.to_vec();
    let run = |vm: &Vm, buf: &mut Vec<u8>| {
        buf.copy_from_slice(mem);
        let r = vm.run_raw(buf);
        (normalize(&r), buf.clone())
    };
    let listing = || oxbpf_isa::decode_bytes(code).map(|d| oxbpf_isa::listing(&d)).unwrap_or_default();
    let reference = run(&vm, &mut buf);
    let mut jit = vm.clone();
    jit.config.engine = Engine::Jit;
    let got = run(&jit, &mut buf);
    assert_eq!(got, reference, "checked JIT with budget\n{}", listing());
    if reference.0.starts_with("budget") {
        return;
    }
    jit.config.instruction_budget = None;
    let got = run(&jit, &mut buf);
    assert_eq!(got, reference, "checked JIT\n{}", listing());
    // Uncounted and blinded code: the same except for the count.
    let without_count = |s: &str| s.split(" executed=").next().unwrap_or("").to_string();
    let mut other = jit.clone();
    other.config.count_instructions = false;
    other.config.blind_constants = true;
    let got = run(&other, &mut buf);
    assert_eq!(
        (without_count(&got.0), got.1),
        (without_count(&reference.0), reference.1.clone()),
        "uncounted, blinded JIT\n{}",
        listing()
    );
    let opts = oxbpf_verifier::Options {
        raw_mem_len: Some(mem.len() as u64),
        max_insns_processed: 200_000,
        ..Default::default()
    };
    if let Ok(proof) = oxbpf_verifier::prove(program.slots(), &opts) {
        // The verifier accepted the program for this memory length.
        jit.trust(&proof).expect("the proof is for this program");
        let got = run(&jit, &mut buf);
        assert_eq!(got, reference, "trusted JIT\n{}", listing());
    }
});
