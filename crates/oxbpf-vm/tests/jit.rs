//! JIT behaviour that the differential tests do not pin down by themselves.

use oxbpf_vm::{Config, Engine, Program, Vm, VmError};

/// An instruction as (opcode, dst, src, offset, immediate).
type Insn = (u8, u8, u8, i16, i32);

fn program(text: &[Insn]) -> Program {
    let slots = text
        .iter()
        .map(|&(c, d, s, o, i)| oxbpf_isa::RawInsn::new(c, d, s, o, i))
        .collect();
    Program::from_slots(slots).expect("valid program")
}

fn jit(p: Program) -> Vm {
    let mut vm = Vm::new(p);
    vm.config = Config {
        engine: Engine::Jit,
        ..Config::default()
    };
    vm
}

/// Does `needle` occur in `hay`?
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn blinding_hides_every_immediate() {
    // r0 = 0x41424344; r0 += 0x45464748; if r0 == 0x51525354 goto +1;
    // *(u32 *)(r10 - 4) = 0x61626364; r1 = 0x7172737475767778 ll; exit
    let p = program(&[
        (0xb7, 0, 0, 0, 0x41424344),
        (0x07, 0, 0, 0, 0x45464748),
        (0x15, 0, 0, 1, 0x51525354),
        (0x62, 10, 0, -4, 0x61626364),
        (0x18, 1, 0, 0, 0x75767778),
        (0x00, 0, 0, 0, 0x71727374),
        (0x95, 0, 0, 0, 0),
    ]);
    let consts: [&[u8]; 5] = [
        &0x41424344u32.to_le_bytes(),
        &0x45464748u32.to_le_bytes(),
        &0x51525354u32.to_le_bytes(),
        &0x61626364u32.to_le_bytes(),
        &0x75767778u32.to_le_bytes(),
    ];
    let plain = oxbpf_vm::jit::compile(&p, &Config::default()).unwrap();
    assert!(consts.iter().all(|c| contains(plain.bytes(), c)));
    let config = Config {
        blind_constants: true,
        ..Config::default()
    };
    let blinded = oxbpf_vm::jit::compile(&p, &config).unwrap();
    for c in consts {
        assert!(
            !contains(blinded.bytes(), c),
            "{c:x?} appears in blinded code"
        );
    }
    // And both compute the same.
    let mut vm = jit(p);
    let a = vm.run_raw(&mut []).unwrap();
    vm.config.blind_constants = true;
    let b = vm.run_raw(&mut []).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.r0, 0x41424344 + 0x45464748);
}

#[test]
fn faults_are_reported_exactly_as_by_the_interpreter() {
    // Stores one byte past the 8-byte input.
    let p = program(&[(0x72, 1, 0, 8, 7), (0x95, 0, 0, 0, 0)]);
    let mut mem = [0u8; 8];
    let interp = Vm::new(p.clone()).run_raw(&mut mem).unwrap_err();
    let jitted = jit(p).run_raw(&mut mem).unwrap_err();
    assert_eq!(interp, jitted);
    assert!(matches!(jitted, VmError::MemoryFault { pc: 0, .. }));
}

#[test]
fn budget_stops_at_the_same_instruction() {
    // An endless loop: r0 += 1; goto -2.
    let p = program(&[(0x07, 0, 0, 0, 1), (0x05, 0, 0, -2, 0)]);
    let mut vm = jit(p.clone());
    vm.config.instruction_budget = Some(1001);
    let e = vm.run_raw(&mut []).unwrap_err();
    let mut interp = Vm::new(p);
    interp.config.instruction_budget = Some(1001);
    assert_eq!(e, interp.run_raw(&mut []).unwrap_err());
    // Instructions 0..1000 ran; the 1002nd would be the goto at pc 1.
    assert_eq!(
        e,
        VmError::BudgetExhausted {
            pc: 1,
            budget: 1001
        }
    );
}

#[test]
fn call_depth_is_limited_like_the_interpreter() {
    // A function that calls itself forever.
    let p = program(&[(0x85, 0, 1, 0, -1), (0x95, 0, 0, 0, 0)]);
    let e = jit(p.clone()).run_raw(&mut []).unwrap_err();
    assert_eq!(e, Vm::new(p).run_raw(&mut []).unwrap_err());
    assert_eq!(e.kind(), "call_depth");
}

#[test]
fn uncounted_runs_report_no_instruction_count() {
    let p = program(&[(0xb7, 0, 0, 0, 3), (0x95, 0, 0, 0, 0)]);
    let mut vm = jit(p);
    assert_eq!(vm.run_raw(&mut []).unwrap().executed, 2);
    vm.config.count_instructions = false;
    let r = vm.run_raw(&mut []).unwrap();
    assert_eq!((r.r0, r.executed), (3, 0));
}

#[test]
fn multiplication_by_constants_matches_the_interpreter() {
    // Constants the code generator turns into shifts, lea and
    // shift-and-add/subtract, their neighbours, and the extremes.
    let mut consts: Vec<i32> = (-70..=70).collect();
    for k in 1..31 {
        let p = 1i64 << k;
        for c in [p - 1, p, p + 1, 3 * p, 5 * p, 9 * p, -p] {
            if let Ok(c) = i32::try_from(c) {
                consts.push(c);
            }
        }
    }
    consts.extend([i32::MAX, i32::MIN, i32::MIN + 1]);
    let inputs: [i64; 6] = [
        0,
        1,
        -1,
        0x1234_5678_9abc_def1,
        i64::MIN,
        0x7fff_ffff_8000_0001,
    ];
    for &c in &consts {
        for opcode in [0x27u8, 0x24] {
            for &x in &inputs {
                // r0 = x ll; r0 *= c (64- or 32-bit); exit
                let p = program(&[
                    (0x18, 0, 0, 0, x as i32),
                    (0, 0, 0, 0, (x >> 32) as i32),
                    (opcode, 0, 0, 0, c),
                    (0x95, 0, 0, 0, 0),
                ]);
                let want = Vm::new(p.clone()).run_raw(&mut []).unwrap().r0;
                let got = jit(p).run_raw(&mut []).unwrap().r0;
                assert_eq!(got, want, "opcode {opcode:#x}, {x:#x} * {c}");
            }
        }
    }
}

#[test]
fn byte_pair_loads_match_the_interpreter() {
    // x = *(u8 *)(r6 + j); y = *(u8 *)(r6 + k); s <<= 8; s |= o; with
    // {s, o} = {x, y}, adjacent offsets in both orders, both widths, the
    // second load overwriting the base, and the other byte read or not.
    let mut mem: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let mut cases = 0;
    for (j, k) in [(5, 4), (4, 5), (0, 1), (1, 0), (7, 9)] {
        for shift_first in [false, true] {
            for (sh, or) in [(0x64u8, 0x4cu8), (0x67, 0x4f), (0x64, 0x4f)] {
                for y in [3u8, 6] {
                    for other_live in [false, true] {
                        let x = 2u8;
                        let (s, o) = if shift_first { (x, y) } else { (y, x) };
                        let mut text = vec![
                            (0xbf, 6, 1, 0, 0), // r6 = r1
                            (0x71, x, 6, j, 0),
                            (0x71, y, 6, k, 0),
                            (sh, s, 0, 0, 8),
                            (or, s, o, 0, 0),
                            (0xbf, 0, s, 0, 0), // r0 = s
                        ];
                        if other_live {
                            // r0 <<= 16; r0 |= o
                            text.push((0x67, 0, 0, 0, 16));
                            text.push((0x4f, 0, o, 0, 0));
                        } else {
                            text.push((0xb7, o, 0, 0, 0)); // o = 0
                        }
                        text.push((0x95, 0, 0, 0, 0));
                        let p = program(&text);
                        let want = Vm::new(p.clone()).run_raw(&mut mem).unwrap().r0;
                        for count in [false, true] {
                            let mut vm = jit(p.clone());
                            // SAFETY: every load reads inside the 64-byte input.
                            vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
                            vm.config.count_instructions = count;
                            let got = vm.run_raw(&mut mem).unwrap().r0;
                            assert_eq!(got, want, "{text:?}");
                        }
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 5 * 2 * 3 * 2 * 2);
}

#[test]
fn move_and_mask_matches_the_interpreter() {
    // rD = rS (32 or 64 bits); rD &= 0xff or 0xffff (32 or 64 bits), for
    // every pair of registers r0..r9 (r10 excluded: it is the frame).
    let x: i64 = 0x8123_4567_89ab_cdef_u64 as i64;
    for mov in [0xbcu8, 0xbf] {
        for and in [0x54u8, 0x57] {
            for mask in [0xff, 0xffff] {
                for s in 0..10u8 {
                    for d in 0..10u8 {
                        // rS = x ll; rD = rS; rD &= mask; r0 = rD; exit
                        let p = program(&[
                            (0x18, s, 0, 0, x as i32),
                            (0, 0, 0, 0, (x >> 32) as i32),
                            (mov, d, s, 0, 0),
                            (and, d, 0, 0, mask),
                            (0xbf, 0, d, 0, 0),
                            (0x95, 0, 0, 0, 0),
                        ]);
                        let want = Vm::new(p.clone()).run_raw(&mut []).unwrap().r0;
                        let got = jit(p).run_raw(&mut []).unwrap().r0;
                        assert_eq!(got, want, "mov {mov:#x} and {and:#x} {mask:#x} r{d} = r{s}");
                        assert_eq!(got, x as u64 & mask as u64);
                    }
                }
            }
        }
    }
}

#[test]
fn address_registers_read_later_are_still_computed() {
    // r2 = 8; r5 = r1; r5 += r2; *(u8 *)(r5 + 1) = r2; then r5 is either
    // returned (live: its `lea` must stay) or overwritten (dead), in a
    // loop so liveness flows around a back edge.
    for live in [false, true] {
        let mut text = vec![
            (0xb7, 2, 0, 0, 8),  // r2 = 8
            (0xb7, 3, 0, 0, 0),  // r3 = 0 (loop counter)
            (0xbf, 5, 1, 0, 0),  // loop: r5 = r1
            (0x0f, 5, 2, 0, 0),  // r5 += r2
            (0x73, 5, 2, 1, 0),  // *(u8 *)(r5 + 1) = r2
            (0x07, 2, 0, 0, 1),  // r2 += 1
            (0x07, 3, 0, 0, 1),  // r3 += 1
            (0x55, 3, 0, -6, 4), // if r3 != 4 goto loop
        ];
        if live {
            text.push((0xbf, 0, 5, 0, 0)); // r0 = r5
            text.push((0x1f, 0, 1, 0, 0)); // r0 -= r1
        } else {
            text.push((0xb7, 5, 0, 0, 0)); // r5 = 0
            text.push((0xbf, 0, 2, 0, 0)); // r0 = r2
        }
        text.push((0x95, 0, 0, 0, 0));
        let p = program(&text);
        let mut want_mem = vec![0u8; 32];
        let want = Vm::new(p.clone()).run_raw(&mut want_mem).unwrap().r0;
        let mut vm = jit(p);
        // SAFETY: the stores write bytes 9..=12 of the 32-byte input.
        vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
        let mut got_mem = vec![0u8; 32];
        let got = vm.run_raw(&mut got_mem).unwrap().r0;
        assert_eq!((got, &got_mem), (want, &want_mem), "live: {live}");
    }
}

#[test]
fn division_by_constants_matches_the_interpreter() {
    let mut divisors: Vec<i32> = (-20..=70).collect();
    divisors.extend([641, 1_000_000_007, i32::MAX, i32::MIN, -15, -0x7fff_fff1]);
    let inputs: [i64; 7] = [
        0,
        1,
        6,
        0xffff_ffff,
        -1,
        0x1234_5678_9abc_def1,
        0x7fff_ffff_8000_0001,
    ];
    // div/mod, 32/64-bit, unsigned and signed (off = 1).
    for (opcode, off) in [
        (0x34u8, 0i16),
        (0x94, 0),
        (0x37, 0),
        (0x97, 0),
        (0x34, 1),
        (0x97, 1),
    ] {
        for &c in &divisors {
            for &x in &inputs {
                let p = program(&[
                    (0x18, 0, 0, 0, x as i32),
                    (0, 0, 0, 0, (x >> 32) as i32),
                    (opcode, 0, 0, off, c),
                    (0x95, 0, 0, 0, 0),
                ]);
                let want = Vm::new(p.clone()).run_raw(&mut []).unwrap().r0;
                let got = jit(p).run_raw(&mut []).unwrap().r0;
                assert_eq!(got, want, "opcode {opcode:#x} off {off}: {x:#x} op {c}");
            }
        }
    }
}

#[test]
fn summing_loops_match_the_interpreter() {
    // t = b; t += i; t = *(uS *)(t + k); a += t; i += S; then the exit test
    // in both of clang's forms; counts below, at and past the 16-element
    // groups of the vector path, offsets and start indices, index-first
    // addition, and `t` read after the loop (no vector path then).
    let mut mem: Vec<u8> = (0..2048u32)
        .map(|x| (x.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut cases = 0;
    for (code, size) in [(0x71u8, 1i32), (0x69, 2), (0x61, 4), (0x79, 8)] {
        for count in [1, 2, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 200] {
            for (k, i0) in [(0i16, 0i32), (3, 8), (-8, 16)] {
                for jne in [true, false] {
                    for index_first in [false, true] {
                        for t_live in [false, true] {
                            let end = i0 + size * count;
                            let (x, y) = if index_first { (2, 6) } else { (6, 2) };
                            let mut text = vec![
                                (0xbf, 6, 1, 0, 0),      // r6 = r1
                                (0xb7, 2, 0, 0, i0),     // r2 = i0
                                (0xb7, 0, 0, 0, -12345), // r0 = acc
                                (0xbf, 3, x, 0, 0),      // loop: r3 = b
                                (0x0f, 3, y, 0, 0),      // r3 += i
                                (code, 3, 3, k, 0),      // r3 = *(uS *)(r3 + k)
                                (0x0f, 0, 3, 0, 0),      // r0 += r3
                                (0x07, 2, 0, 0, size),   // r2 += S
                            ];
                            if jne {
                                text.push((0x55, 2, 0, -6, end)); // if r2 != N goto loop
                            } else {
                                text.push((0x15, 2, 0, 1, end)); // if r2 == N goto out
                                text.push((0x05, 0, 0, -7, 0)); // goto loop
                            }
                            if t_live {
                                text.push((0xaf, 0, 3, 0, 0)); // r0 ^= r3
                            }
                            // Fold the final index into r0: r2 <<= 40; r0 ^= r2
                            text.push((0x67, 2, 0, 0, 40));
                            text.push((0xaf, 0, 2, 0, 0));
                            text.push((0x95, 0, 0, 0, 0));
                            let p = program(&text);
                            let want = Vm::new(p.clone()).run_raw(&mut mem).unwrap();
                            let mut vm = jit(p);
                            // SAFETY: the loop reads [i0 + k, end + k) of the
                            // 2048-byte input, all inside it.
                            vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
                            vm.config.count_instructions = false;
                            let got = vm.run_raw(&mut mem).unwrap();
                            assert_eq!(got.r0, want.r0, "{text:?}");
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 4 * 14 * 3 * 2 * 2 * 2);
}

#[test]
fn every_run_starts_with_a_zeroed_stack() {
    // A checked run leaks its frame pointer into memory; a second run,
    // which never names r10, writes through that address into the
    // (pooled) stack; a third must still find its stack zeroed.
    let leak = program(&[(0x7b, 1, 10, 0, 0), (0xb7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)]);
    let scribble = program(&[
        (0x79, 2, 1, 0, 0),    // r2 = *(u64 *)(r1 + 0)
        (0xb7, 3, 0, 0, 0x55), // r3 = 0x55
        (0x7b, 2, 3, -8, 0),   // *(u64 *)(r2 - 8) = r3
        (0xb7, 0, 0, 0, 0),
        (0x95, 0, 0, 0, 0),
    ]);
    let read = program(&[(0x79, 0, 10, -8, 0), (0x95, 0, 0, 0, 0)]);
    let mut mem = vec![0u8; 8];
    for engine_of_read in [Engine::Jit, Engine::Interpreter] {
        jit(leak.clone()).run_raw(&mut mem).unwrap();
        let r = jit(scribble.clone()).run_raw(&mut mem).unwrap();
        assert_eq!(r.r0, 0);
        let mut vm = jit(read.clone());
        vm.config.engine = engine_of_read;
        assert_eq!(vm.run_raw(&mut mem).unwrap().r0, 0, "{engine_of_read:?}");
    }
}

#[test]
fn a_helper_left_key_on_the_stack_is_zeroed_for_the_next_run() {
    // for_each_map_elem puts each key on the caller's stack and puts the
    // old bytes back only when it finishes; a callback that fails (call
    // depth 1 leaves no room for it) leaves the key there. The program
    // never names r10, yet its stack must still be zeroed for the next run.
    use oxbpf_vm::maps::{Map, MapSpec};
    use std::sync::Arc;
    let spec = MapSpec {
        name: "h".into(),
        map_type: 1,
        key_size: 8,
        value_size: 8,
        max_entries: 4,
        flags: 0,
        map_extra: 0,
        inner: None,
        ..Default::default()
    };
    let map = Arc::new(Map::new(spec, 1).unwrap());
    map.update(&0x1122_3344_5566_7788u64.to_le_bytes(), &[0; 8], 0, None)
        .unwrap();
    let env = oxbpf_vm::Env::new(vec![map], vec![]);
    let handle = oxbpf_vm::env::MAP_HANDLE_TAG;
    let func = oxbpf_vm::program::FUNC_ADDR_TAG | 10;
    let each = program(&[
        (0x18, 1, 0, 0, handle as u32 as i32),
        (0, 0, 0, 0, (handle >> 32) as i32),
        (0x18, 2, 0, 0, func as u32 as i32),
        (0, 0, 0, 0, (func >> 32) as i32),
        (0xb7, 3, 0, 0, 0),
        (0xb7, 4, 0, 0, 0),
        (0x85, 0, 0, 0, 164), // for_each_map_elem
        (0xb7, 0, 0, 0, 0),
        (0x95, 0, 0, 0, 0),
        (0x05, 0, 0, 0, 0),
        (0xb7, 0, 0, 0, 0), // pc 10: the callback
        (0x95, 0, 0, 0, 0),
    ]);
    let read = program(&[(0x79, 0, 10, -64, 0), (0x95, 0, 0, 0, 0)]);
    let mut vm = jit(each);
    vm.helpers = oxbpf_vm::stdhelpers::standard();
    vm.config.max_call_depth = 1;
    // SAFETY: the program touches no memory itself; the helper checks the
    // key and value addresses it uses.
    vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
    let first = vm.run(
        oxbpf_vm::MemoryMap::new(),
        [0; 5],
        Some(&env),
        None,
        &mut oxbpf_vm::NoTrace,
    );
    assert_eq!(first.unwrap_err().kind(), "call_depth");
    let mut next = Vm::new(read);
    next.config.max_call_depth = 1;
    let r = next.run(
        oxbpf_vm::MemoryMap::new(),
        [0; 5],
        None,
        None,
        &mut oxbpf_vm::NoTrace,
    );
    assert_eq!(r.unwrap().r0, 0);
}

#[test]
fn registers_a_subprogram_hands_back_are_computed() {
    // The caller reads r3 as the callee left it (r1..r5 are not restored
    // after a call), so the callee's `lea` for r3 must stay.
    let p = program(&[
        (0xb7, 3, 0, 0, 0),
        (0x85, 0, 1, 0, 3), // call pc 5
        (0xbf, 0, 3, 0, 0),
        (0x1f, 0, 1, 0, 0), // r0 = r3 - r1
        (0x95, 0, 0, 0, 0),
        (0xbf, 3, 1, 0, 0), // r3 = r1
        (0x07, 3, 0, 0, 5), // r3 += 5
        (0x71, 0, 3, 0, 0), // r0 = *(u8 *)(r3 + 0)
        (0x95, 0, 0, 0, 0),
    ]);
    let mut mem = vec![7u8; 16];
    let want = Vm::new(p.clone()).run_raw(&mut mem).unwrap().r0;
    assert_eq!(want, 5);
    let mut vm = jit(p);
    // SAFETY: the one load reads byte 5 of the 16-byte input.
    vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
    for count in [true, false] {
        vm.config.count_instructions = count;
        assert_eq!(vm.run_raw(&mut mem).unwrap().r0, want);
    }
}

#[test]
fn indexed_loads_fault_exactly_as_by_the_interpreter() {
    // r2 = x; r5 = r1; r5 += r2; r5 = *(u32 *)(r5 + k); exit — checked
    // code folds the address into one checked operand; in bounds it loads,
    // out of bounds (either side) it reports the interpreter's fault.
    let mut mem: Vec<u8> = (0..16u8).collect();
    for (x, k) in [
        (0, 0),
        (12, 0),
        (8, 4),
        (13, 0),
        (16, -4),
        (-1, 0),
        (100, 0),
        (4, -8),
    ] {
        let p = program(&[
            (0xb7, 2, 0, 0, x),
            (0xbf, 5, 1, 0, 0),
            (0x0f, 5, 2, 0, 0),
            (0x61, 5, 5, k, 0),
            (0xbf, 0, 5, 0, 0),
            (0x95, 0, 0, 0, 0),
        ]);
        let want = Vm::new(p.clone()).run_raw(&mut mem);
        let got = jit(p).run_raw(&mut mem);
        assert_eq!(got, want, "x {x} k {k}");
    }
}

#[test]
fn leaf_code_reports_errors_and_counts_like_the_interpreter() {
    // Programs without stack, calls or packet loads run on a bare context
    // when trusted: falling off the end, division, an lddw, counted and
    // uncounted, on empty and non-empty input.
    let cases: [&[Insn]; 3] = [
        // r0 = 1; if r0 == 1 goto +1; exit; r0 = 2 (falls off the end)
        &[
            (0xb7, 0, 0, 0, 1),
            (0x15, 0, 0, 1, 1),
            (0x95, 0, 0, 0, 0),
            (0xb7, 0, 0, 0, 2),
        ],
        // r0 = r2 (the input length); r0 /= 3; r0 += *(u8 *)(r1 + 0) if any
        &[
            (0xbf, 0, 2, 0, 0),
            (0x37, 0, 0, 0, 3),
            (0x15, 2, 0, 2, 0),
            (0x71, 3, 1, 0, 0),
            (0x0f, 0, 3, 0, 0),
            (0x95, 0, 0, 0, 0),
        ],
        // r0 = 0x1122334455667788 ll; exit
        &[
            (0x18, 0, 0, 0, 0x5566_7788),
            (0, 0, 0, 0, 0x1122_3344),
            (0x95, 0, 0, 0, 0),
        ],
    ];
    for text in cases {
        let p = program(text);
        for len in [0usize, 9] {
            let mut mem = vec![0x41u8; len];
            let want = Vm::new(p.clone()).run_raw(&mut mem);
            for count in [true, false] {
                let mut vm = jit(p.clone());
                // SAFETY: the one load reads byte 0 of a non-empty input.
                vm.config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
                vm.config.count_instructions = count;
                let mut got = vm.run_raw(&mut mem);
                if let (Ok(g), Ok(w)) = (&mut got, &want)
                    && !count
                {
                    g.executed = w.executed;
                }
                assert_eq!(got, want, "{text:?} len {len} count {count}");
            }
        }
    }
}
