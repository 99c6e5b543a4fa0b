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

use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, dynasm};

/// Assembles position-independent code into a vector (every internal
/// reference is RIP-relative), so the bytes can be placed anywhere.
type Assembler = dynasmrt::VecAssembler<dynasmrt::x64::X64Relocation>;

use super::encode::{self, Form, Mem};
use super::{JitError, Mode, off};
use crate::program::{FUNC_ADDR_TAG, OP_INVALID, OP_UNRESOLVED, Op};
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

fn is_jump(code: u8) -> bool {
    matches!(code & 7, 0x05 | 0x06) && !matches!(code, 0x85 | 0x8d | 0x95)
}

/// Loops of at most this many instructions start at a 16-byte boundary.
const SMALL_LOOP: usize = 16;

/// A summing loop found by `Emitter::sum_loop`: host registers of the
/// base, index and accumulator, the load's offset and size, the end value
/// of the index and the pc the loop exits to.
#[derive(Clone, Copy)]
struct SumLoop {
    b: u8,
    i: u8,
    a: u8,
    disp: i32,
    size: i32,
    end: i32,
    exit: usize,
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
        o.code == 0x8d || (o.code == 0x18 && (o.imm as u64) & !0xffff_ffff == FUNC_ADDR_TAG)
    });
    let (rem, block_len, leader) = blocks(ops, mode.budget || !mode.count);
    let mut target = vec![false; len + 1];
    let mut loop_head = vec![false; len + 1];
    for (pc, o) in ops[..len].iter().enumerate() {
        if is_jump(o.code) || (o.code == 0x85 && o.src == BPF_PSEUDO_CALL) {
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
            .map_err(|err| JitError(format!("code generation: {err}")))?;
    // Calls count as naming r10: a helper may use the caller's stack
    // (`for_each_map_elem` puts each key there for the callback).
    let uses_fp = ops[..len]
        .iter()
        .any(|o| o.dst == 10 || o.src == 10 || matches!(o.code, 0x85 | 0x8d));
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
            + if o.code == 0x18 || o.code == OP_UNRESOLVED {
                2
            } else {
                1
            };
        if is_jump(o.code) {
            leader[o.off as usize] = true;
            leader[next.min(len)] = true;
        }
        match o.code {
            0x95 => leader[next.min(len)] = true,
            0x85 if o.src == BPF_PSEUDO_CALL => {
                leader[o.off as usize] = true;
                leader[next.min(len)] = true;
            }
            0x8d => leader[next.min(len)] = true,
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
        pc += if o.code == 0x18 || o.code == OP_UNRESOLVED {
            2
        } else {
            1
        };
    }
    flush(&mut starts, &mut rem, &mut block_len);
    (rem, block_len, leader)
}

impl Emitter<'_> {
    /// `extern "sysv64" fn(ctx, args: *const [u64; 5], fp, target) -> u64`:
    /// saves the host's callee-saved registers, loads r1..r5 and r10, calls
    /// `target` and returns r0; errors and early exits unwind to it with
    /// their result in the context.
    fn entry(&mut self) -> usize {
        let start = self.a.offset().0;
        let unwind = self.unwind;
        dynasm!(self.a
            ; push rbp
            ; push rbx
            ; push r12
            ; push r13
            ; push r14
            ; push r15
            ; mov r12, rdi
            ; push QWORD [r12 + off::SAVED_RSP]
            ; mov [r12 + off::SAVED_RSP], rsp
            ; mov rbp, rdx
            ; mov r11, rcx
            ; mov r10, rsi
            ; mov rdi, [r10]
            ; mov rsi, [r10 + 8]
            ; mov rdx, [r10 + 16]
            ; mov rcx, [r10 + 24]
            ; mov r8, [r10 + 32]
            ; xor eax, eax
            ; xor ebx, ebx
            ; xor r13d, r13d
            ; xor r14d, r14d
            ; xor r15d, r15d
            ; mov r9, [r12 + off::EXECUTED]
            ; call r11
            // A normal return: r0 in rax, the stack as saved.
            ; done:
            ; mov [r12 + off::EXECUTED], r9
            ; pop QWORD [r12 + off::SAVED_RSP]
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop r12
            ; pop rbx
            ; pop rbp
            ; ret
            // Errors and early exits: from any depth, with the result (if
            // any) in the context.
            ; =>unwind
            ; mov rsp, [r12 + off::SAVED_RSP]
            ; mov rax, [r12 + off::RESULT]
            ; jmp <done
        );
        start
    }

    /// Stores BPF r0..r5 (rax, rdi, rsi, rdx, rcx, r8) in the context.
    fn save_bpf_args(&mut self) {
        dynasm!(self.a
            ; mov [r12 + off::REGS], rax
            ; mov [r12 + off::REGS + 8], rdi
            ; mov [r12 + off::REGS + 16], rsi
            ; mov [r12 + off::REGS + 24], rdx
            ; mov [r12 + off::REGS + 32], rcx
            ; mov [r12 + off::REGS + 40], r8
        );
    }

    /// Reloads BPF r1..r5 from the context (r0 is the caller's business).
    fn restore_bpf_args(&mut self) {
        dynasm!(self.a
            ; mov rdi, [r12 + off::REGS + 8]
            ; mov rsi, [r12 + off::REGS + 16]
            ; mov rdx, [r12 + off::REGS + 24]
            ; mov rcx, [r12 + off::REGS + 32]
            ; mov r8, [r12 + off::REGS + 40]
        );
    }

    /// Calls the Rust function whose address is in rax, arguments already
    /// in place, with the stack aligned to 16 bytes as System V requires.
    fn call_rust(&mut self) {
        dynasm!(self.a
            ; mov r11, rsp
            ; and rsp, -16
            ; push r11
            ; push r11
            ; call rax
            ; mov rsp, [rsp]
        );
    }

    /// The shared out-of-line routines.
    fn routines(&mut self) {
        let (helper, check, error, unwind) = (self.helper, self.check, self.error, self.unwind);
        let tail = self.a.new_dynamic_label();
        // Helper call: r10 = info (pc | rem << 32 | flags), r11 = id.
        dynasm!(self.a ; =>helper);
        self.save_bpf_args();
        dynasm!(self.a
            ; mov [r12 + off::REGS + 80], rbp
            ; mov [r12 + off::EXECUTED], r9
            ; mov [r12 + off::CALL_INFO], r10
            ; mov [r12 + off::CALL_ID], r11
            ; mov rdi, r12
            ; mov rax, QWORD [r12 + off::HELPER_FN]
        );
        self.call_rust();
        dynasm!(self.a ; mov r9, [r12 + off::EXECUTED]);
        self.restore_bpf_args();
        dynasm!(self.a
            ; cmp eax, 1
            ; je =>unwind
            ; ja =>tail
            ; mov rax, [r12 + off::REGS]
            ; ret
            ; =>tail
            ; mov rax, [r12 + off::REGS]
            ; add rsp, 8
            ; jmp QWORD [r12 + off::TAIL_ENTRY]
        );
        // Memory check: r11 = address, r10 = info; keeps every register.
        dynasm!(self.a ; =>check);
        self.save_bpf_args();
        dynasm!(self.a
            ; mov [r12 + off::EXECUTED], r9
            ; mov [r12 + off::CHECK_ADDR], r11
            ; mov rsi, r11
            ; mov rdx, r10
            ; mov rdi, r12
            ; mov rax, QWORD [r12 + off::CHECK_FN]
        );
        self.call_rust();
        dynasm!(self.a
            ; test eax, eax
            ; jnz =>unwind
            ; mov r9, [r12 + off::EXECUTED]
            ; mov r11, [r12 + off::CHECK_ADDR]
            ; mov rax, [r12 + off::REGS]
        );
        self.restore_bpf_args();
        dynasm!(self.a ; ret);
        // Error: r10 = kind << 32 | pc.
        dynasm!(self.a
            ; =>error
            ; mov [r12 + off::ERR_INFO], r10
            ; jmp =>unwind
        );
    }

    /// Fixed-size entry points, one per slot, for `callx` and callbacks:
    /// each adds the instructions its block will run from there.
    fn emit_thunks(&mut self, len: usize) -> Option<usize> {
        let label = self.thunks?;
        // Align the table so a thunk's address is base + 16 * pc.
        while !self.a.offset().0.is_multiple_of(THUNK_SIZE) {
            dynasm!(self.a ; int3);
        }
        let base = self.a.offset().0;
        dynasm!(self.a ; =>label);
        let mut fillers = Vec::new();
        for pc in 0..len {
            let start = self.a.offset().0;
            let is_start = !(pc > 0 && matches!(self.ops[pc - 1].code, 0x18 | OP_UNRESOLVED));
            if is_start {
                let add = if self.mode.budget || !self.mode.count || self.block_len[pc] != 0 {
                    0
                } else {
                    self.rem[pc] + 1
                };
                if add != 0 {
                    dynasm!(self.a ; add r9, add as i32);
                }
                let l = self.labels[pc];
                dynasm!(self.a ; jmp =>l);
            } else {
                let stub = self.a.new_dynamic_label();
                fillers.push((stub, pc));
                dynasm!(self.a ; jmp =>stub);
            }
            while self.a.offset().0 - start < THUNK_SIZE {
                dynasm!(self.a ; int3);
            }
        }
        for (stub, pc) in fillers {
            dynasm!(self.a ; =>stub);
            self.error_jump(err::FELL_OFF, pc);
        }
        Some(base)
    }

    fn emit_cold(&mut self) {
        let cold = std::mem::take(&mut self.cold);
        for c in cold {
            match c {
                Cold::Error { at, kind, pc } => {
                    dynasm!(self.a ; =>at);
                    self.error_jump(kind, pc);
                }
                Cold::Check {
                    at,
                    back,
                    info,
                    stack_first,
                } => {
                    let check = self.check;
                    let slow = self.a.new_dynamic_label();
                    let (size, write) = ((info >> 1) & 0x7f, info & 1 != 0);
                    dynasm!(self.a ; =>at);
                    if stack_first {
                        self.cached_range(size, write, slow);
                    } else {
                        self.stack_range(size, slow);
                    }
                    dynasm!(self.a
                        ; jmp =>back
                        ; =>slow
                        ; mov r10, QWORD info as i64
                        ; call =>check
                        ; jmp =>back
                    );
                }
                Cold::DivSpecial {
                    at,
                    back,
                    dst,
                    wide,
                    modulo,
                    minus_one,
                } => {
                    dynasm!(self.a ; =>at);
                    match (minus_one, modulo, wide) {
                        // x / 0 = 0; INT_MIN % -1 = 0 and x % -1 = 0.
                        (false, false, _) | (true, true, _) => {
                            dynasm!(self.a ; xor Rd(dst), Rd(dst))
                        }
                        // x % 0 = x (zero-extended for the 32-bit form).
                        (false, true, true) => {}
                        (false, true, false) => dynasm!(self.a ; mov Rd(dst), Rd(dst)),
                        // x / -1 = -x (wrapping).
                        (true, false, true) => dynasm!(self.a ; neg Rq(dst)),
                        (true, false, false) => dynasm!(self.a ; neg Rd(dst)),
                    }
                    dynasm!(self.a ; jmp =>back);
                }
                Cold::PacketEnd { at, rem } => {
                    let unwind = self.unwind;
                    dynasm!(self.a ; =>at);
                    if rem != 0 {
                        dynasm!(self.a ; sub r9, rem as i32);
                    }
                    dynasm!(self.a
                        ; mov QWORD [r12 + off::RESULT], 0
                        ; jmp =>unwind
                    );
                }
            }
        }
    }

    fn error_jump(&mut self, kind: u64, pc: usize) {
        let error = self.error;
        let info = (kind << 32 | pc as u64) as i64;
        dynasm!(self.a
            ; mov r10, QWORD info
            ; jmp =>error
        );
    }

    fn cold_error(&mut self, kind: u64, pc: usize) -> DynamicLabel {
        let at = self.a.new_dynamic_label();
        self.cold.push(Cold::Error { at, kind, pc });
        at
    }

    fn budget_check(&mut self, pc: usize) {
        let stub = self.cold_error(err::BUDGET, pc);
        dynasm!(self.a
            ; cmp r9, [r12 + off::BUDGET]
            ; jae =>stub
            ; add r9, 1
        );
    }

    fn jcc(&mut self, cc: Cc, l: DynamicLabel) {
        match cc {
            Cc::E => dynasm!(self.a ; je =>l),
            Cc::Ne => dynasm!(self.a ; jne =>l),
            Cc::A => dynasm!(self.a ; ja =>l),
            Cc::Ae => dynasm!(self.a ; jae =>l),
            Cc::B => dynasm!(self.a ; jb =>l),
            Cc::Be => dynasm!(self.a ; jbe =>l),
            Cc::G => dynasm!(self.a ; jg =>l),
            Cc::Ge => dynasm!(self.a ; jge =>l),
            Cc::L => dynasm!(self.a ; jl =>l),
            Cc::Le => dynasm!(self.a ; jle =>l),
        }
    }

    /// Whether `pc` is entered only by falling through from `pc - 1`.
    fn plain_next(&self, pc: usize) -> bool {
        // Entry thunks may enter any instruction, so no pairs then.
        !self.mode.budget && self.thunks.is_none() && pc < self.ops.len() - 1 && !self.leader[pc]
    }

    /// A loop that sums consecutive elements of memory into a register,
    /// as clang writes `for (i = ..; i != N; i += S) acc += *(uS *)(p + i)`:
    /// `t = b; t += i; t = *(uS *)(t + k); a += t; i += S;
    /// if i == N goto X; goto h` (or `if i != N goto h`), with `t` dead
    /// when the loop ends. Trusted, uncounted code on a CPU with AVX2.
    fn sum_loop(&self, h: usize) -> Option<SumLoop> {
        let m = self.mode;
        if m.checked || m.count || m.budget || m.blind || !self.cpu.avx2 || self.thunks.is_some() {
            return None;
        }
        let o = self.ops.get(h..h + 7)?;
        let (mv, add, load, acc, step, test) = (o[0], o[1], o[2], o[3], o[4], o[5]);
        let size: i32 = match load.code {
            0x71 => 1,
            0x69 => 2,
            0x61 => 4,
            0x79 => 8,
            _ => return None,
        };
        // t = x; t += y, where one of x, y is the index (the register the
        // step advances) and the other the base.
        let (t, i) = (mv.dst, step.dst);
        let b = match (mv.src, add.src) {
            (x, y) if y == i => x,
            (x, y) if x == i => y,
            _ => return None,
        };
        let a = acc.dst;
        let shape = mv.code == 0xbf
            && mv.off == 0
            && add.code == 0x0f
            && add.dst == t
            && load.dst == t
            && load.src == t
            && acc.code == 0x0f
            && acc.src == t
            && step.code == 0x07
            && step.imm == size as i64;
        let regs = [t, b, i, a];
        let distinct =
            regs.iter().all(|&r| r < 10) && (0..4).all(|x| (x + 1..4).all(|y| regs[x] != regs[y]));
        if !shape || !distinct {
            return None;
        }
        let j = h + 5;
        let exit = match test.code {
            // if i == N goto X; goto h
            0x15 if test.dst == i && o[6].code == 0x05 && o[6].off as usize == h => {
                test.off as usize
            }
            // if i != N goto h (falling through to X)
            0x55 if test.dst == i && test.off as usize == h => j + 1,
            _ => return None,
        };
        // Nothing else may enter the body, and `t` must be dead after it.
        if (h + 1..=j).any(|p| self.target[p]) || !self.dead_after(t, j) {
            return None;
        }
        Some(SumLoop {
            b: REG[b as usize],
            i: REG[i as usize],
            a: REG[a as usize],
            disp: load.off,
            size,
            end: test.imm as i32,
            exit,
        })
    }

    /// Runs the first iterations of a summing loop 16 elements at a time
    /// (four 256-bit accumulators of 64-bit lanes), placed before the loop
    /// so that only entries from above take it: while the remaining
    /// distance `N - i` is a multiple of the element size and at least 16
    /// elements, none of those iterations can meet the exit test (wrapping
    /// sums do not depend on order); then either `i == N` (leave by the
    /// loop's exit) or the loop itself runs the rest. The same addresses
    /// are read as by the loop's own iterations.
    fn sum_loop_vectors(&mut self, s: SumLoop) {
        let SumLoop {
            b,
            i,
            a,
            disp,
            size,
            end,
            exit,
        } = s;
        let group = 16 * size;
        let skip = self.a.new_dynamic_label();
        let exit = self.labels[exit];
        dynasm!(self.a
            ; mov r10, end
            ; sub r10, Rq(i)
        );
        if size > 1 {
            dynasm!(self.a
                ; test r10, size - 1
                ; jnz =>skip
            );
        }
        dynasm!(self.a
            ; cmp r10, group
            ; jb =>skip
        );
        self.lea(S1, b, Some(i), disp);
        dynasm!(self.a
            ; vpxor ymm0, ymm0, ymm0
            ; vpxor ymm1, ymm1, ymm1
            ; vpxor ymm2, ymm2, ymm2
            ; vpxor ymm3, ymm3, ymm3
            ; vectors:
        );
        // Four elements into each of ymm4..ymm7, zero-extended to 64-bit
        // lanes (loaded, then widened register to register), added to the
        // accumulators ymm0..ymm3.
        for k in 0..4u8 {
            let (v, at) = (4 + k, i32::from(k) * 4 * size);
            match size {
                1 => dynasm!(self.a
                    ; vmovd Rx(v), DWORD [r11 + at]
                    ; vpmovzxbq Ry(v), Rx(v)
                ),
                2 => dynasm!(self.a
                    ; vmovq Rx(v), QWORD [r11 + at]
                    ; vpmovzxwq Ry(v), Rx(v)
                ),
                4 => dynasm!(self.a
                    ; vmovdqu Rx(v), OWORD [r11 + at]
                    ; vpmovzxdq Ry(v), Rx(v)
                ),
                _ => dynasm!(self.a ; vmovdqu Ry(v), [r11 + at]),
            }
            dynasm!(self.a ; vpaddq Ry(k), Ry(k), Ry(v));
        }
        dynasm!(self.a
            ; add r11, group
            ; sub r10, group
            ; cmp r10, group
            ; jae <vectors
            // i = N - remaining; a += the sum of all lanes.
            ; mov Rq(i), end
            ; sub Rq(i), r10
            ; vpaddq ymm0, ymm0, ymm1
            ; vpaddq ymm2, ymm2, ymm3
            ; vpaddq ymm0, ymm0, ymm2
            ; vextracti128 xmm1, ymm0, 1
            ; vpaddq xmm0, xmm0, xmm1
            ; vpshufd xmm1, xmm0, 0x4e
            ; vpaddq xmm0, xmm0, xmm1
            ; vmovq r11, xmm0
            ; add Rq(a), r11
            ; vzeroupper
            ; test r10, r10
            ; jz =>exit
            ; =>skip
        );
    }

    /// Pads with no-ops to the next 16-byte boundary (heads of small
    /// loops: their bodies then span fewer fetch blocks). Measured on the
    /// benchmark programs: the sieve's loops ran 10% faster, while aligning
    /// every loop head shifted the switch's dense branches and slowed it.
    /// Code is placed at 64-byte boundaries, so offsets keep alignment.
    fn align_loop(&mut self) {
        let mut pad = (16 - self.a.offset().0 % 16) % 16;
        while pad > 0 {
            let n = pad.min(encode::NOPS.len());
            self.a.extend(encode::NOPS[n - 1]);
            pad -= n;
        }
    }

    /// Address operand for an access of `size` bytes at `base + off`: in
    /// checked mode the address is computed into r11 and checked first.
    fn mem(&mut self, base: u8, disp: i32, size: u64, write: bool, pc: usize) -> (u8, i32) {
        if !self.mode.checked {
            return (REG[base as usize], disp);
        }
        self.checked_address(REG[base as usize], None, disp, size, write, pc, base == 10)
    }

    /// Checked code: the address `[b + index + disp]` into r11, checked
    /// for an access of `size` bytes by the instruction at `pc`; returns
    /// the operand `[r11]`.
    #[allow(clippy::too_many_arguments)]
    fn checked_address(
        &mut self,
        b: u8,
        index: Option<u8>,
        disp: i32,
        size: u64,
        write: bool,
        pc: usize,
        stack_first: bool,
    ) -> (u8, i32) {
        let slow = self.a.new_dynamic_label();
        let back = self.a.new_dynamic_label();
        // Accesses through r10 are checked against the stack first, others
        // against the region of the last access of their kind; the other
        // range and then the full region list are tried out of line.
        self.lea(S1, b, index, disp);
        if stack_first {
            self.stack_range(size, slow);
        } else {
            self.cached_range(size, write, slow);
        }
        dynasm!(self.a ; =>back);
        let info = (pc as u64) << 8 | size << 1 | write as u64;
        self.cold.push(Cold::Check {
            at: slow,
            back,
            info,
            stack_first,
        });
        (S1, 0)
    }

    /// Jumps to `miss` unless [r11, r11 + size) is in the current frames.
    fn stack_range(&mut self, size: u64, miss: DynamicLabel) {
        // cmp r11, [r12 + STACK_LO]; mov r10, [r12 + STACK_HI] (short
        // displacements: the context's hot fields come first).
        self.ctx_op(&[0x3b], S1, off::STACK_LO);
        dynasm!(self.a ; jb =>miss);
        self.ctx_op(&[0x8b], 10, off::STACK_HI);
        dynasm!(self.a
            ; sub r10, r11
            ; jb =>miss
            ; cmp r10, size as i32
            ; jb =>miss
        );
    }

    /// `op reg, [r12 + off]` (64-bit) on a context field.
    fn ctx_op(&mut self, opcode: &[u8], reg: u8, off: i32) {
        let w = Form {
            w: true,
            ..Form::default()
        };
        let m = Mem {
            base: 12,
            index: None,
            disp: off,
        };
        self.mem_insn(w, opcode, reg, m);
    }

    /// Jumps to `miss` unless [r11, r11 + size) is in the cached region
    /// for reads (or writes). Region starts are host addresses far above
    /// 0, so `addr - start + size` cannot wrap.
    fn cached_range(&mut self, size: u64, write: bool, miss: DynamicLabel) {
        let (lo, len) = if write {
            (off::WCACHE_LO, off::WCACHE_LEN)
        } else {
            (off::RCACHE_LO, off::RCACHE_LEN)
        };
        // mov r10, r11; sub r10, [r12 + lo]; jb; add r10, size;
        // cmp r10, [r12 + len]; ja
        dynasm!(self.a ; mov r10, r11);
        self.ctx_op(&[0x2b], 10, lo);
        dynasm!(self.a
            ; jb =>miss
            ; add r10, BYTE size as i8
        );
        self.ctx_op(&[0x3b], 10, len);
        dynasm!(self.a ; ja =>miss);
    }

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
            if o.code == 0x67 && o.imm == 32 && n.dst == o.dst && n.imm == 32 {
                if n.code == 0x77 {
                    dynasm!(self.a ; mov Rd(d), Rd(d));
                    return Ok(pc + 2);
                }
                if n.code == 0xc7 {
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
                self.blinded_imm(imm, o.code == 0x7a);
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
                0x18 if self.mode.blind => {
                    let k = self.key() as i64;
                    dynasm!(self.a
                        ; mov Rq(d), QWORD o.imm ^ k
                        ; mov r10, QWORD k
                        ; xor Rq(d), r10
                    );
                    return Ok(pc + 2);
                }
                0x18 => {
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

    /// `rD = rS; rD += rX` (or `+= K`) becomes one `lea`; when the next
    /// instruction loads or stores through `rD`, it addresses
    /// `[rS + rX + off]` directly (trusted code only), and a load into rD
    /// itself makes the `lea` unnecessary.
    fn address_idiom(&mut self, pc: usize) -> Option<usize> {
        let (o, n) = (self.ops[pc], *self.ops.get(pc + 1)?);
        if o.code != 0xbf || o.off != 0 || n.dst != o.dst || !self.plain_next(pc + 1) {
            return None;
        }
        let (dv, sv) = (o.dst as usize % 11, o.src as usize % 11);
        let (d, s) = (REG[dv], REG[sv]);
        // The addend: a register (rD itself reads as rS) or a constant.
        let (index, disp) = match n.code {
            0x0f => {
                let x = n.src as usize % 11;
                (Some(if x == dv { s } else { REG[x] }), 0i64)
            }
            0x07 => (None, n.imm),
            _ => return None,
        };
        // Checked code takes only a load into rD itself (rD is then never
        // needed, even when the load faults: a fault ends the run).
        let checked = self.mode.checked;
        let m = self.ops.get(pc + 2).copied().filter(|m| {
            self.plain_next(pc + 2)
                && dv != sv
                && index != Some(d)
                && ((m.code & 7 == BPF_LDX && m.src == o.dst && (!checked || m.dst == o.dst))
                    || (!checked && matches!(m.code, 0x63 | 0x6b | 0x73 | 0x7b) && m.dst == o.dst))
                && (disp + m.off as i64) == (disp + m.off as i64) as i32 as i64
        });
        let loads_into_d = m.is_some_and(|m| m.code & 7 == BPF_LDX && m.dst == o.dst);
        // rD = rS; rD += rX; rD += K → lea rD, [rS + rX + K].
        if let (Some(i), None) = (index, m)
            && let Some(k) = self.ops.get(pc + 2).copied()
            && k.code == 0x07
            && k.dst == o.dst
            && self.plain_next(pc + 2)
        {
            self.lea(d, s, Some(i), k.imm as i32);
            return Some(pc + 3);
        }
        // The address register itself is only needed if read later (or
        // stored by the access itself).
        let unused = m.is_some_and(|m| {
            !(m.code & 7 == BPF_STX && m.src == o.dst) && self.dead_after(o.dst, pc + 2)
        });
        if !(loads_into_d || unused) {
            self.lea(d, s, index, disp as i32);
        }
        let Some(m) = m else {
            return Some(pc + 2);
        };
        let disp = (disp + m.off as i64) as i32;
        let r = REG[if m.code & 7 == BPF_LDX { m.dst } else { m.src } as usize % 11];
        if checked {
            let size = ldst_size(m.code);
            let (b, d0) = self.checked_address(s, index, disp, size, false, pc + 2, sv == 10);
            self.load_store(m.code, r, b, None, d0);
        } else {
            self.load_store(m.code, r, s, index, disp);
        }
        Some(pc + 3)
    }

    /// Two adjacent byte loads joined into a 16-bit value, as clang writes
    /// a big-endian field read through a byte pointer (`p[0] << 8 | p[1]`)
    /// or a little-endian one:
    /// `x = *(u8 *)(b + j); y = *(u8 *)(b + k); s <<= 8; s |= o` with
    /// {s, o} = {x, y} and the offsets adjacent. Becomes one 16-bit load
    /// (and `rol` for big-endian); the other byte is loaded too only if its
    /// register is read later. Trusted code only (in checked code each load
    /// must fault at its own pc).
    fn byte_pair_idiom(&mut self, pc: usize) -> Option<usize> {
        if self.mode.checked || !(1..4).all(|i| self.plain_next(pc + i)) {
            return None;
        }
        let [l1, l2, sh, or] = *self.ops.get(pc..pc + 4)? else {
            return None;
        };
        let pair = l1.code == 0x71
            && l2.code == 0x71
            && l1.src == l2.src
            && l1.dst != l1.src
            && l1.dst != l2.dst
            && matches!(sh.code, 0x64 | 0x67)
            && sh.imm == 8
            && matches!(or.code, 0x4c | 0x4f)
            && or.dst == sh.dst
            && (sh.dst == l1.dst || sh.dst == l2.dst);
        if !pair {
            return None;
        }
        let (hi, lo) = if sh.dst == l1.dst { (l1, l2) } else { (l2, l1) };
        if or.src != lo.dst {
            return None;
        }
        let (hi_off, lo_off) = (hi.off as i64, lo.off as i64);
        let big_endian = lo_off == hi_off + 1;
        if !big_endian && hi_off != lo_off + 1 {
            return None;
        }
        let b = REG[l1.src as usize % 11];
        let (s, o) = (REG[hi.dst as usize % 11], REG[lo.dst as usize % 11]);
        let word = |e: &mut Self| {
            e.load_store(0x69, s, b, None, hi_off.min(lo_off) as i32);
            if big_endian {
                dynasm!(e.a ; rol Rw(s), 8);
            }
        };
        // The load that overwrites the base goes last.
        if self.dead_after(lo.dst, pc + 3) {
            word(self);
        } else if o == b {
            word(self);
            self.load_store(0x71, o, b, None, lo.off);
        } else {
            self.load_store(0x71, o, b, None, lo.off);
            word(self);
        }
        Some(pc + 4)
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

    /// Emits an instruction with a memory operand in its shortest
    /// encoding (see [`super::encode`]).
    fn mem_insn(&mut self, form: Form, opcode: &[u8], reg: u8, m: Mem) {
        self.a
            .extend(encode::mem_insn(form, opcode, reg, m).as_slice());
    }

    /// A register load (`LDX`, any width, zero- or sign-extending) or store
    /// (`STX`) of `r` at `[base + index + disp]`.
    /// Returns false for any other opcode.
    fn load_store(&mut self, code: u8, r: u8, base: u8, index: Option<u8>, disp: i32) -> bool {
        let m = Mem { base, index, disp };
        let (d32, d64) = (
            Form::default(),
            Form {
                w: true,
                ..Form::default()
            },
        );
        let (form, opcode): (Form, &[u8]) = match code {
            0x61 => (d32, &[0x8b]),
            0x69 => (d32, &[0x0f, 0xb7]),
            0x71 => (d32, &[0x0f, 0xb6]),
            0x79 => (d64, &[0x8b]),
            0x81 => (d64, &[0x63]),
            0x89 => (d64, &[0x0f, 0xbf]),
            0x91 => (d64, &[0x0f, 0xbe]),
            0x63 => (d32, &[0x89]),
            0x6b => (Form { p66: true, ..d32 }, &[0x89]),
            0x73 => (
                Form {
                    byte_reg: true,
                    ..d32
                },
                &[0x88],
            ),
            0x7b => (d64, &[0x89]),
            _ => return false,
        };
        self.mem_insn(form, opcode, r, m);
        true
    }

    /// `lea d, [base + index + disp]` (64-bit).
    fn lea(&mut self, d: u8, base: u8, index: Option<u8>, disp: i32) {
        let w = Form {
            w: true,
            ..Form::default()
        };
        self.mem_insn(w, &[0x8d], d, Mem { base, index, disp });
    }

    /// `d *= imm`: shifts, `lea` and shift-and-add/subtract for the
    /// constants they cover (1–2 cycles of latency instead of `imul`'s 3,
    /// which matters in a loop-carried chain such as a hash or `acc * 31`).
    fn mul_imm(&mut self, d: u8, imm: i32, w: bool) {
        // `lea d, [d + d * scale]`: d * 3, 5 or 9.
        let lea = |e: &mut Self, m: i32| match (m, w) {
            (3, true) => dynasm!(e.a ; lea Rq(d), [Rq(d) + Rq(d) * 2]),
            (5, true) => dynasm!(e.a ; lea Rq(d), [Rq(d) + Rq(d) * 4]),
            (9, true) => dynasm!(e.a ; lea Rq(d), [Rq(d) + Rq(d) * 8]),
            (3, false) => dynasm!(e.a ; lea Rd(d), [Rq(d) + Rq(d) * 2]),
            (5, false) => dynasm!(e.a ; lea Rd(d), [Rq(d) + Rq(d) * 4]),
            _ => dynasm!(e.a ; lea Rd(d), [Rq(d) + Rq(d) * 8]),
        };
        let shl = |e: &mut Self, k: u32| {
            if w {
                dynasm!(e.a ; shl Rq(d), k as i8);
            } else {
                dynasm!(e.a ; shl Rd(d), k as i8);
            }
        };
        let c = imm as i64;
        if c > 0 && (c as u64).is_power_of_two() {
            match c.trailing_zeros() {
                0 if !w => dynasm!(self.a ; mov Rd(d), Rd(d)),
                0 => {}
                k => shl(self, k),
            }
            return;
        }
        if c > 0 {
            let k = c.trailing_zeros();
            let odd = (c >> k) as i32;
            if matches!(odd, 3 | 5 | 9) {
                lea(self, odd);
                if k > 0 {
                    shl(self, k);
                }
                return;
            }
            // 2^k ± 1: shift a copy and add or subtract the original.
            let (up, down) = ((c - 1) as u64, (c + 1) as u64);
            if up.is_power_of_two() || down.is_power_of_two() {
                let add = up.is_power_of_two();
                let k = if add { up } else { down }.trailing_zeros();
                dynasm!(self.a ; mov r11, Rq(d));
                shl(self, k);
                match (add, w) {
                    (true, true) => dynasm!(self.a ; add Rq(d), r11),
                    (true, false) => dynasm!(self.a ; add Rd(d), r11d),
                    (false, true) => dynasm!(self.a ; sub Rq(d), r11),
                    (false, false) => dynasm!(self.a ; sub Rd(d), r11d),
                }
                return;
            }
        }
        match (c, w) {
            (0, _) => dynasm!(self.a ; xor Rd(d), Rd(d)),
            (-1, true) => dynasm!(self.a ; neg Rq(d)),
            (-1, false) => dynasm!(self.a ; neg Rd(d)),
            (_, true) => dynasm!(self.a ; imul Rq(d), Rq(d), imm),
            (_, false) => dynasm!(self.a ; imul Rd(d), Rd(d), imm),
        }
    }

    fn alu(&mut self, o: Op, d: u8, s: u8, imm: i32, w: bool, pc: usize) -> Result<(), JitError> {
        if self.mode.blind
            && o.code & BPF_X == 0
            && !matches!(
                o.code & 0xf0,
                BPF_LSH | BPF_RSH | BPF_ARSH | BPF_NEG | BPF_END
            )
        {
            // The same operation with the constant in a register.
            self.blinded_imm(imm, w);
            let o = Op {
                code: o.code | BPF_X,
                ..o
            };
            return self.alu(o, d, 10, 0, w, pc);
        }
        let reg = o.code & BPF_X != 0;
        // Immediates that fit a byte use the short (imm8) encodings.
        let short = imm as i8 as i32 == imm;
        macro_rules! bin {
            ($mn:ident) => {
                match (w, reg, short) {
                    (true, true, _) => dynasm!(self.a ; $mn Rq(d), Rq(s)),
                    (false, true, _) => dynasm!(self.a ; $mn Rd(d), Rd(s)),
                    (true, false, true) => dynasm!(self.a ; $mn Rq(d), BYTE imm as i8),
                    (false, false, true) => dynasm!(self.a ; $mn Rd(d), BYTE imm as i8),
                    (true, false, false) => dynasm!(self.a ; $mn Rq(d), imm),
                    (false, false, false) => dynasm!(self.a ; $mn Rd(d), imm),
                }
            };
        }
        macro_rules! shift {
            ($mn:ident, $mnx:ident) => {{
                let mask = if w { 63 } else { 31 };
                if !reg {
                    let n = (imm & mask) as i8;
                    if n != 0 {
                        if w {
                            dynasm!(self.a ; $mn Rq(d), n);
                        } else {
                            dynasm!(self.a ; $mn Rd(d), n);
                        }
                    } else if !w {
                        dynasm!(self.a ; mov Rd(d), Rd(d));
                    }
                } else if self.cpu.bmi2 {
                    if w {
                        dynasm!(self.a ; $mnx Rq(d), Rq(d), Rq(s));
                    } else {
                        dynasm!(self.a ; $mnx Rd(d), Rd(d), Rd(s));
                    }
                } else {
                    // The count must be in cl; rcx is BPF r4.
                    dynasm!(self.a ; mov r11, rcx ; mov rcx, Rq(s));
                    let t = if d == RCX { S1 } else { d };
                    if w {
                        dynasm!(self.a ; $mn Rq(t), cl);
                    } else {
                        dynasm!(self.a ; $mn Rd(t), cl);
                    }
                    dynasm!(self.a ; mov rcx, r11);
                }
            }};
        }
        match o.code & 0xf0 {
            BPF_ADD => {
                if !reg && imm == 1 {
                    if w {
                        dynasm!(self.a ; inc Rq(d));
                    } else {
                        dynasm!(self.a ; inc Rd(d));
                    }
                } else {
                    bin!(add)
                }
            }
            BPF_SUB => bin!(sub),
            BPF_MUL => match (w, reg) {
                (true, true) => dynasm!(self.a ; imul Rq(d), Rq(s)),
                (false, true) => dynasm!(self.a ; imul Rd(d), Rd(s)),
                (_, false) => self.mul_imm(d, imm, w),
            },
            BPF_DIV | BPF_MOD => self.div(o, d, s, imm, w, reg, pc),
            BPF_OR => bin!(or),
            // Masks of a byte, a half or a word are zero-extensions.
            BPF_AND if !reg && imm == 0xff => dynasm!(self.a ; movzx Rd(d), Rb(d)),
            BPF_AND if !reg && imm == 0xffff => dynasm!(self.a ; movzx Rd(d), Rw(d)),
            BPF_AND => bin!(and),
            BPF_XOR => {
                if reg && d == s {
                    dynasm!(self.a ; xor Rd(d), Rd(d));
                } else {
                    bin!(xor)
                }
            }
            BPF_LSH => shift!(shl, shlx),
            BPF_RSH => shift!(shr, shrx),
            BPF_ARSH => shift!(sar, sarx),
            BPF_NEG => {
                if w {
                    dynasm!(self.a ; neg Rq(d));
                } else {
                    dynasm!(self.a ; neg Rd(d));
                }
            }
            BPF_MOV => match (w, reg, o.off) {
                (true, true, 0) => {
                    if d != s {
                        dynasm!(self.a ; mov Rq(d), Rq(s));
                    }
                }
                (true, true, 8) => dynasm!(self.a ; movsx Rq(d), Rb(s)),
                (true, true, 16) => dynasm!(self.a ; movsx Rq(d), Rw(s)),
                (true, true, _) => dynasm!(self.a ; movsxd Rq(d), Rd(s)),
                (false, true, 0) => dynasm!(self.a ; mov Rd(d), Rd(s)),
                (false, true, 8) => dynasm!(self.a ; movsx Rd(d), Rb(s)),
                (false, true, _) => dynasm!(self.a ; movsx Rd(d), Rw(s)),
                (_, false, _) => {
                    if imm == 0 {
                        dynasm!(self.a ; xor Rd(d), Rd(d));
                    } else if w && imm < 0 {
                        dynasm!(self.a ; mov Rq(d), imm);
                    } else {
                        dynasm!(self.a ; mov Rd(d), imm);
                    }
                }
            },
            BPF_END => {
                // ALU (0xd4/0xdc): to-little (no swap) or to-big; ALU64
                // (0xd7): unconditional swap.
                let swap = o.code != 0xd4;
                match (imm, swap) {
                    (16, false) => dynasm!(self.a ; movzx Rd(d), Rw(d)),
                    (32, false) => dynasm!(self.a ; mov Rd(d), Rd(d)),
                    (_, false) => {}
                    (16, true) => dynasm!(self.a ; rol Rw(d), 8 ; movzx Rd(d), Rw(d)),
                    (32, true) => dynasm!(self.a ; bswap Rd(d)),
                    (_, true) => dynasm!(self.a ; bswap Rq(d)),
                }
            }
            _ => return Err(bad(pc, o)),
        }
        Ok(())
    }

    /// Division and modulo with kernel semantics (x/0 = 0, x%0 = x,
    /// INT_MIN/-1 = INT_MIN); constant divisors use shifts, masks or a
    /// multiplication by the reciprocal.
    #[allow(clippy::too_many_arguments)]
    fn div(&mut self, o: Op, d: u8, s: u8, imm: i32, w: bool, reg: bool, _pc: usize) {
        let modulo = o.code & 0xf0 == BPF_MOD;
        let signed = o.off == 1;
        if !reg {
            // Constant divisor.
            let c = if w {
                imm as i64 as u64
            } else {
                imm as u32 as u64
            };
            if c == 0 {
                match (modulo, w) {
                    (false, _) => dynasm!(self.a ; xor Rd(d), Rd(d)),
                    (true, true) => {}
                    (true, false) => dynasm!(self.a ; mov Rd(d), Rd(d)),
                }
                return;
            }
            if !signed && c.is_power_of_two() {
                let k = c.trailing_zeros() as i8;
                match (modulo, w) {
                    (false, true) if k > 0 => dynasm!(self.a ; shr Rq(d), k),
                    (false, false) if k > 0 => dynasm!(self.a ; shr Rd(d), k),
                    (false, true) => {}
                    (false, false) => dynasm!(self.a ; mov Rd(d), Rd(d)),
                    (true, true) => {
                        if c <= i32::MAX as u64 {
                            dynasm!(self.a ; and Rq(d), (c - 1) as i32);
                        } else {
                            dynasm!(self.a ; mov r11, QWORD (c - 1) as i64 ; and Rq(d), r11);
                        }
                    }
                    (true, false) => dynasm!(self.a ; and Rd(d), (c - 1) as i32),
                }
                return;
            }
            if !signed && c > 1 << 63 {
                // The quotient is 0 or 1.
                dynasm!(self.a
                    ; mov r11, QWORD c as i64
                    ; cmp Rq(d), r11
                );
                if modulo {
                    dynasm!(self.a
                        ; mov r10, Rq(d)
                        ; sub r10, r11
                        ; cmovae Rq(d), r10
                    );
                } else {
                    dynasm!(self.a
                        ; setae r10b
                        ; movzx Rd(d), r10b
                    );
                }
                return;
            }
            if !signed && !w {
                // n * m fits 64 bits: one multiply, no rdx.
                dynasm!(self.a ; mov r11d, Rd(d));
                if let Some((m, shift)) = magic_u32(c as u32) {
                    dynasm!(self.a
                        ; mov r10d, m as i32
                        ; imul r10, r11
                        ; shr r10, (32 + shift) as i8
                    );
                } else {
                    // A 33-bit multiplier 2^32 + m: n + (n * m >> 32).
                    let (m, shift) = magic_u32_wide(c as u32);
                    dynasm!(self.a
                        ; mov r10d, m as i32
                        ; imul r10, r11
                        ; shr r10, 32
                        ; add r10, r11
                        ; shr r10, shift as i8
                    );
                }
                if modulo {
                    dynasm!(self.a
                        ; imul r10d, r10d, c as i32
                        ; sub r11d, r10d
                        ; mov Rd(d), r11d
                    );
                } else {
                    dynasm!(self.a ; mov Rd(d), r10d);
                }
                return;
            }
            if !signed && self.cpu.bmi2 {
                self.div_magic(d, c, w, modulo);
                return;
            }
        }
        // General case: divisor in r11.
        if reg {
            if w {
                dynasm!(self.a ; mov r11, Rq(s));
            } else {
                dynasm!(self.a ; mov r11d, Rd(s));
            }
        } else if w {
            dynasm!(self.a ; mov r11, imm);
        } else {
            dynasm!(self.a ; mov r11d, imm);
        }
        let back = self.a.new_dynamic_label();
        let known_nonzero = !reg && imm != 0;
        if !known_nonzero {
            let at = self.a.new_dynamic_label();
            if w {
                dynasm!(self.a ; test r11, r11 ; jz =>at);
            } else {
                dynasm!(self.a ; test r11d, r11d ; jz =>at);
            }
            self.cold.push(Cold::DivSpecial {
                at,
                back,
                dst: d,
                wide: w,
                modulo,
                minus_one: false,
            });
        }
        if signed && (reg || imm == -1) {
            let at = self.a.new_dynamic_label();
            if w {
                dynasm!(self.a ; cmp r11, -1 ; je =>at);
            } else {
                dynasm!(self.a ; cmp r11d, -1 ; je =>at);
            }
            self.cold.push(Cold::DivSpecial {
                at,
                back,
                dst: d,
                wide: w,
                modulo,
                minus_one: true,
            });
        }
        // rdx (BPF r3) is kept in r9 when r9 counts nothing, else in memory.
        let free_r9 = !self.mode.count && !self.mode.budget;
        if d != RDX {
            if free_r9 {
                dynasm!(self.a ; mov r9, rdx);
            } else {
                dynasm!(self.a ; mov [r12 + off::SAVE_RDX], rdx);
            }
        }
        if d != RAX {
            dynasm!(self.a ; mov r10, rax ; mov rax, Rq(d));
        }
        match (w, signed) {
            (true, false) => dynasm!(self.a ; xor edx, edx ; div r11),
            (true, true) => dynasm!(self.a ; cqo ; idiv r11),
            (false, false) => dynasm!(self.a ; xor edx, edx ; div r11d),
            (false, true) => dynasm!(self.a ; cdq ; idiv r11d),
        }
        let res = if modulo { RDX } else { RAX };
        if w && d != res {
            dynasm!(self.a ; mov Rq(d), Rq(res));
        } else if !w {
            dynasm!(self.a ; mov Rd(d), Rd(res));
        }
        if d != RAX {
            dynasm!(self.a ; mov rax, r10);
        }
        if d != RDX {
            if free_r9 {
                dynasm!(self.a ; mov rdx, r9);
            } else {
                dynasm!(self.a ; mov rdx, [r12 + off::SAVE_RDX]);
            }
        }
        dynasm!(self.a ; =>back);
    }

    /// Unsigned division by a constant `c` (not 0, not a power of two) by
    /// multiplying with its reciprocal (Granlund–Montgomery).
    fn div_magic(&mut self, d: u8, c: u64, w: bool, modulo: bool) {
        let (m, shift, add) = magic_u64(c);
        // n in r11 (zero-extended for the 32-bit form).
        if w {
            dynasm!(self.a ; mov r11, Rq(d));
        } else {
            dynasm!(self.a ; mov r11d, Rd(d));
        }
        if d != RDX {
            dynasm!(self.a ; mov [r12 + off::SAVE_RDX], rdx);
        }
        dynasm!(self.a
            ; mov rdx, QWORD m as i64
            ; mulx r10, r10, r11
        );
        // q in r10.
        if add {
            dynasm!(self.a
                ; mov rdx, r11
                ; sub rdx, r10
                ; shr rdx, 1
                ; add r10, rdx
            );
            if shift > 1 {
                dynasm!(self.a ; shr r10, (shift - 1) as i8);
            }
        } else if shift > 0 {
            dynasm!(self.a ; shr r10, shift as i8);
        }
        if modulo {
            if c <= i32::MAX as u64 {
                dynasm!(self.a ; imul r10, r10, c as i32);
            } else {
                dynasm!(self.a ; mov rdx, QWORD c as i64 ; imul r10, rdx);
            }
            dynasm!(self.a ; sub r11, r10 ; mov r10, r11);
        }
        if d != RDX {
            dynasm!(self.a ; mov rdx, [r12 + off::SAVE_RDX]);
        }
        if w {
            dynasm!(self.a ; mov Rq(d), r10);
        } else {
            dynasm!(self.a ; mov Rd(d), r10d);
        }
    }

    fn jmp(
        &mut self,
        o: Op,
        d: u8,
        s: u8,
        imm: i32,
        w: bool,
        pc: usize,
    ) -> Result<usize, JitError> {
        let reg = o.code & BPF_X != 0;
        match o.code {
            0x05 | 0x06 => {
                let target = o.off as usize;
                if target != pc + 1 && !self.duplicate_block(target, pc + 1)? {
                    let t = self.labels[target];
                    dynasm!(self.a ; jmp =>t);
                }
                return Ok(pc + 1);
            }
            0x85 => {
                self.call(o, pc);
                return Ok(pc + 1);
            }
            0x8d => {
                self.callx(d, pc);
                return Ok(pc + 1);
            }
            0x95 => {
                dynasm!(self.a ; ret);
                return Ok(pc + 1);
            }
            _ => {}
        }
        let cc = match o.code & 0xf0 {
            BPF_JEQ => Cc::E,
            BPF_JNE => Cc::Ne,
            BPF_JGT => Cc::A,
            BPF_JGE => Cc::Ae,
            BPF_JLT => Cc::B,
            BPF_JLE => Cc::Be,
            BPF_JSGT => Cc::G,
            BPF_JSGE => Cc::Ge,
            BPF_JSLT => Cc::L,
            BPF_JSLE => Cc::Le,
            BPF_JSET => Cc::Ne,
            _ => return Err(bad(pc, o)),
        };
        let set = o.code & 0xf0 == BPF_JSET;
        let (reg, s) = if self.mode.blind && !reg {
            self.blinded_imm(imm, w);
            (true, 10)
        } else {
            (reg, s)
        };
        match (set, w, reg) {
            (false, true, true) => dynasm!(self.a ; cmp Rq(d), Rq(s)),
            (false, false, true) => dynasm!(self.a ; cmp Rd(d), Rd(s)),
            (false, true, false) if imm == 0 => dynasm!(self.a ; test Rq(d), Rq(d)),
            (false, false, false) if imm == 0 => dynasm!(self.a ; test Rd(d), Rd(d)),
            (false, true, false) => dynasm!(self.a ; cmp Rq(d), imm),
            (false, false, false) => dynasm!(self.a ; cmp Rd(d), imm),
            (true, true, true) => dynasm!(self.a ; test Rq(d), Rq(s)),
            (true, false, true) => dynasm!(self.a ; test Rd(d), Rd(s)),
            (true, true, false) => dynasm!(self.a ; test Rq(d), imm),
            (true, false, false) => dynasm!(self.a ; test Rd(d), imm),
        }
        let t = self.labels[o.off as usize];
        if let Some((end, next)) = self.invert_at
            && end == pc
        {
            // The end of a duplicated block: stay in the loop with one
            // branch to the fall-through successor, leave with a jump.
            self.invert_at = None;
            // A plain `goto` after the branch was folded into the branch
            // where the block was first emitted: go to its target.
            let n = self.ops[pc + 1];
            let f_pc = if n.code == 0x05 && pc + 1 < self.ops.len() - 1 && !self.target[pc + 1] {
                n.off as usize
            } else {
                pc + 1
            };
            if f_pc == next {
                // The successor comes right after the copy.
                self.jcc(cc, t);
            } else {
                let f = self.labels[f_pc];
                self.jcc(cc.negate(), f);
                dynasm!(self.a ; jmp =>t);
            }
            return Ok(usize::MAX);
        }
        // `if c goto T; goto L` (nothing else entering the goto): one
        // branch `if !c goto L`, then T — the loop back-edge of clang's
        // rotated loops becomes a single taken branch. Only without
        // counting: the goto is a block of its own.
        let n = self.ops[pc + 1];
        if !self.mode.count
            && self.thunks.is_none()
            && n.code == 0x05
            && pc + 1 < self.ops.len() - 1
            && !self.target[pc + 1]
        {
            let l = self.labels[n.off as usize];
            self.jcc(cc.negate(), l);
            if o.off as usize != pc + 2 {
                dynasm!(self.a ; jmp =>t);
            }
            return Ok(pc + 2);
        }
        self.jcc(cc, t);
        Ok(pc + 1)
    }

    /// Tail duplication: a `goto` to a short straight block that ends in a
    /// conditional branch (a loop's latch, typically) gets a copy of that
    /// block instead of the jump, then a jump to where the block falls
    /// through. Saves a taken jump per iteration. Only in uncounted code
    /// (a copy has no block count) without entry thunks, and never inside
    /// a copy.
    fn duplicate_block(&mut self, t: usize, next: usize) -> Result<bool, JitError> {
        const MAX: usize = 6;
        if self.mode.count || self.thunks.is_some() || self.in_copy {
            return Ok(false);
        }
        let len = self.ops.len() - 1;
        let mut end = None;
        let mut i = t;
        while i < len && i < t + MAX {
            let o = self.ops[i];
            if i > t && self.target[i] {
                return Ok(false);
            }
            let class = o.code & 7;
            if matches!(class, BPF_JMP | BPF_JMP32) {
                if is_jump(o.code) && o.code & 0xf0 != BPF_JA {
                    end = Some(i);
                }
                break;
            }
            if !matches!(class, BPF_ALU | BPF_ALU64) {
                return Ok(false);
            }
            i += 1;
        }
        let Some(end) = end else {
            return Ok(false);
        };
        self.in_copy = true;
        self.invert_at = Some((end, next));
        let mut pc = t;
        let mut result = Ok(());
        while pc <= end {
            match self.insn_body(pc) {
                Ok(next) => pc = next,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.in_copy = false;
        self.invert_at = None;
        result?;
        if pc != usize::MAX {
            // Continue where the original block falls through.
            let l = self.labels[pc.min(len)];
            dynasm!(self.a ; jmp =>l);
        }
        Ok(true)
    }

    fn call(&mut self, o: Op, pc: usize) {
        match o.src {
            0 => {
                let info = pc as u64 | (self.rem[pc] as u64) << 32;
                let helper = self.helper;
                dynasm!(self.a
                    ; mov r10, QWORD info as i64
                    ; mov r11d, o.imm as i32
                    ; call =>helper
                );
            }
            BPF_PSEUDO_CALL => {
                let t = self.labels[o.off as usize];
                self.local_call(pc, |e| dynasm!(e.a ; call =>t));
            }
            _ => self.error_jump(err::KFUNC, pc),
        }
    }

    /// A bpf-to-bpf call: depth check, save r6..r9 and r10, new frame.
    fn local_call(&mut self, pc: usize, call: impl FnOnce(&mut Self)) {
        let depth = self.cold_error(err::DEPTH, pc);
        dynasm!(self.a
            ; sub QWORD [r12 + off::DEPTH_LEFT], 1
            ; jb =>depth
            ; push rbx
            ; push r13
            ; push r14
            ; push r15
            ; push rbp
            ; sub rbp, 512
            ; sub QWORD [r12 + off::STACK_LO], 512
            ; mov r10, [r12 + off::STACK_LO]
            ; cmp r10, [r12 + off::MIN_LO]
            ; jae >deeper
            ; mov [r12 + off::MIN_LO], r10
            ; deeper:
        );
        call(self);
        dynasm!(self.a
            ; add QWORD [r12 + off::STACK_LO], 512
            ; pop rbp
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop rbx
            ; add QWORD [r12 + off::DEPTH_LEFT], 1
        );
    }

    /// `callx rD`: a function address calls the subprogram through its
    /// entry thunk; any other value is a helper id.
    fn callx(&mut self, d: u8, pc: usize) {
        let len = (self.ops.len() - 1) as i32;
        let as_helper = self.a.new_dynamic_label();
        let done = self.a.new_dynamic_label();
        let thunks = self.thunks.expect("thunks exist when callx is present");
        dynasm!(self.a
            ; mov r11, Rq(d)
            ; mov r10, r11
            ; shr r10, 32
            ; cmp r10d, (FUNC_ADDR_TAG >> 32) as i32
            ; jne =>as_helper
            ; mov r11d, r11d
            ; cmp r11, len
            ; jae =>as_helper
            ; shl r11, 4
            ; lea r10, [=>thunks]
            ; add r11, r10
        );
        self.local_call(pc, |e| dynasm!(e.a ; call r11));
        let info = (pc as u64 | (self.rem[pc] as u64) << 32 | CALLX_FLAG) as i64;
        let helper = self.helper;
        dynasm!(self.a
            ; jmp =>done
            ; =>as_helper
            ; mov r11, Rq(d)
            ; mov r10, QWORD info
            ; call =>helper
            ; =>done
        );
    }

    fn atomic(&mut self, o: Op, _d: u8, s: u8, pc: usize) -> Result<(), JitError> {
        let w = o.code == 0xdb;
        let size = if w { 8 } else { 4 };
        let (b, disp) = self.mem(o.dst, o.off, size, true, pc);
        let code = o.imm as i32;
        let fetch = code & BPF_FETCH != 0;
        match (code & !BPF_FETCH, fetch) {
            (0x00, false) => match w {
                true => dynasm!(self.a ; lock add [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock add [Rq(b) + disp], Rd(s)),
            },
            (0x00, true) => match w {
                true => dynasm!(self.a ; lock xadd [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock xadd [Rq(b) + disp], Rd(s)),
            },
            (0x40, false) => match w {
                true => dynasm!(self.a ; lock or [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock or [Rq(b) + disp], Rd(s)),
            },
            (0x50, false) => match w {
                true => dynasm!(self.a ; lock and [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock and [Rq(b) + disp], Rd(s)),
            },
            (0xa0, false) => match w {
                true => dynasm!(self.a ; lock xor [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock xor [Rq(b) + disp], Rd(s)),
            },
            (0x40 | 0x50 | 0xa0, true) => {
                // Fetching or/and/xor: a compare-exchange loop on rax.
                let again = self.a.new_dynamic_label();
                dynasm!(self.a
                    ; lea r11, [Rq(b) + disp]
                    ; mov [r12 + off::SAVE_SRC], Rq(s)
                    ; mov [r12 + off::SAVE_RAX], rax
                );
                if w {
                    dynasm!(self.a ; mov rax, [r11] ; =>again ; mov r10, rax);
                    match code & !BPF_FETCH {
                        0x40 => dynasm!(self.a ; or r10, [r12 + off::SAVE_SRC]),
                        0x50 => dynasm!(self.a ; and r10, [r12 + off::SAVE_SRC]),
                        _ => dynasm!(self.a ; xor r10, [r12 + off::SAVE_SRC]),
                    }
                    dynasm!(self.a ; lock cmpxchg [r11], r10 ; jne =>again ; mov Rq(s), rax);
                } else {
                    dynasm!(self.a ; mov eax, [r11] ; =>again ; mov r10d, eax);
                    match code & !BPF_FETCH {
                        0x40 => dynasm!(self.a ; or r10d, [r12 + off::SAVE_SRC]),
                        0x50 => dynasm!(self.a ; and r10d, [r12 + off::SAVE_SRC]),
                        _ => dynasm!(self.a ; xor r10d, [r12 + off::SAVE_SRC]),
                    }
                    dynasm!(self.a ; lock cmpxchg [r11], r10d ; jne =>again ; mov Rd(s), eax);
                }
                if s != RAX {
                    dynasm!(self.a ; mov rax, [r12 + off::SAVE_RAX]);
                }
            }
            (0xe0, true) => match w {
                true => dynasm!(self.a ; xchg [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; xchg [Rq(b) + disp], Rd(s)),
            },
            (0xf0, true) => match w {
                true => dynasm!(self.a ; lock cmpxchg [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock cmpxchg [Rq(b) + disp], Rd(s) ; mov eax, eax),
            },
            _ => return Err(bad(pc, o)),
        }
        Ok(())
    }

    /// `LD_ABS`/`LD_IND`: big-endian load from the packet; out of bounds
    /// ends the program with r0 = 0.
    fn legacy_load(&mut self, o: Op, s: u8, pc: usize) {
        let size: i32 = match o.code & 0x18 {
            BPF_W => 4,
            BPF_H => 2,
            _ => 1,
        };
        let nopkt = self.cold_error(err::NO_PACKET, pc);
        let end = self.a.new_dynamic_label();
        self.cold.push(Cold::PacketEnd {
            at: end,
            rem: self.rem[pc],
        });
        dynasm!(self.a
            ; cmp QWORD [r12 + off::HAS_PKT], 0
            ; je =>nopkt
        );
        if o.code & 0xe0 == BPF_IND {
            dynasm!(self.a
                ; mov r11d, Rd(s)
                ; add r11d, o.imm as i32
                ; movsxd r11, r11d
            );
        } else {
            dynasm!(self.a ; mov r11, o.imm as i32);
        }
        dynasm!(self.a
            ; test r11, r11
            ; js =>end
            ; lea r10, [r11 + size]
            ; cmp r10, [r12 + off::PKT_LEN]
            ; ja =>end
            ; add r11, [r12 + off::PKT_DATA]
        );
        match size {
            4 => dynasm!(self.a ; mov eax, [r11] ; bswap eax),
            2 => dynasm!(self.a ; movzx eax, WORD [r11] ; rol ax, 8),
            _ => dynasm!(self.a ; movzx eax, BYTE [r11]),
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
    JitError(format!(
        "instruction {pc}: opcode {:#04x} cannot be compiled",
        o.code
    ))
}

/// Magic number for unsigned 64-bit division by `d` (not a power of two,
/// 2 < d < 2^63): `(m, shift, add)` such that
/// q = (hi(n*m) [+ fix-up]) >> shift.
pub(crate) fn magic_u64(d: u64) -> (u64, u32, bool) {
    let l = 64 - (d - 1).leading_zeros(); // ceil(log2 d)
    // Try m = ceil(2^(64+s) / d) for s < l with the error bound.
    for s in 0..l {
        let p = 1u128 << (64 + s);
        let m = p.div_ceil(d as u128);
        if m < (1u128 << 64) {
            let e = m * d as u128 - p;
            if e <= 1u128 << s {
                return (m as u64, s, false);
            }
        }
    }
    // Fall back to the 65-bit multiplier with the add fix-up.
    let p = 1u128 << (64 + l);
    let m = (p / d as u128) + 1 - (1u128 << 64);
    (m as u64, l, true)
}

/// Magic number for unsigned 32-bit division by `d` (not a power of two)
/// with a multiplier below 2^32: `(m, shift)` such that for every 32-bit n,
/// n / d = (n * m) >> (32 + shift), computed in 64 bits. None when no such
/// multiplier exists (then the 64-bit method is used).
pub(crate) fn magic_u32(d: u32) -> Option<(u32, u32)> {
    if d < 3 || d.is_power_of_two() {
        return None;
    }
    let l = 32 - (d - 1).leading_zeros();
    (0..l).find_map(|s| {
        let p = 1u64 << (32 + s);
        let m = p.div_ceil(d as u64);
        (m < 1 << 32 && m * d as u64 - p <= 1 << s).then_some((m as u32, s))
    })
}

/// Unsigned 32-bit division by a constant `d` (at least 3, not a power of
/// two) with a 33-bit multiplier 2^32 + m (Granlund–Montgomery with N = 32
/// and l = ceil(log2 d)): for every 32-bit n,
/// n / d = (n + ((n * m) >> 32)) >> l, all in 64-bit arithmetic. Returns
/// `(m, l)`; covers the divisors `magic_u32` has no 32-bit multiplier for.
pub(crate) fn magic_u32_wide(d: u32) -> (u32, u32) {
    let l = 32 - (d - 1).leading_zeros();
    let m = (1u128 << (32 + l)) / d as u128 + 1;
    ((m - (1 << 32)) as u32, l)
}

#[cfg(test)]
mod tests {
    use super::{magic_u32, magic_u32_wide, magic_u64};

    #[test]
    fn magic_division_32_wide_matches() {
        for d in (3u32..3000).filter(|d| !d.is_power_of_two()).chain([
            7,
            0xffff_fff1,
            0x8000_0001,
            0x7fff_ffff,
            1_000_000_007,
            u32::MAX,
        ]) {
            let (m, l) = magic_u32_wide(d);
            let check = |n: u32| {
                let n64 = n as u64;
                let q = (n64 + ((n64 * m as u64) >> 32)) >> l;
                assert_eq!(q, (n / d) as u64, "{n} / {d}");
            };
            for n in [0, 1, d - 1, d, d + 1, u32::MAX, u32::MAX - 1, 1 << 31] {
                check(n);
            }
            let mut x = d.wrapping_mul(2_654_435_761) | 1;
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                check(x);
            }
        }
        // Every n for one divisor that needs the wide form.
        assert!(magic_u32(7).is_none());
        let (m, l) = magic_u32_wide(7);
        for n in (0..=u32::MAX).step_by(97).chain([u32::MAX]) {
            let n64 = n as u64;
            assert_eq!((n64 + ((n64 * m as u64) >> 32)) >> l, (n / 7) as u64);
        }
    }

    #[test]
    fn magic_division_32_matches() {
        for d in (3u32..2000).chain([0xffff_fff1, 0x8000_0001, 641, 0x7fff_ffff, 1_000_000_007]) {
            let Some((m, s)) = magic_u32(d) else { continue };
            let check = |n: u32| {
                let q = (n as u64 * m as u64) >> (32 + s);
                assert_eq!(q, (n / d) as u64, "{n} / {d}");
            };
            for n in [
                0,
                1,
                d - 1,
                d,
                d + 1,
                u32::MAX,
                u32::MAX - 1,
                1 << 31,
                (1 << 31) - 1,
            ] {
                check(n);
            }
            let mut x = d.wrapping_mul(2_654_435_761) | 1;
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                check(x);
            }
        }
        assert!(magic_u32(13).is_some());
    }

    fn divide(n: u64, d: u64) -> u64 {
        let (m, s, add) = magic_u64(d);
        let hi = ((n as u128 * m as u128) >> 64) as u64;
        if add {
            let t = ((n - hi) >> 1) + hi;
            t >> (s - 1)
        } else {
            hi >> s
        }
    }

    #[test]
    fn magic_division_matches() {
        let ds = [
            3u64,
            5,
            6,
            7,
            10,
            13,
            25,
            100,
            641,
            1000,
            0xffff_ffff,
            0x8000_0001,
            (1 << 63) - 1,
            (1 << 62) + 1,
            12345678901234567,
        ];
        let ns = [
            0u64,
            1,
            2,
            12,
            13,
            14,
            99,
            1 << 32,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) - 1,
            0xdead_beef_cafe_f00d,
        ];
        for &d in &ds {
            for &n in &ns {
                assert_eq!(divide(n, d), n / d, "{n} / {d}");
            }
            let mut x = d.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                assert_eq!(divide(x, d), x / d, "{x} / {d}");
                let small = x >> 33;
                assert_eq!(divide(small, d), small / d);
            }
        }
    }
}
