//! Property tests across crates: nothing panics on arbitrary input, and
//! text round-trips for every valid instruction.

use oxbpf_isa::{Instruction, RawInsn, decode, decode_at, encode_all, listing, slots_to_bytes};
use oxbpf_vm::{Config, Helpers, Program, Vm};
use proptest::prelude::*;

/// Raw slots biased towards valid opcodes.
fn slot() -> impl Strategy<Value = RawInsn> {
    let valid_codes: Vec<u8> = (0u8..=255)
        .filter(|&c| {
            let probe = [RawInsn::new(c, 1, 2, 0, 0), RawInsn::default()];
            (0..4).any(|v| {
                let mut p = probe;
                p[0].off = [0, 1, 8, 16][v];
                p[0].imm = [0, 16, 1, 0xe1][v];
                decode_at(&p, 0).is_ok()
            })
        })
        .collect();
    (
        prop::sample::select(valid_codes),
        0u8..11,
        0u8..11,
        prop_oneof![
            Just(0i16),
            Just(1),
            Just(8),
            Just(16),
            Just(32),
            -8i16..8,
            any::<i16>()
        ],
        prop_oneof![
            Just(0i32),
            Just(16),
            Just(32),
            Just(64),
            Just(0xe1),
            Just(0xf1),
            -16i32..16,
            any::<i32>()
        ],
    )
        .prop_map(|(c, d, s, o, i)| RawInsn::new(c, d, s, o, i))
}

fn valid_instructions() -> impl Strategy<Value = Vec<Instruction>> {
    prop::collection::vec(slot(), 1..40).prop_map(|slots| {
        let mut out = Vec::new();
        let mut i = 0;
        let mut padded = slots.clone();
        padded.push(RawInsn::default());
        while i < slots.len() {
            match decode_at(&padded, i) {
                Ok(insn) => {
                    i += insn.slots();
                    out.push(insn);
                }
                Err(_) => i += 1,
            }
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn listing_assembles_back(insns in valid_instructions()) {
        let bytes = slots_to_bytes(&encode_all(&insns));
        let text = listing(&decode(&encode_all(&insns)).unwrap());
        let again = oxbpf_asm::assemble_bytes(&text);
        prop_assert!(again.is_ok(), "{text}\n{:?}", again.err());
        prop_assert_eq!(again.unwrap(), bytes, "{}", text);
    }

    #[test]
    fn interpreter_never_panics(insns in valid_instructions(), mem in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut insns = insns;
        insns.push(Instruction::Exit);
        if let Ok(program) = Program::from_instructions(&insns) {
            let mut vm = Vm::new(program);
            vm.helpers = Helpers::conformance();
            vm.config = Config { instruction_budget: Some(10_000), max_call_depth: 8, ..Config::default() };
            let mut m = mem.clone();
            // Any outcome is fine; a panic is not.
            let exact = vm.run_raw(&mut m);
            // When it terminates, the fast path must agree exactly.
            // (Same buffer, so the address in r1 is the same.)
            if exact.is_ok() {
                vm.config.instruction_budget = None;
                let after = m.clone();
                m.copy_from_slice(&mem);
                let fast = vm.run_raw(&mut m);
                prop_assert_eq!(fast, exact);
                prop_assert_eq!(m, after);
            }
        }
    }

    #[test]
    fn assembler_never_panics(src in "\\PC{0,80}(\n\\PC{0,40}){0,4}") {
        let _ = oxbpf_asm::assemble(&src);
    }

    #[test]
    fn assembler_never_panics_on_near_misses(src in "(r[0-9]{1,2}|w1|\\*\\(u(8|16|32|64) \\*\\)\\(r1 [+-] 0x?[0-9a-f]{0,9}\\)|if|goto|lock|call|exit|[-+]?0x[0-9a-f]{0,17}|[ =+<>s/%&|^,()\\[\\]*-]|%r1|ld_pseudo|ll|L1:|<pc-0x1>){0,12}") {
        let _ = oxbpf_asm::assemble(&src);
    }
}
