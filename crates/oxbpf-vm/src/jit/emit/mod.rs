//! Code generation: lowered [`Op`]s to x86-64 with dynasm-rs.
//!
//! No `unsafe` here: this module only produces bytes. The generated code
//! follows the conventions below; `exec.rs` is the only place that runs it.
//!
//! Register map (System V, so helper arguments are already in place):
//! r0→rax, r1→rdi, r2→rsi, r3→rdx, r4→rcx, r5→r8, r6→rbx, r7→r13,
//! r8→r14, r9→r15, r10→rbp. Host registers: r12 = the run's [`JitCtx`],
//! r9 = instruction counter, r10/r11 = scratch.
//!
//! Calls and exits use the native stack: the entry calls the program's
//! first instruction, a local call pushes the callee-saved BPF registers and
//! the frame pointer and `call`s its target, and every `exit` is a `ret`.
//! Errors and early exits unwind with the stack pointer saved at entry.
//!
//! Instruction counting: without a budget, each basic block adds its length
//! to the counter when entered, and early exits subtract what the block did
//! not run; with a budget, every instruction compares and increments, so
//! the budget stops at the same instruction as in the interpreter. Without
//! either (`Config::count_instructions` off) nothing is counted.

// dynasm!'s expansion converts register numbers with `.into()`, which
// clippy flags when they already are `u8`.
#![allow(clippy::useless_conversion)]

mod alu;
use flow::{SMALL_LOOP, is_jump};
mod flow;
mod frame;
mod memory;

use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, dynasm};

/// Assembles position-independent code into a vector (every internal
/// reference is RIP-relative), so the bytes can be placed anywhere.
type Assembler = dynasmrt::VecAssembler<dynasmrt::x64::X64Relocation>;

use super::encode::{self, Form, Mem};
use super::{JitError, Mode, off};
use crate::program::{FUNC_ADDR_TAG, OP_INVALID, OP_UNRESOLVED, Op};
use oxbpf_isa::raw::opcode::*;
use oxbpf_isa::raw::*;

/// Host register of each BPF register r0..r10.
const REG: [u8; 11] = [0, 7, 6, 2, 1, 8, 3, 13, 14, 15, 5];
const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
/// Scratch register holding checked addresses (r10 is the other scratch;
/// r12 holds the context and r9 the instruction counter).
const S1: u8 = 11;

/// Error kinds the generated code reports in `JitCtx::err_info` (high half;
/// the low half is the pc).
pub(crate) mod err {
    pub const BUDGET: u64 = 2;
    pub const DEPTH: u64 = 3;
    pub const FELL_OFF: u64 = 4;
    pub const KFUNC: u64 = 5;
    pub const UNRESOLVED: u64 = 6;
    pub const NO_PACKET: u64 = 7;
}

/// Flag in a helper call's info word: the call came from `callx`.
pub(crate) const CALLX_FLAG: u64 = 1 << 63;

/// Size of one entry thunk (callx and callback targets), in bytes.
pub(crate) const THUNK_SIZE: usize = 16;

/// The compiled form: position-independent code plus the offsets of its
/// entry points.
pub(crate) struct Compiled {
    pub code: Vec<u8>,
    pub entry: usize,
    pub body: usize,
    pub thunks: Option<usize>,
    /// Whether any instruction names r10 or calls: a *verified* program
    /// that does neither cannot form a stack address nor let a helper use
    /// its stack, so its stack needs no zeroing after the run. (Unverified
    /// programs may reuse an address from an earlier run.)
    pub uses_fp: bool,
    /// Trusted code that uses neither the stack, calls, entry thunks nor
    /// the packet (legacy loads), without a budget: besides the memory the
    /// verified program addresses it touches only its `JitCtx` and never
    /// calls back into Rust, so it can run on a bare context
    /// (`exec::enter_leaf`).
    pub leaf: bool,
}

#[derive(Clone, Copy)]
enum Cc {
    E,
    Ne,
    A,
    Ae,
    B,
    Be,
    G,
    Ge,
    L,
    Le,
}

impl Cc {
    fn negate(self) -> Cc {
        match self {
            Cc::E => Cc::Ne,
            Cc::Ne => Cc::E,
            Cc::A => Cc::Be,
            Cc::Be => Cc::A,
            Cc::Ae => Cc::B,
            Cc::B => Cc::Ae,
            Cc::G => Cc::Le,
            Cc::Le => Cc::G,
            Cc::Ge => Cc::L,
            Cc::L => Cc::Ge,
        }
    }
}

/// Out-of-line code, emitted after the body so the hot path falls through.
enum Cold {
    /// Report an error kind at a pc.
    Error {
        at: DynamicLabel,
        kind: u64,
        pc: usize,
    },
    /// Memory check after the inline range missed: the other range, then
    /// the check routine (all regions), then back.
    Check {
        at: DynamicLabel,
        back: DynamicLabel,
        info: u64,
        stack_first: bool,
    },
    /// Division special case: divisor zero (`-1` for signed: `minus_one`).
    DivSpecial {
        at: DynamicLabel,
        back: DynamicLabel,
        dst: u8,
        wide: bool,
        modulo: bool,
        minus_one: bool,
    },
    /// Legacy packet load out of bounds: the program ends with r0 = 0.
    PacketEnd { at: DynamicLabel, rem: u32 },
}

struct Emitter<'a> {
    a: Assembler,
    ops: &'a [Op],
    mode: Mode,
    cpu: Cpu,
    labels: Vec<DynamicLabel>,
    /// Instructions of the block that follow each pc (0 in budget mode).
    rem: Vec<u32>,
    /// Length of the block a pc starts (0 when it starts none, or when
    /// blocks are not counted).
    block_len: Vec<u32>,
    /// Whether a pc starts a basic block (a jump target, a call target, the
    /// instruction after a branch, call or exit).
    leader: Vec<bool>,
    /// Whether a pc is the target of a jump or local call.
    target: Vec<bool>,
    /// Whether a pc is the target of a backward jump (a loop head).
    loop_head: Vec<bool>,
    /// Registers live after each pc (trusted code; empty otherwise).
    live_out: Vec<super::liveness::Regs>,
    cold: Vec<Cold>,
    /// State of the random keys for constant blinding.
    rng: u64,
    /// Emitting a duplicated block (no further duplication inside).
    in_copy: bool,
    /// The conditional jump ending the block being duplicated, and the pc
    /// emitted right after the copy.
    invert_at: Option<(usize, usize)>,
    helper: DynamicLabel,
    check: DynamicLabel,
    error: DynamicLabel,
    unwind: DynamicLabel,
    thunks: Option<DynamicLabel>,
}

/// Optional instruction sets of the host CPU.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Cpu {
    /// `shlx`/`shrx`/`sarx`, `mulx`.
    pub bmi2: bool,
    /// 256-bit integer vectors (summing loops).
    pub avx2: bool,
}

/// Compiles `ops` (one per slot plus the end sentinel).
pub(crate) fn compile(ops: &[Op], mode: Mode, cpu: Cpu) -> Result<Compiled, JitError> {
    let len = ops.len() - 1;
    // Room for typical output up front (about 10 bytes per instruction,
    // a label each, a reference per jump): no regrowth while emitting.
    let mut a = Assembler::new_with_capacity(0, 12 * len + 1024, 0, 0, len + 16, 0, len / 2 + 64);
    let labels: Vec<DynamicLabel> = (0..=len).map(|_| a.new_dynamic_label()).collect();
    let needs_thunks = ops.iter().any(|o| {
        o.code == CALLX || (o.code == LDDW && (o.imm as u64) & !0xffff_ffff == FUNC_ADDR_TAG)
    });
    let (rem, block_len, leader) = blocks(ops, mode.budget || !mode.count);
    let mut target = vec![false; len + 1];
    let mut loop_head = vec![false; len + 1];
    for (pc, o) in ops[..len].iter().enumerate() {
        if is_jump(o.code) || (o.code == CALL && o.src == BPF_PSEUDO_CALL) {
            target[o.off as usize] = true;
        }
        // Small loops (a back edge at most 16 instructions back).
        if is_jump(o.code) && (o.off as usize) <= pc && pc - (o.off as usize) <= SMALL_LOOP {
            loop_head[o.off as usize] = true;
        }
    }
    let mut e = Emitter {
        helper: a.new_dynamic_label(),
        check: a.new_dynamic_label(),
        error: a.new_dynamic_label(),
        unwind: a.new_dynamic_label(),
        thunks: needs_thunks.then(|| a.new_dynamic_label()),
        a,
        ops,
        mode,
        cpu,
        labels,
        rem,
        block_len,
        leader,
        target,
        loop_head,
        live_out: if mode.checked {
            Vec::new()
        } else {
            super::liveness::live_out(ops)
        },
        cold: Vec::new(),
        rng: if mode.blind { random_seed() } else { 0 },
        in_copy: false,
        invert_at: None,
    };
    let entry = e.entry();
    let body = e.a.offset().0;
    let mut pc = 0;
    while pc < len {
        pc = e.insn(pc)?;
    }
    // Falling off the end.
    let l = e.labels[len];
    dynasm!(e.a ; =>l);
    if e.mode.budget {
        e.budget_check(len);
    }
    e.error_jump(err::FELL_OFF, len);
    e.emit_cold();
    e.routines();
    let thunks = e.emit_thunks(len);
    let code =
        e.a.finalize()
            .map_err(|err| JitError::new(format!("code generation: {err}")))?;
    // Calls count as naming r10: a helper may use the caller's stack
    // (`for_each_map_elem` puts each key there for the callback).
    let uses_fp = ops[..len]
        .iter()
        .any(|o| o.dst == 10 || o.src == 10 || matches!(o.code, CALL | CALLX));
    let leaf = !mode.checked
        && !mode.budget
        && !uses_fp
        && thunks.is_none()
        && !ops[..len]
            .iter()
            .any(|o| matches!(o.code, 0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50));
    Ok(Compiled {
        code,
        entry,
        body,
        thunks,
        uses_fp,
        leaf,
    })
}

/// Basic blocks: returns, per pc, how many instructions of its block follow
/// it and the length of the block it starts (both 0 when blocks are not
/// counted: `per_insn`), and whether it starts a block.
fn blocks(ops: &[Op], per_insn: bool) -> (Vec<u32>, Vec<u32>, Vec<bool>) {
    let len = ops.len() - 1;
    let mut leader = vec![false; len + 1];
    leader[0] = true;
    leader[len] = true;
    for (pc, o) in ops[..len].iter().enumerate() {
        let next = pc
            + if o.code == LDDW || o.code == OP_UNRESOLVED {
                2
            } else {
                1
            };
        if is_jump(o.code) {
            leader[o.off as usize] = true;
            leader[next.min(len)] = true;
        }
        match o.code {
            EXIT => leader[next.min(len)] = true,
            CALL if o.src == BPF_PSEUDO_CALL => {
                leader[o.off as usize] = true;
                leader[next.min(len)] = true;
            }
            CALLX => leader[next.min(len)] = true,
            _ => {}
        }
    }
    let mut rem = vec![0u32; len + 1];
    let mut block_len = vec![0u32; len + 1];
    if per_insn {
        return (rem, block_len, leader);
    }
    // Walk each block's instruction starts.
    let mut pc = 0;
    let mut starts: Vec<usize> = Vec::new();
    let flush = |starts: &mut Vec<usize>, rem: &mut Vec<u32>, block_len: &mut Vec<u32>| {
        if let Some(&first) = starts.first() {
            block_len[first] = starts.len() as u32;
            for (i, &p) in starts.iter().enumerate() {
                rem[p] = (starts.len() - i - 1) as u32;
            }
        }
        starts.clear();
    };
    while pc < len {
        if leader[pc] {
            flush(&mut starts, &mut rem, &mut block_len);
        }
        starts.push(pc);
        let o = ops[pc];
        pc += if o.code == LDDW || o.code == OP_UNRESOLVED {
            2
        } else {
            1
        };
    }
    flush(&mut starts, &mut rem, &mut block_len);
    (rem, block_len, leader)
}

impl Emitter<'_> {
    /// Emits the instruction at `pc`; returns the next pc to emit.
    fn insn(&mut self, pc: usize) -> Result<usize, JitError> {
        if self.loop_head[pc] {
            if let Some(sum) = self.sum_loop(pc) {
                self.sum_loop_vectors(sum);
            }
            self.align_loop();
        }
        let l = self.labels[pc];
        dynasm!(self.a ; =>l);
        if self.mode.budget {
            self.budget_check(pc);
        } else if self.block_len[pc] != 0 {
            let n = self.block_len[pc] as i32;
            if n < 128 {
                dynasm!(self.a ; add r9, BYTE n as i8);
            } else {
                dynasm!(self.a ; add r9, n);
            }
        }
        self.insn_body(pc)
    }

    /// [`Emitter::insn`] without its label and block count: also used to
    /// emit copies of small blocks at jumps to them.
    fn insn_body(&mut self, pc: usize) -> Result<usize, JitError> {
        let o = self.ops[pc];
        let d = REG[(o.dst & 15) as usize % 11];
        let s = REG[(o.src & 15) as usize % 11];
        let imm = o.imm as i32;
        let class = o.code & 7;
        // Idioms of two or three instructions (only where the later ones
        // start no block, so counting stays exact).
        if let Some(next) = self.address_idiom(pc) {
            return Ok(next);
        }
        if let Some(next) = self.byte_pair_idiom(pc) {
            return Ok(next);
        }
        if self.plain_next(pc + 1) {
            let n = self.ops[pc + 1];
            // rD <<= 32; rD >>= 32 → zero-extend; `s>>= 32` → sign-extend.
            if o.code == LSH64_K && o.imm == 32 && n.dst == o.dst && n.imm == 32 {
                if n.code == RSH64_K {
                    dynasm!(self.a ; mov Rd(d), Rd(d));
                    return Ok(pc + 2);
                }
                if n.code == ARSH64_K {
                    dynasm!(self.a ; movsxd Rq(d), Rd(d));
                    return Ok(pc + 2);
                }
            }
            // rD = rS; rD &= 0xff (0xffff) → movzx rD, rS's low byte (word).
            if matches!(o.code, 0xbc | 0xbf)
                && o.off == 0
                && matches!(n.code, 0x54 | 0x57)
                && n.dst == o.dst
                && !self.mode.blind
            {
                match n.imm {
                    0xff => {
                        dynasm!(self.a ; movzx Rd(d), Rb(s));
                        return Ok(pc + 2);
                    }
                    0xffff => {
                        dynasm!(self.a ; movzx Rd(d), Rw(s));
                        return Ok(pc + 2);
                    }
                    _ => {}
                }
            }
        }
        match class {
            BPF_ALU64 | BPF_ALU => self.alu(o, d, s, imm, class == BPF_ALU64, pc)?,
            BPF_JMP | BPF_JMP32 => return self.jmp(o, d, s, imm, class == BPF_JMP, pc),
            BPF_LDX => {
                let (b, disp) = self.mem(o.src, o.off, ldst_size(o.code), false, pc);
                if !self.load_store(o.code, d, b, None, disp) {
                    return Err(bad(pc, o));
                }
            }
            BPF_ST if self.mode.blind => {
                let (b, disp) = self.mem(o.dst, o.off, ldst_size(o.code), true, pc);
                self.blinded_imm(imm, o.code == STDW);
                // The same width's register store (ST + 1 = STX), of r10.
                if !self.load_store(o.code + 1, 10, b, None, disp) {
                    return Err(bad(pc, o));
                }
            }
            BPF_ST => {
                let (b, disp) = self.mem(o.dst, o.off, ldst_size(o.code), true, pc);
                // mov [m], imm: C7 /0 (C6 /0 for a byte).
                let m = Mem {
                    base: b,
                    index: None,
                    disp,
                };
                let (form, opcode, n) = match o.code {
                    0x62 => (Form::default(), 0xc7, 4),
                    0x6a => (
                        Form {
                            p66: true,
                            ..Form::default()
                        },
                        0xc7,
                        2,
                    ),
                    0x72 => (Form::default(), 0xc6, 1),
                    0x7a => (
                        Form {
                            w: true,
                            ..Form::default()
                        },
                        0xc7,
                        4,
                    ),
                    _ => return Err(bad(pc, o)),
                };
                let insn = encode::mem_insn(form, &[opcode], 0, m).imm(imm as i64, n);
                self.a.extend(insn.as_slice());
            }
            BPF_STX => match o.code {
                0x63 | 0x6b | 0x73 | 0x7b => {
                    let (b, disp) = self.mem(o.dst, o.off, ldst_size(o.code), true, pc);
                    self.load_store(o.code, s, b, None, disp);
                }
                0xc3 | 0xdb => self.atomic(o, d, s, pc)?,
                _ => return Err(bad(pc, o)),
            },
            BPF_LD => match o.code {
                LDDW if self.mode.blind => {
                    let k = self.key() as i64;
                    dynasm!(self.a
                        ; mov Rq(d), QWORD o.imm ^ k
                        ; mov r10, QWORD k
                        ; xor Rq(d), r10
                    );
                    return Ok(pc + 2);
                }
                LDDW => {
                    let v = o.imm;
                    if v == 0 {
                        dynasm!(self.a ; xor Rd(d), Rd(d));
                    } else if v as u64 <= u32::MAX as u64 {
                        dynasm!(self.a ; mov Rd(d), v as i32);
                    } else if v == v as i32 as i64 {
                        dynasm!(self.a ; mov Rq(d), v as i32);
                    } else {
                        dynasm!(self.a ; mov Rq(d), QWORD v);
                    }
                    return Ok(pc + 2);
                }
                OP_UNRESOLVED => {
                    self.error_jump(err::UNRESOLVED, pc);
                    return Ok(pc + 2);
                }
                0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50 => self.legacy_load(o, s, pc),
                _ => return Err(bad(pc, o)),
            },
            _ => {
                if o.code == OP_INVALID {
                    self.error_jump(err::FELL_OFF, pc);
                } else {
                    return Err(bad(pc, o));
                }
            }
        }
        Ok(pc + 1)
    }

    /// Whether nothing reads BPF register `r` after `pc` before writing it
    /// (trusted code only computes liveness; otherwise every register is
    /// taken as live).
    fn dead_after(&self, r: u8, pc: usize) -> bool {
        self.live_out
            .get(pc)
            .is_some_and(|&l| r <= 10 && l & 1 << r == 0)
    }

    /// A fresh random key (xorshift64 from a random seed).
    fn key(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Constant blinding: puts `imm` in r10 (sign-extended to 64 bits when
    /// `wide`) without the constant appearing in the code: the code holds
    /// `imm ^ key` and `key` for a fresh random key.
    fn blinded_imm(&mut self, imm: i32, wide: bool) {
        let k = self.key() as i32;
        dynasm!(self.a
            ; mov r10d, imm ^ k
            ; xor r10d, k
        );
        if wide {
            dynasm!(self.a ; movsxd r10, r10d);
        }
    }
}

/// A random seed for blinding keys (std's per-process random hasher keys,
/// mixed with a counter so each compilation differs).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish() | 1
}

fn ldst_size(code: u8) -> u64 {
    match code & 0x18 {
        BPF_W => 4,
        BPF_H => 2,
        BPF_B => 1,
        _ => 8,
    }
}

fn bad(pc: usize, o: Op) -> JitError {
    JitError::new(format!(
        "instruction {pc}: opcode {:#04x} cannot be compiled",
        o.code
    ))
}
