//! Any program that validates runs to a result or an error, never a panic
//! or a wild memory access (the sanitizer would see it). The first byte
//! chooses the memory size, the next bytes fill it, the rest is bytecode.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oxbpf_vm::{Config, Helpers, Program, Vm};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = (n as usize).min(rest.len());
    let (mem, code) = rest.split_at(n);
    let code = &code[..code.len() / 8 * 8];
    let Ok(program) = Program::from_bytes(code) else { return };
    let mut vm = Vm::new(program);
    vm.helpers = Helpers::conformance();
    vm.config = Config { instruction_budget: Some(100_000), max_call_depth: 8, ..Config::default() };
    let mut m = mem.to_vec();
    let _ = vm.run_raw(&mut m);
});
