//! Differential tests: the JIT against the interpreter (the reference).
//!
//! * `random_programs_agree`: seeded random programs (ALU of every kind,
//!   loads/stores/atomics on the input and the stack with some out of
//!   bounds, forward and backward branches, local calls, callx, helper
//!   calls, legacy packet loads, indexed `rD = r1; rD += rX` loads) run by
//!   the interpreter and by the JIT in
//!   checked mode (with and without a budget, with constant blinding) and,
//!   when the verifier accepts them, in trusted mode. r0, instruction count, memory and the
//!   error (kind, pc, access size and direction) must be identical.
//! * `safe_programs_agree_in_trusted_mode`: programs memory-safe by
//!   construction (in-bounds input and stack accesses, the idioms the JIT
//!   recognises — joined byte loads, `rA = r1; rA += rI` addressing, move
//!   and mask, multiplication and division by constants — forward branches
//!   and a counted loop) run unchecked, counted, uncounted and with a
//!   budget, against the interpreter.
//! * `examples_agree` / `samples_agree`: every program of the examples and
//!   of ../shared/ebpf-samples on packets, with the same random map
//!   contents, comparing r0, instruction count, output packet, printed and
//!   ring-buffer output and every map after every run.

mod common;

use oxbpf_isa::RawInsn;
use oxbpf_vm::loaded::LoadedObject;
use oxbpf_vm::{Checks, Config, Engine, Helpers, Program, RunResult, Vm, VmError};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

enum Item {
    Raw(RawInsn),
    /// Jump (or local call, `lddw func`) whose offset points at an item.
    To(RawInsn, usize),
    Lddw(u8, u64),
}

const MEM_LEN: usize = 64;

fn imm(r: &mut Rng) -> i32 {
    match r.below(6) {
        0 => r.pick(&[0, 1, -1, 2, 7, 31, 32, 63, 64, 0x7fff_ffff, i32::MIN, 16, 8]),
        1 | 2 => r.below(16) as i32 - 4,
        3 => r.below(1000) as i32,
        _ => r.next() as i32,
    }
}

/// A scratch register: r0 or r2..r9 (r1 keeps the input pointer, r10 the
/// frame pointer, so addresses stay the same in every engine's run).
fn reg(r: &mut Rng) -> u8 {
    r.pick(&[0, 2, 3, 4, 5, 6, 7, 8, 9])
}

fn alu(r: &mut Rng) -> RawInsn {
    let wide = r.chance(60);
    let class = if wide { 0x07 } else { 0x04 };
    let op = r.pick(&[
        0x00u8, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0,
    ]);
    let x = r.chance(50);
    let dst = if r.chance(3) { 1 } else { reg(r) };
    let src = reg(r);
    match op {
        0x80 => RawInsn::new(op | class, dst, 0, 0, 0),
        0xd0 => {
            let width = r.pick(&[16, 32, 64]);
            match r.below(3) {
                0 => RawInsn::new(0xd4, dst, 0, 0, width),
                1 => RawInsn::new(0xdc, dst, 0, 0, width),
                _ => RawInsn::new(0xd7, dst, 0, 0, width),
            }
        }
        0x30 | 0x90 => {
            let signed = r.chance(40) as i16;
            if x {
                RawInsn::new(op | class | 0x08, dst, src, signed, 0)
            } else {
                RawInsn::new(op | class, dst, 0, signed, imm(r))
            }
        }
        0xb0 if x && r.chance(30) => {
            let w = if wide {
                r.pick(&[8, 16, 32])
            } else {
                r.pick(&[8, 16])
            };
            RawInsn::new(op | class | 0x08, dst, src, w, 0)
        }
        _ => {
            if x {
                RawInsn::new(op | class | 0x08, dst, src, 0, 0)
            } else {
                RawInsn::new(op | class, dst, 0, 0, imm(r))
            }
        }
    }
}

/// A memory operand: (base, offset) for an access of `size` bytes.
fn place(r: &mut Rng, size: i16) -> (u8, i16) {
    if r.chance(50) {
        let off = if r.chance(6) {
            r.pick(&[-1, -8, MEM_LEN as i16 - size + 1, MEM_LEN as i16, 100])
        } else {
            (r.below((MEM_LEN as u64 - size as u64) / size as u64 + 1) as i16) * size
        };
        (1, off)
    } else {
        let off = if r.chance(4) {
            r.pick(&[0, -520, 8, -513])
        } else {
            -((r.below(16) as i16 + 1) * 8)
        };
        (10, off)
    }
}

fn memory_op(r: &mut Rng) -> RawInsn {
    let (sz, size) = r.pick(&[(0x00u8, 4i16), (0x08, 2), (0x10, 1), (0x18, 8)]);
    match r.below(4) {
        0 => {
            let (base, off) = place(r, size);
            let mode = if r.chance(25) && size != 8 {
                0x80
            } else {
                0x60
            };
            RawInsn::new(mode | sz | 0x01, reg(r), base, off, 0)
        }
        1 => {
            let (base, off) = place(r, size);
            RawInsn::new(0x60 | sz | 0x02, base, 0, off, imm(r))
        }
        2 => {
            let (base, off) = place(r, size);
            RawInsn::new(0x60 | sz | 0x03, base, reg(r), off, 0)
        }
        _ => {
            let (code, size) = r.pick(&[(0xc3u8, 4i16), (0xdb, 8)]);
            let (base, off) = place(r, size);
            let op = r.pick(&[0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1]);
            RawInsn::new(code, base, reg(r), off, op)
        }
    }
}

fn cond_jump(r: &mut Rng) -> RawInsn {
    let class = if r.chance(60) { 0x05 } else { 0x06 };
    let op = r.pick(&[
        0x10u8, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
    ]);
    if r.chance(50) {
        RawInsn::new(op | class | 0x08, reg(r), reg(r), 0, 0)
    } else {
        RawInsn::new(op | class, reg(r), 0, 0, imm(r))
    }
}

/// One random program: registers set, a body, `exit`, and a subprogram.
fn random_program(r: &mut Rng) -> Vec<RawInsn> {
    let mut items = Vec::new();
    for d in [0u8, 2, 3, 4, 5, 6, 7, 8, 9] {
        if r.chance(50) {
            items.push(Item::Raw(RawInsn::new(0xb7, d, 0, 0, imm(r))));
        } else {
            items.push(Item::Lddw(d, r.next() >> r.below(64)));
        }
    }
    let body_start = items.len();
    let n = 4 + r.below(40) as usize;
    let exit_item = body_start + n;
    let sub_item = exit_item + 1;
    let looping = r.chance(10);
    for i in 0..n {
        let here = body_start + i;
        let item = match r.below(100) {
            0..=39 => Item::Raw(alu(r)),
            40..=64 => Item::Raw(memory_op(r)),
            65..=79 => {
                let target = here + 1 + r.below((exit_item - here) as u64) as usize;
                Item::To(cond_jump(r), target)
            }
            80..=81 if looping => {
                Item::To(cond_jump(r), body_start + r.below(i as u64 + 1) as usize)
            }
            82..=84 => Item::To(RawInsn::new(0x85, 0, 1, 0, 0), sub_item),
            85..=86 => Item::Raw(RawInsn::new(0x85, 0, 0, 0, 5)),
            87..=89 => {
                let (code, size) = r.pick(&[
                    (0x20u8, 4u64),
                    (0x28, 2),
                    (0x30, 1),
                    (0x40, 4),
                    (0x48, 2),
                    (0x50, 1),
                ]);
                let off = r.below(MEM_LEN as u64 + 4 - size) as i32 - 2;
                Item::Raw(RawInsn::new(code, 0, reg(r), 0, off))
            }
            90..=91 => Item::Lddw(reg(r), r.next()),
            92 => Item::To(RawInsn::new(0x18, reg(r), 4, 0, 0), sub_item),
            93 => {
                // callx through a function address.
                let d = reg(r);
                items.push(Item::To(RawInsn::new(0x18, d, 4, 0, 0), sub_item));
                Item::Raw(RawInsn::new(0x8d, d, 0, 0, 0))
            }
            94 => Item::To(RawInsn::new(0x05, 0, 0, 0, 0), exit_item),
            95 | 96 => {
                // rD = r1; rD += rX; rD = *(size *)(rD + off): the indexed
                // address idiom, in or out of bounds.
                let (d, x) = (reg(r), reg(r));
                let sz = r.pick(&[0x00u8, 0x08, 0x10, 0x18]);
                items.push(Item::Raw(RawInsn::new(0x57, x, 0, 0, 63)));
                items.push(Item::Raw(RawInsn::new(0xbf, d, 1, 0, 0)));
                items.push(Item::Raw(RawInsn::new(0x0f, d, x, 0, 0)));
                let off = r.below(16) as i16 - 8;
                Item::Raw(RawInsn::new(0x61 | sz, d, d, off, 0))
            }
            _ => Item::Raw(alu(r)),
        };
        items.push(item);
    }
    // The index of the exit moved if callx pairs were added.
    let exit_now = items.len();
    let shift = exit_now - exit_item;
    for it in &mut items {
        if let Item::To(_, t) = it
            && *t >= exit_item
        {
            *t += shift;
        }
    }
    items.push(Item::Raw(RawInsn::new(0x95, 0, 0, 0, 0)));
    // Subprogram: a few operations on its own frame and the arguments.
    let sub_n = 1 + r.below(6);
    for _ in 0..sub_n {
        items.push(Item::Raw(match r.below(3) {
            0 => alu(r),
            1 => memory_op(r),
            _ => RawInsn::new(0xbf, 0, r.pick(&[2, 3, 4, 5]), 0, 0),
        }));
    }
    items.push(Item::Raw(RawInsn::new(0x95, 0, 0, 0, 0)));
    // Lay out slots and resolve targets.
    let mut slot_of = Vec::with_capacity(items.len());
    let mut slot = 0usize;
    for it in &items {
        slot_of.push(slot);
        slot += match it {
            Item::Lddw(..) => 2,
            Item::To(i, _) if i.code == 0x18 => 2,
            _ => 1,
        };
    }
    let mut out = Vec::with_capacity(slot);
    for (k, it) in items.iter().enumerate() {
        match *it {
            Item::Raw(i) => out.push(i),
            Item::Lddw(d, v) => {
                out.push(RawInsn::new(0x18, d, 0, 0, v as u32 as i32));
                out.push(RawInsn::new(0, 0, 0, 0, (v >> 32) as u32 as i32));
            }
            Item::To(mut i, t) => {
                let rel = slot_of[t] as i64 - (slot_of[k] as i64 + 1);
                if i.code == 0x85 || i.code == 0x18 {
                    i.imm = rel as i32;
                } else {
                    i.off = rel as i16;
                }
                out.push(i);
                if i.code == 0x18 {
                    out.push(RawInsn::default());
                }
            }
        }
    }
    out
}

/// An outcome with host addresses of per-run buffers left out.
fn normalize(r: &Result<RunResult, VmError>) -> String {
    match r {
        Ok(r) => format!("ok r0={:#x} executed={}", r.r0, r.executed),
        Err(VmError::MemoryFault { pc, fault }) => format!(
            "memory fault pc={pc} size={} write={}",
            fault.size, fault.write
        ),
        Err(e) => e.to_string(),
    }
}

fn run(vm: &Vm, mem: &[u8], buf: &mut [u8]) -> (String, Vec<u8>) {
    buf.copy_from_slice(mem);
    let r = vm.run_raw(buf);
    (normalize(&r), buf.to_vec())
}

#[test]
fn random_programs_agree() {
    let mut rng = Rng(0x0dd_b1a5_5eed_1234);
    let (mut programs, mut verified, mut faults, mut budget_hits, mut ok) = (0, 0, 0, 0, 0);
    let mut mismatches = Vec::new();
    // One buffer for every run, so r1 has the same value everywhere.
    let mut buf = vec![0u8; MEM_LEN];
    for case in 0..6000 {
        let slots = random_program(&mut rng);
        let Ok(program) = Program::from_slots(slots.clone()) else {
            continue;
        };
        programs += 1;
        let mem: Vec<u8> = (0..MEM_LEN).map(|_| rng.next() as u8).collect();
        let mut interp = Vm::new(program);
        interp.helpers = Helpers::conformance();
        interp.config = Config {
            instruction_budget: Some(20_000),
            ..Config::default()
        };
        let mut jit = interp.clone();
        jit.config.engine = Engine::Jit;
        let reference = run(&interp, &mem, &mut buf);
        let mut check = |what: &str, vm: &Vm, buf: &mut Vec<u8>| {
            let mut got = run(vm, &mem, buf);
            if !vm.config.count_instructions && vm.config.instruction_budget.is_none() {
                // Uncounted runs report 0 instructions; compare the rest.
                got.0 = got.0.replace(
                    "executed=0",
                    &format!(
                        "executed={}",
                        reference.0.split("executed=").nth(1).unwrap_or("0")
                    ),
                );
            }
            if got != reference && mismatches.len() < 10 {
                let text = oxbpf_isa::listing(&oxbpf_isa::decode(&slots).unwrap());
                mismatches.push(format!(
                    "case {case} {what}: interpreter {:?} / jit {:?}\n{text}",
                    reference.0, got.0
                ));
            }
        };
        check("checked+budget", &jit, &mut buf);
        if reference.0.contains("budget") {
            budget_hits += 1;
            continue;
        }
        if reference.0.starts_with("memory fault") {
            faults += 1;
        }
        if reference.0.starts_with("ok") {
            ok += 1;
        }
        let mut fast_jit = jit.clone();
        fast_jit.config.instruction_budget = None;
        check("checked", &fast_jit, &mut buf);
        let mut blinded = fast_jit.clone();
        blinded.config.blind_constants = true;
        check("checked+blinded", &blinded, &mut buf);
        let mut uncounted = fast_jit.clone();
        uncounted.config.count_instructions = false;
        check("checked+uncounted", &uncounted, &mut buf);
        let opts = oxbpf_verifier::Options {
            raw_mem_len: Some(MEM_LEN as u64),
            ..Default::default()
        };
        if let Ok(proof) = oxbpf_verifier::prove(&slots, &opts) {
            verified += 1;
            let mut trusted = fast_jit.clone();
            // The verifier accepted the program for MEM_LEN bytes of
            // input, which is what it runs on.
            trusted.trust(&proof).unwrap();
            check("trusted", &trusted, &mut buf);
            trusted.config.count_instructions = false;
            check("trusted+uncounted", &trusted, &mut buf);
            trusted.config.count_instructions = true;
            trusted.config.instruction_budget = Some(20_000);
            check("trusted+budget", &trusted, &mut buf);
        }
    }
    eprintln!(
        "{programs} random programs: {ok} ran to completion, {faults} memory faults, {budget_hits} hit the budget, {verified} verified (also run trusted); {} mismatches",
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    assert!(programs > 4000 && ok > 2000 && faults > 500 && verified > 150);
}

/// Replaces host addresses (hex numbers of 9 digits or more) in a message.
fn mask_addresses(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("0x") {
        out += &rest[..i];
        let digits = rest[i + 2..]
            .bytes()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        out += if digits >= 9 {
            "ADDR"
        } else {
            &rest[i..i + 2 + digits]
        };
        rest = &rest[i + 2 + digits..];
    }
    out + rest
}

/// Map contents with 8-byte words that hold user-space host addresses
/// masked: programs the verifier rejects may store pointers, which differ
/// between runs (each run has its own stack and context buffers).
fn mask_pointers(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    entries
        .into_iter()
        .map(|(k, mut v)| {
            for w in v.chunks_exact_mut(8) {
                let x = u64::from_le_bytes(w.try_into().unwrap());
                if (0x5000_0000_0000..0x8000_0000_0000).contains(&x) {
                    w.fill(0xaa);
                }
            }
            (k, v)
        })
        .collect()
}

/// Everything observable after one run of an object's program.
fn observe(lo: &LoadedObject, idx: usize, input: &[u8], verified: bool) -> String {
    let mut out = String::new();
    match lo.run(idx, input) {
        Ok(run) => {
            out += &mask_addresses(&normalize(&run.result));
            out += &format!(" packet={:?}", run.packet);
        }
        Err(e) => out += &format!("load error {e}"),
    }
    out += &format!(" output={:?}", lo.env.take_output());
    for m in &lo.env.maps {
        out += &format!(" ringbuf={:?} perf={:?}", m.ringbuf_drain(), m.perf_drain());
        if !matches!(m.spec.map_type, 27 | 4) {
            let entries = m.entries();
            let entries = if verified {
                entries
            } else {
                mask_pointers(entries)
            };
            out += &format!(" map={entries:?}");
        }
    }
    out
}

/// Loads `obj` three times (interpreter, checked JIT, trusted JIT when
/// every program verifies), fills the maps with the same random entries and
/// compares every program on `inputs`. Returns (runs, mismatches).
fn compare_object(
    path: &std::path::Path,
    inputs: &[Vec<u8>],
    mismatches: &mut Vec<String>,
) -> usize {
    let Ok(o) = oxbpf_obj::load(&std::fs::read(path).unwrap()) else {
        return 0;
    };
    let override_type = o
        .programs
        .iter()
        .all(|p| p.kind == oxbpf_obj::ProgramType::Unspec)
        .then_some(oxbpf_obj::ProgramType::SocketFilter);
    // Proven as the types they run as (an untyped object runs as socket
    // filters here, so that is what the proof must be about).
    let proof = oxbpf_verifier::prove_object(&o, override_type).ok();
    let verified = proof.is_some();
    let make = |engine: Engine, trusted: bool| -> Option<LoadedObject> {
        let mut lo = LoadedObject::new(&o, 1, override_type).ok()?;
        lo.env.frozen_ns = Some(1_000_000_007);
        lo.config.engine = engine;
        lo.config.instruction_budget = Some(1_000_000);
        if trusted {
            // Every program of the object passed the verifier; the proof
            // must fit the programs as they are loaded to be taken.
            lo.trust(proof.as_ref()?).ok()?;
        }
        let mut rng = Rng(0x0005_eed0_f3a9);
        for m in &lo.env.maps {
            if !matches!(m.spec.map_type, 1 | 2 | 5 | 6 | 9 | 10) {
                continue;
            }
            for _ in 0..8 {
                let mut key: Vec<u8> = (0..m.spec.key_size).map(|_| rng.next() as u8).collect();
                if matches!(m.spec.map_type, 2 | 6) && key.len() == 4 {
                    key = ((rng.next() % u64::from(m.spec.max_entries.max(1))) as u32)
                        .to_le_bytes()
                        .to_vec();
                }
                let value: Vec<u8> = (0..m.spec.value_size).map(|_| rng.next() as u8).collect();
                let _ = m.update(&key, &value, 0, None);
            }
        }
        Some(lo)
    };
    let Some(reference) = make(Engine::Interpreter, false) else {
        return 0;
    };
    let mut engines = vec![("jit checked", make(Engine::Jit, false).unwrap())];
    if verified {
        engines.push(("jit trusted", make(Engine::Jit, true).unwrap()));
    }
    let mut runs = 0;
    for idx in 0..reference.programs.len() {
        for input in inputs {
            let want = observe(&reference, idx, input, verified);
            runs += 1;
            for (name, lo) in &engines {
                let got = observe(lo, idx, input, verified);
                if got != want && mismatches.len() < 10 {
                    mismatches.push(format!(
                        "{} {} ({name}) on {} bytes:\n  interpreter: {want}\n  jit:         {got}",
                        path.display(),
                        reference.programs[idx].def.name,
                        input.len()
                    ));
                }
            }
        }
    }
    runs
}

fn packets(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut out: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let len = rng.below(200) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        })
        .collect();
    out.push(Vec::new());
    out
}

#[test]
fn examples_agree() {
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"));
    let mut inputs = packets(7, 16);
    for pcap in ["mixed.pcap", "flows.pcap"] {
        let bytes = std::fs::read(dir.join("pcap").join(pcap)).unwrap();
        for p in oxbpf_pcap::read(&bytes).unwrap().1 {
            inputs.push(p.data);
        }
    }
    let (mut runs, mut mismatches) = (0, Vec::new());
    for obj in common::objects_under(&dir.join("c")) {
        runs += compare_object(&obj, &inputs, &mut mismatches);
    }
    eprintln!(
        "examples: {runs} runs compared, {} mismatches",
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(runs > 100);
}

#[test]
fn samples_agree() {
    let Some(objects) = common::valid_samples() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    let inputs = packets(11, 8);
    let (mut runs, mut mismatches) = (0, Vec::new());
    for obj in &objects {
        runs += compare_object(obj, &inputs, &mut mismatches);
    }
    eprintln!(
        "ebpf-samples: {runs} runs compared, {} mismatches",
        mismatches.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(runs > 1000);
}

/// A register a safe program may write: r0 or r2..r8 (r1 keeps the input
/// pointer, r9 counts loop iterations, r10 is the frame pointer).
fn safe_reg(r: &mut Rng) -> u8 {
    r.pick(&[0, 2, 3, 4, 5, 6, 7, 8])
}

/// One unit of a memory-safe program: instructions kept together (an
/// idiom the JIT recognises, or a single operation).
fn safe_unit(r: &mut Rng) -> Vec<RawInsn> {
    let n = MEM_LEN as i16;
    let (sz, size) = r.pick(&[(0x00u8, 4i16), (0x08, 2), (0x10, 1), (0x18, 8)]);
    let in_bounds = |r: &mut Rng, size: i16| r.below((n - size + 1) as u64) as i16;
    let stack_off = |r: &mut Rng, size: i16| -(r.below((64 / size) as u64) as i16 + 1) * size;
    match r.below(13) {
        0 | 1 => {
            let mut i = alu(r);
            i.dst = safe_reg(r);
            vec![i]
        }
        2 => vec![RawInsn::new(
            0x61 | sz,
            safe_reg(r),
            1,
            in_bounds(r, size),
            0,
        )],
        3 => {
            let (base, off) = if r.chance(50) {
                (1, in_bounds(r, size))
            } else {
                (10, stack_off(r, size))
            };
            if r.chance(50) {
                vec![RawInsn::new(0x63 | sz, base, reg(r), off, 0)]
            } else {
                vec![RawInsn::new(0x62 | sz, base, 0, off, imm(r))]
            }
        }
        4 => vec![RawInsn::new(
            0x61 | sz,
            safe_reg(r),
            10,
            stack_off(r, size),
            0,
        )],
        5 => {
            // Two byte loads joined: x = p[j]; y = p[k]; s <<= 8; s |= o,
            // through a copy of r1 that the second load may overwrite.
            let b = safe_reg(r);
            let (x, y) = (safe_reg(r), safe_reg(r));
            let x = if x == b { (x + 1) % 9 } else { x };
            let x = if x == 1 { 2 } else { x };
            let j = r.below((n - 2) as u64) as i16;
            let k = if r.chance(80) {
                j + r.pick(&[1, -1]).max(-j)
            } else {
                j + 2
            };
            let (s, o) = if r.chance(50) { (x, y) } else { (y, x) };
            let sh = r.pick(&[0x64u8, 0x67]);
            let or = r.pick(&[0x4cu8, 0x4f]);
            vec![
                RawInsn::new(0xbf, b, 1, 0, 0),
                RawInsn::new(0x71, x, b, j, 0),
                RawInsn::new(0x71, y, b, k, 0),
                RawInsn::new(sh, s, 0, 0, 8),
                RawInsn::new(or, s, o, 0, 0),
            ]
        }
        6 => {
            // rI &= 31; rA = r1; rA += rI; load or store at [rA + k].
            let (i, a) = (safe_reg(r), safe_reg(r));
            let a = if a == i { (a + 1) % 9 } else { a };
            let a = if a == 1 { 2 } else { a };
            let k = r.below((n - 31 - size) as u64) as i16;
            let access = match r.below(3) {
                0 => RawInsn::new(0x61 | sz, safe_reg(r), a, k, 0),
                1 => RawInsn::new(0x61 | sz, a, a, k, 0),
                _ => RawInsn::new(0x63 | sz, a, reg(r), k, 0),
            };
            vec![
                RawInsn::new(0x57, i, 0, 0, 31),
                RawInsn::new(0xbf, a, 1, 0, 0),
                RawInsn::new(0x0f, a, i, 0, 0),
                access,
            ]
        }
        7 => {
            // rD = rS; rD &= 0xff or 0xffff.
            let d = safe_reg(r);
            vec![
                RawInsn::new(r.pick(&[0xbcu8, 0xbf]), d, reg(r), 0, 0),
                RawInsn::new(r.pick(&[0x54u8, 0x57]), d, 0, 0, r.pick(&[0xff, 0xffff])),
            ]
        }
        8 => {
            // Multiplication, division and modulo by constants.
            let code = r.pick(&[0x27u8, 0x24, 0x37, 0x34, 0x97, 0x94]);
            let c = r.pick(&[3, 5, 6, 7, 9, 10, 13, 17, 19, 24, 31, 33, 63, 100, 641, -7]);
            vec![RawInsn::new(code, safe_reg(r), 0, 0, c)]
        }
        9 => vec![cond_jump(r)],
        10 => {
            // A summing loop: b = r1; i = i0; loop: t = b; t += i;
            // t = *(uS *)(t + k); a += t; i += S; if i != N goto loop
            // (or `if i == N goto out; goto loop`).
            let mut regs = [0u8, 2, 3, 4, 5, 6, 7, 8];
            for x in (1..regs.len()).rev() {
                regs.swap(x, r.below(x as u64 + 1) as usize);
            }
            let [b, i, t, a, ..] = regs;
            let (code, size) = r.pick(&[(0x71u8, 1i32), (0x69, 2), (0x61, 4), (0x79, 8)]);
            let count = 1 + r.below((n as u64) / size as u64) as i32;
            let room = n as i32 - count * size;
            let i0 = r.below(room as u64 + 1) as i32;
            let k = r.below((room - i0) as u64 + 1) as i16;
            let end = i0 + count * size;
            let (x, y) = if r.chance(50) { (b, i) } else { (i, b) };
            let mut u = vec![
                RawInsn::new(0xbf, b, 1, 0, 0),
                RawInsn::new(0xb7, i, 0, 0, i0),
                RawInsn::new(0xbf, t, x, 0, 0),
                RawInsn::new(0x0f, t, y, 0, 0),
                RawInsn::new(code, t, t, k, 0),
                RawInsn::new(0x0f, a, t, 0, 0),
                RawInsn::new(0x07, i, 0, 0, size),
            ];
            if r.chance(50) {
                u.push(RawInsn::new(0x55, i, 0, -6, end));
            } else {
                u.push(RawInsn::new(0x15, i, 0, 1, end));
                u.push(RawInsn::new(0x05, 0, 0, -7, 0));
            }
            u
        }
        _ => {
            let mut i = alu(r);
            i.dst = safe_reg(r);
            vec![i]
        }
    }
}

/// Placeholder immediate of a call to a safe program's subprogram.
const SUB_CALL: i32 = 0x7eed;

/// A program whose every access is in bounds by construction (input at
/// r1 + [0, MEM_LEN), stack at r10 - [1, 64]), so the JIT may run it
/// without checks: straight-line units, forward branches, at most one
/// counted loop, and calls to a subprogram.
fn safe_program(r: &mut Rng) -> Vec<RawInsn> {
    let mut units: Vec<Vec<RawInsn>> = Vec::new();
    for d in [0u8, 2, 3, 4, 5, 6, 7, 8] {
        units.push(vec![RawInsn::new(0xb7, d, 0, 0, imm(r))]);
    }
    let n = 4 + r.below(30) as usize;
    let loop_at = r.chance(50).then(|| r.below(n as u64) as usize);
    let with_sub = r.chance(30);
    let mut loop_start = None;
    for k in 0..n {
        if with_sub && r.chance(15) {
            // A call to the subprogram after the exit (imm fixed below).
            units.push(vec![RawInsn::new(0x85, 0, 1, 0, SUB_CALL)]);
        }
        if loop_at == Some(k) {
            units.push(vec![RawInsn::new(0xb7, 9, 0, 0, 1 + r.below(5) as i32)]);
            loop_start = Some(units.len());
        }
        units.push(safe_unit(r));
        if let Some(start) = loop_start
            && (k == n - 1 || r.chance(25))
        {
            // r9 -= 1; if r9 != 0 goto start (offset fixed below).
            units.push(vec![RawInsn::new(0x17, 9, 0, 0, 1)]);
            units.push(vec![RawInsn::new(0x55, 9, 0, -(start as i16) - 1, 0)]);
            loop_start = None;
        }
    }
    units.push(vec![RawInsn::new(0x95, 0, 0, 0, 0)]);
    let last = units.len() - 1;
    // The subprogram: safe units (no forward jumps: those go to the main
    // program's exit), then its own exit. It hands r0..r5 back.
    let sub_start = units.len();
    if with_sub {
        for _ in 0..1 + r.below(5) {
            let u = loop {
                let u = safe_unit(r);
                if !(u.len() == 1 && u[0].off == 0 && matches!(u[0].code & 7, 0x05 | 0x06)) {
                    break u;
                }
            };
            units.push(u);
        }
        units.push(vec![RawInsn::new(0x95, 0, 0, 0, 0)]);
    }
    // Slots of each unit; forward conditional jumps go to a later unit
    // (not into a loop from outside: only to units after the loop's end
    // or inside the same straight-line stretch).
    let mut slot_of = Vec::with_capacity(units.len());
    let mut slot = 0;
    for u in &units {
        slot_of.push(slot);
        slot += u.len();
    }
    let mut out = Vec::with_capacity(slot);
    for (k, u) in units.iter().enumerate() {
        for (j, &insn) in u.iter().enumerate() {
            let mut insn = insn;
            let here = slot_of[k] + j;
            if insn.code == 0x85 && insn.imm == SUB_CALL {
                insn.imm = (slot_of[sub_start] as i64 - here as i64 - 1) as i32;
            } else if insn.code == 0x55 && insn.dst == 9 && insn.off < 0 {
                let start = (-insn.off - 1) as usize;
                insn.off = (slot_of[start] as i64 - here as i64 - 1) as i16;
            } else if matches!(insn.code & 7, 0x05 | 0x06)
                && !matches!(insn.code & 0xf0, 0x00 | 0x80 | 0x90)
                && insn.off == 0
            {
                // A forward jump to the exit (never into or out of a loop
                // body half-way: the exit is after every loop).
                insn.off = (slot_of[last] as i64 - here as i64 - 1) as i16;
            }
            out.push(insn);
        }
    }
    out
}

#[test]
fn safe_programs_agree_in_trusted_mode() {
    // Programs built to be memory-safe run unchecked (the mode the JIT's
    // liveness-based and trusted-only idioms apply in), and checked,
    // against the interpreter: r0, instruction count and memory must be
    // identical.
    // SAFE_CASES=N runs N programs instead of 4000.
    let mut rng = Rng(0x5afe_c0de_1234_5678);
    let mut buf = vec![0u8; MEM_LEN];
    let (mut programs, mut mismatches) = (0, Vec::new());
    let cases: u64 = std::env::var("SAFE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    for case in 0..cases {
        let slots = safe_program(&mut rng);
        let program = Program::from_slots(slots.clone()).expect("valid safe program");
        programs += 1;
        let mem: Vec<u8> = (0..MEM_LEN).map(|_| rng.next() as u8).collect();
        let interp = Vm::new(program);
        let reference = run(&interp, &mem, &mut buf);
        assert!(
            reference.0.starts_with("ok"),
            "case {case}: {}",
            reference.0
        );
        let mut trusted = interp.clone();
        trusted.config.engine = Engine::Jit;
        // SAFETY: the programs are memory-safe by construction (not proven
        // by the verifier): every access is inside the MEM_LEN-byte input
        // or the first 64 bytes below the frame pointer.
        trusted.config.checks = unsafe { Checks::trust_unproven() };
        for (what, checked, count, budget) in [
            ("trusted", false, true, None),
            ("trusted+uncounted", false, false, None),
            ("trusted+budget", false, true, Some(1_000_000)),
            ("checked+uncounted", true, false, None),
        ] {
            if checked {
                trusted.config.checks = Checks::ON;
            }
            trusted.config.count_instructions = count;
            trusted.config.instruction_budget = budget;
            let mut got = run(&trusted, &mem, &mut buf);
            if !count {
                let executed = reference.0.split("executed=").nth(1).unwrap_or("0");
                got.0 = got.0.replace("executed=0", &format!("executed={executed}"));
            }
            if got != reference && mismatches.len() < 10 {
                let text = oxbpf_isa::listing(&oxbpf_isa::decode(&slots).unwrap());
                mismatches.push(format!(
                    "case {case} {what}: interpreter {:?} / jit {:?}\n{text}",
                    reference, got
                ));
            }
        }
    }
    eprintln!("{programs} safe programs, {} mismatches", mismatches.len());
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}

/// Packet buffers are pooled between runs, so what one run wrote in the
/// tailroom is still there for the next: growing the tail must expose
/// zeros (as the kernel clears it), in both engines.
#[test]
fn a_grown_tail_reads_zero_after_an_earlier_run_wrote_there() {
    let prog = |body: &str| {
        let src = format!(
            "r6 = r1\nr2 = 8\ncall 65\nif r0 != 0 goto out\nr2 = *(u32 *)(r6 + 0)\n{body}\nexit\nout:\nr0 = 99\nexit\n"
        );
        let raw = oxbpf_asm::assemble_raw(&src).unwrap();
        let mut obj = oxbpf_obj::Object::from_raw_program("tail", raw);
        obj.programs[0].kind = oxbpf_obj::ProgramType::Xdp;
        obj
    };
    let write = prog("r3 = -1\n*(u64 *)(r2 + 20) = r3\nr0 = 2");
    let read = prog("r0 = *(u64 *)(r2 + 20)");
    let pkt = [0x11u8; 20];
    for engine in [
        oxbpf_vm::jit::Engine::Interpreter,
        oxbpf_vm::jit::Engine::Jit,
    ] {
        let mut w = oxbpf_vm::loaded::LoadedObject::new(&write, 1, None).unwrap();
        let mut r = oxbpf_vm::loaded::LoadedObject::new(&read, 1, None).unwrap();
        w.config.engine = engine;
        r.config.engine = engine;
        for _ in 0..3 {
            assert_eq!(w.run(0, &pkt).unwrap().result.unwrap().r0, 2, "{engine:?}");
            assert_eq!(
                r.run(0, &pkt).unwrap().result.unwrap().r0,
                0,
                "{engine:?}: stale tailroom"
            );
        }
    }
}
