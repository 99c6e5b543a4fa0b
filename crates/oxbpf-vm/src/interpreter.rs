//! The interpreter: the definition of oxbpf's execution semantics.
//!
//! Semantics follow the Linux kernel (kernel/bpf/core.c and RFC 9669):
//! * division by zero yields 0; modulo by zero leaves the dividend
//!   (zero-extended to 64 bits for the 32-bit forms);
//! * `INT_MIN / -1 == INT_MIN` and `INT_MIN % -1 == 0` for signed forms;
//! * shift amounts are masked to the operand width (63 or 31);
//! * every 32-bit result is zero-extended into the 64-bit register;
//! * each bpf-to-bpf call gets its own 512-byte frame, `r6`..`r9` and `r10`
//!   are restored on return, and the depth is limited;
//! * legacy packet loads read big-endian data and end the program with
//!   `r0 = 0` when out of bounds.
//!
//! The dispatch loop works on pre-lowered `Op`s whose jump targets are
//! absolute and whose immediates are already sign-extended.

use crate::error::VmError;
use crate::helpers::{HelperContext, HelperOutcome, Helpers};
use crate::memory::MemoryMap;
use crate::program::{
    FUNC_ADDR_TAG, OP_INVALID, OP_MOV_ADD_K, OP_MOV_ADD_X, OP_MOV_AND_K, OP_MOV_LSH_K,
    OP_MOV_RSH_K, OP_SWITCH, OP_UNRESOLVED, Op, Program,
};
use crate::switch::SwitchTable;
use oxbpf_isa::raw::opcode::*;
use oxbpf_isa::raw::*;

/// Size of one stack frame in bytes.
pub const STACK_FRAME_SIZE: usize = 512;

/// Execution limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Maximum number of stack frames (main program included); the kernel's is 8.
    pub max_call_depth: usize,
    /// Stop with [`VmError::BudgetExhausted`] after this many instructions.
    pub instruction_budget: Option<u64>,
    /// The engine: interpreter or JIT.
    pub engine: crate::jit::Engine,
    /// Whether JIT code checks memory accesses (the interpreter always does).
    pub checks: crate::jit::Checks,
    /// Whether the JIT counts executed instructions without a budget (a
    /// little slower; [`RunResult::executed`] is 0 when off). The
    /// interpreter always counts.
    pub count_instructions: bool,
    /// JIT constant blinding: no immediate of the program appears in the
    /// generated code (each is stored xor-ed with a random key and decoded
    /// at run time), against JIT spraying. Shift counts and memory offsets
    /// are not blinded.
    pub blind_constants: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_call_depth: 8,
            instruction_budget: None,
            engine: crate::jit::Engine::Interpreter,
            checks: crate::jit::Checks::ON,
            count_instructions: true,
            blind_constants: false,
        }
    }
}

/// The outcome of a successful run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// The program's return value (`r0` at the final `exit`).
    pub r0: u64,
    /// Instructions executed (an lddw counts once); 0 from the JIT when
    /// [`Config::count_instructions`] is off and there is no budget.
    pub executed: u64,
    /// The packet's final state, for packet programs.
    pub packet: Option<PacketState>,
}

/// Receives every executed instruction; used by `--trace` and the debugger.
pub trait Tracer {
    /// Whether to call [`Tracer::step`] at all (a constant, so the
    /// non-tracing interpreter carries no cost for it).
    const ENABLED: bool;
    /// Called after the instruction at `pc` ran, with registers before and after.
    fn step(&mut self, pc: usize, before: &[u64; 11], after: &[u64; 11]);
}

/// A tracer that does nothing.
pub struct NoTrace;

impl Tracer for NoTrace {
    const ENABLED: bool = false;
    fn step(&mut self, _: usize, _: &[u64; 11], _: &[u64; 11]) {}
}

impl<F: FnMut(usize, &[u64; 11], &[u64; 11])> Tracer for F {
    const ENABLED: bool = true;
    fn step(&mut self, pc: usize, before: &[u64; 11], after: &[u64; 11]) {
        self(pc, before, after)
    }
}

/// The packet of a packet program: the buffer it lives in (with headroom
/// and tailroom), the current `[data, data_end)` and the metadata start.
/// Legacy packet loads (`LD_ABS`/`LD_IND`) read `[data, data_end)`; the
/// `xdp_adjust_*` helpers move the bounds within the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketState {
    pub buf_start: u64,
    pub buf_end: u64,
    pub data: u64,
    pub data_end: u64,
    pub meta: u64,
    /// Where the context keeps copies of the packet pointers, updated
    /// when the bounds move.
    pub ctx: CtxPointers,
    /// Target of `bpf_redirect`/`bpf_redirect_map`, if one was set.
    pub redirect: Option<u32>,
}

/// Layout of packet pointers inside the context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtxPointers {
    None,
    /// `struct xdp_md` at this address (`oxbpf_abi::ctx::xdp_md`: u32
    /// `data`, `data_end`, `data_meta`).
    Xdp(u64),
    /// `struct __sk_buff` at this address (`oxbpf_abi::ctx::sk_buff`: `len`,
    /// `data`, `data_end`, `data_meta`).
    Skb(u64),
}

impl PacketState {
    /// A packet occupying all of `[start, start + len)`.
    pub fn plain(start: u64, len: u64) -> PacketState {
        PacketState {
            buf_start: start,
            buf_end: start + len,
            data: start,
            data_end: start + len,
            meta: start,
            ctx: CtxPointers::None,
            redirect: None,
        }
    }

    pub fn len(&self) -> u64 {
        self.data_end - self.data
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Maximum number of tail calls in one run (the kernel's MAX_TAIL_CALL_CNT).
pub const MAX_TAIL_CALLS: u32 = 33;

struct Frame {
    ret: usize,
    saved: [u64; 4],
    fp: u64,
}

/// What runs: a program with its helpers and limits.
#[derive(Clone, Copy)]
pub struct Setup<'p> {
    pub program: &'p Program,
    pub helpers: &'p Helpers,
    pub config: &'p Config,
}

/// Runs a program to completion.
pub fn run<T: Tracer>(
    setup: Setup<'_>,
    memory: MemoryMap<'_>,
    args: [u64; 5],
    env: Option<&crate::env::Env>,
    packet: Option<PacketState>,
    tracer: &mut T,
) -> Result<RunResult, VmError> {
    let Setup {
        program,
        helpers,
        config,
    } = setup;
    // Tracing needs every instruction, which only the interpreter reports.
    if config.engine == crate::jit::Engine::Jit && !T::ENABLED {
        return crate::jit::run(program, helpers, config, memory, args, env, packet);
    }
    let depth = config.max_call_depth.max(1);
    let dirty_from = std::cell::Cell::new(0);
    let mut stack = crate::memory::PooledStack::take(STACK_FRAME_SIZE * depth, &dirty_from);
    let mut memory: MemoryMap<'_> = memory;
    // Only the frames of the current call chain are accessible: the stack
    // region starts at the bottom of the current frame and grows with calls.
    let stack_top = memory.add_stack_front(stack.bytes(), STACK_FRAME_SIZE);
    // Collapsed compare trees skip instructions, so the exact per-instruction
    // view (budget, tracing) uses the plain operations.
    let exact = config.instruction_budget.is_some() || T::ENABLED;
    let mut st = State {
        program,
        exact,
        helpers,
        env,
        packet,
        depth,
        tail_calls: 0,
        min_front: stack_top - STACK_FRAME_SIZE as u64,
    };
    let r = match config.instruction_budget {
        Some(b) => st.exec::<T, true>(&mut memory, args, 0, stack_top, b, tracer),
        None => st.exec::<T, false>(&mut memory, args, 0, stack_top, u64::MAX, tracer),
    };
    // Frames below the deepest one reached were never written.
    let stack_base = stack_top - (STACK_FRAME_SIZE * depth) as u64;
    dirty_from.set(st.min_front.saturating_sub(stack_base) as usize);
    let packet = st.packet;
    r.map(|r| RunResult { packet, ..r })
}

struct State<'p> {
    program: &'p Program,
    exact: bool,
    helpers: &'p Helpers,
    env: Option<&'p crate::env::Env>,
    packet: Option<PacketState>,
    /// Frames available (main program included).
    depth: usize,
    tail_calls: u32,
    /// Lowest start of the stack region in this run (deepest frame).
    min_front: u64,
}

#[inline(always)]
fn div64(a: u64, b: u64) -> u64 {
    a.checked_div(b).unwrap_or(0)
}
#[inline(always)]
fn sdiv64(a: u64, b: u64) -> u64 {
    if b == 0 {
        0
    } else {
        (a as i64).wrapping_div(b as i64) as u64
    }
}
#[inline(always)]
fn mod64(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { a % b }
}
#[inline(always)]
fn smod64(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        (a as i64).wrapping_rem(b as i64) as u64
    }
}
#[inline(always)]
fn div32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    a.checked_div(b).unwrap_or(0) as u64
}
#[inline(always)]
fn sdiv32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    (if b == 0 { 0 } else { a.wrapping_div(b) }) as u32 as u64
}
#[inline(always)]
fn mod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as u32, b as u32);
    (if b == 0 { a } else { a % b }) as u64
}
#[inline(always)]
fn smod32(a: u64, b: u64) -> u64 {
    let (a, b) = (a as i32, b as i32);
    (if b == 0 { a } else { a.wrapping_rem(b) }) as u32 as u64
}

impl<'p> State<'p> {
    /// The dispatch loop; `BUDGETED` removes the budget check at compile
    /// time when there is no budget.
    fn exec<T: Tracer, const BUDGETED: bool>(
        &mut self,
        mem: &mut MemoryMap<'_>,
        args: [u64; 5],
        start_pc: usize,
        stack_top: u64,
        budget: u64,
        tracer: &mut T,
    ) -> Result<RunResult, VmError> {
        let mut prog: &'p Program = self.program;
        let pick = |p: &'p Program, exact: bool| -> (&'p [Op], &'p [SwitchTable]) {
            (if exact { &p.ops } else { &p.fast_ops }, &p.switches)
        };
        let (mut ops, mut switches) = pick(prog, self.exact);
        let mut r = [0u64; 16];
        r[1..6].copy_from_slice(&args);
        r[10] = stack_top;
        let mut frames: Vec<Frame> = Vec::new();
        let mut pc: usize = start_pc;
        let mut executed: u64 = 0;

        loop {
            let op = ops[pc];
            if BUDGETED && executed >= budget {
                return Err(VmError::BudgetExhausted { pc, budget });
            }
            executed += 1;
            let before = if T::ENABLED {
                let mut b = [0u64; 11];
                b.copy_from_slice(&r[..11]);
                b
            } else {
                [0; 11]
            };
            let this_pc = pc;
            pc += 1;
            let d = (op.dst & 15) as usize;
            let s = (op.src & 15) as usize;
            let imm = op.imm as u64;
            macro_rules! addr_src {
                () => {
                    r[s].wrapping_add(op.off as i64 as u64)
                };
            }
            macro_rules! addr_dst {
                () => {
                    r[d].wrapping_add(op.off as i64 as u64)
                };
            }
            let pc_err = this_pc;
            // A memory fault names the instruction that made the access.
            macro_rules! fault {
                ($e:expr) => {
                    $e.map_err(|fault| VmError::MemoryFault { pc: pc_err, fault })?
                };
            }
            // Conditional jumps select the next pc without a host branch: the
            // outcome of a BPF branch is often data-dependent, and a
            // mispredicted host branch costs more than the select.
            macro_rules! jump {
                ($cond:expr) => {{
                    let taken = ($cond) as usize;
                    pc ^= (pc ^ op.off as usize) & taken.wrapping_neg();
                }};
            }
            match op.code {
                // ALU64, immediate and register forms.
                ADD64_K => r[d] = r[d].wrapping_add(imm),
                ADD64_X => r[d] = r[d].wrapping_add(r[s]),
                SUB64_K => r[d] = r[d].wrapping_sub(imm),
                SUB64_X => r[d] = r[d].wrapping_sub(r[s]),
                MUL64_K => r[d] = r[d].wrapping_mul(imm),
                MUL64_X => r[d] = r[d].wrapping_mul(r[s]),
                DIV64_K => {
                    r[d] = if op.off == 0 {
                        div64(r[d], imm)
                    } else {
                        sdiv64(r[d], imm)
                    }
                }
                DIV64_X => {
                    r[d] = if op.off == 0 {
                        div64(r[d], r[s])
                    } else {
                        sdiv64(r[d], r[s])
                    }
                }
                OR64_K => r[d] |= imm,
                OR64_X => r[d] |= r[s],
                AND64_K => r[d] &= imm,
                AND64_X => r[d] &= r[s],
                LSH64_K => r[d] <<= imm & 63,
                LSH64_X => r[d] <<= r[s] & 63,
                RSH64_K => r[d] >>= imm & 63,
                RSH64_X => r[d] >>= r[s] & 63,
                NEG64 => r[d] = r[d].wrapping_neg(),
                MOD64_K => {
                    r[d] = if op.off == 0 {
                        mod64(r[d], imm)
                    } else {
                        smod64(r[d], imm)
                    }
                }
                MOD64_X => {
                    r[d] = if op.off == 0 {
                        mod64(r[d], r[s])
                    } else {
                        smod64(r[d], r[s])
                    }
                }
                XOR64_K => r[d] ^= imm,
                XOR64_X => r[d] ^= r[s],
                MOV64_K => r[d] = imm,
                MOV64_X => {
                    r[d] = match op.off {
                        0 => r[s],
                        8 => r[s] as i8 as i64 as u64,
                        16 => r[s] as i16 as i64 as u64,
                        _ => r[s] as i32 as i64 as u64,
                    }
                }
                ARSH64_K => r[d] = ((r[d] as i64) >> (imm & 63)) as u64,
                ARSH64_X => r[d] = ((r[d] as i64) >> (r[s] & 63)) as u64,
                BSWAP => {
                    r[d] = match imm {
                        16 => (r[d] as u16).swap_bytes() as u64,
                        32 => (r[d] as u32).swap_bytes() as u64,
                        _ => r[d].swap_bytes(),
                    }
                }

                // ALU (32-bit), results zero-extended.
                ADD32_K => r[d] = (r[d] as u32).wrapping_add(imm as u32) as u64,
                ADD32_X => r[d] = (r[d] as u32).wrapping_add(r[s] as u32) as u64,
                SUB32_K => r[d] = (r[d] as u32).wrapping_sub(imm as u32) as u64,
                SUB32_X => r[d] = (r[d] as u32).wrapping_sub(r[s] as u32) as u64,
                MUL32_K => r[d] = (r[d] as u32).wrapping_mul(imm as u32) as u64,
                MUL32_X => r[d] = (r[d] as u32).wrapping_mul(r[s] as u32) as u64,
                DIV32_K => {
                    r[d] = if op.off == 0 {
                        div32(r[d], imm)
                    } else {
                        sdiv32(r[d], imm)
                    }
                }
                DIV32_X => {
                    r[d] = if op.off == 0 {
                        div32(r[d], r[s])
                    } else {
                        sdiv32(r[d], r[s])
                    }
                }
                OR32_K => r[d] = (r[d] as u32 | imm as u32) as u64,
                OR32_X => r[d] = (r[d] as u32 | r[s] as u32) as u64,
                AND32_K => r[d] = (r[d] as u32 & imm as u32) as u64,
                AND32_X => r[d] = (r[d] as u32 & r[s] as u32) as u64,
                LSH32_K => r[d] = ((r[d] as u32) << (imm & 31)) as u64,
                LSH32_X => r[d] = ((r[d] as u32) << (r[s] & 31)) as u64,
                RSH32_K => r[d] = ((r[d] as u32) >> (imm & 31)) as u64,
                RSH32_X => r[d] = ((r[d] as u32) >> (r[s] & 31)) as u64,
                NEG32 => r[d] = (r[d] as u32).wrapping_neg() as u64,
                MOD32_K => {
                    r[d] = if op.off == 0 {
                        mod32(r[d], imm)
                    } else {
                        smod32(r[d], imm)
                    }
                }
                MOD32_X => {
                    r[d] = if op.off == 0 {
                        mod32(r[d], r[s])
                    } else {
                        smod32(r[d], r[s])
                    }
                }
                XOR32_K => r[d] = (r[d] as u32 ^ imm as u32) as u64,
                XOR32_X => r[d] = (r[d] as u32 ^ r[s] as u32) as u64,
                MOV32_K => r[d] = imm as u32 as u64,
                MOV32_X => {
                    r[d] = match op.off {
                        0 => r[s] as u32 as u64,
                        8 => r[s] as i8 as i32 as u32 as u64,
                        _ => r[s] as i16 as i32 as u32 as u64,
                    }
                }
                ARSH32_K => r[d] = ((r[d] as u32 as i32) >> (imm & 31)) as u32 as u64,
                ARSH32_X => r[d] = ((r[d] as u32 as i32) >> (r[s] & 31)) as u32 as u64,
                LE => {
                    r[d] = match imm {
                        16 => r[d] as u16 as u64,
                        32 => r[d] as u32 as u64,
                        _ => r[d],
                    }
                }
                BE => {
                    r[d] = match imm {
                        16 => (r[d] as u16).swap_bytes() as u64,
                        32 => (r[d] as u32).swap_bytes() as u64,
                        _ => r[d].swap_bytes(),
                    }
                }

                // Jumps (64-bit compare). `op.off` is the absolute target.
                JA | JA32 => pc = op.off as usize,
                JEQ_K => {
                    jump!(r[d] == imm)
                }
                JEQ_X => {
                    jump!(r[d] == r[s])
                }
                JGT_K => {
                    jump!(r[d] > imm)
                }
                JGT_X => {
                    jump!(r[d] > r[s])
                }
                JGE_K => {
                    jump!(r[d] >= imm)
                }
                JGE_X => {
                    jump!(r[d] >= r[s])
                }
                JSET_K => {
                    jump!(r[d] & imm != 0)
                }
                JSET_X => {
                    jump!(r[d] & r[s] != 0)
                }
                JNE_K => {
                    jump!(r[d] != imm)
                }
                JNE_X => {
                    jump!(r[d] != r[s])
                }
                JSGT_K => {
                    jump!((r[d] as i64) > (imm as i64))
                }
                JSGT_X => {
                    jump!((r[d] as i64) > (r[s] as i64))
                }
                JSGE_K => {
                    jump!((r[d] as i64) >= (imm as i64))
                }
                JSGE_X => {
                    jump!((r[d] as i64) >= (r[s] as i64))
                }
                JLT_K => {
                    jump!(r[d] < imm)
                }
                JLT_X => {
                    jump!(r[d] < r[s])
                }
                JLE_K => {
                    jump!(r[d] <= imm)
                }
                JLE_X => {
                    jump!(r[d] <= r[s])
                }
                JSLT_K => {
                    jump!((r[d] as i64) < (imm as i64))
                }
                JSLT_X => {
                    jump!((r[d] as i64) < (r[s] as i64))
                }
                JSLE_K => {
                    jump!((r[d] as i64) <= (imm as i64))
                }
                JSLE_X => {
                    jump!((r[d] as i64) <= (r[s] as i64))
                }

                // Jumps (32-bit compare).
                JEQ32_K => {
                    jump!(r[d] as u32 == imm as u32)
                }
                JEQ32_X => {
                    jump!(r[d] as u32 == r[s] as u32)
                }
                JGT32_K => {
                    jump!(r[d] as u32 > imm as u32)
                }
                JGT32_X => {
                    jump!(r[d] as u32 > r[s] as u32)
                }
                JGE32_K => {
                    jump!(r[d] as u32 >= imm as u32)
                }
                JGE32_X => {
                    jump!(r[d] as u32 >= r[s] as u32)
                }
                JSET32_K => {
                    jump!(r[d] as u32 & imm as u32 != 0)
                }
                JSET32_X => {
                    jump!(r[d] as u32 & r[s] as u32 != 0)
                }
                JNE32_K => {
                    jump!(r[d] as u32 != imm as u32)
                }
                JNE32_X => {
                    jump!(r[d] as u32 != r[s] as u32)
                }
                JSGT32_K => {
                    jump!((r[d] as i32) > (imm as i32))
                }
                JSGT32_X => {
                    jump!((r[d] as i32) > (r[s] as i32))
                }
                JSGE32_K => {
                    jump!((r[d] as i32) >= (imm as i32))
                }
                JSGE32_X => {
                    jump!((r[d] as i32) >= (r[s] as i32))
                }
                JLT32_K => {
                    jump!((r[d] as u32) < imm as u32)
                }
                JLT32_X => {
                    jump!((r[d] as u32) < r[s] as u32)
                }
                JLE32_K => {
                    jump!(r[d] as u32 <= imm as u32)
                }
                JLE32_X => {
                    jump!(r[d] as u32 <= r[s] as u32)
                }
                JSLT32_K => {
                    jump!((r[d] as i32) < (imm as i32))
                }
                JSLT32_X => {
                    jump!((r[d] as i32) < (r[s] as i32))
                }
                JSLE32_K => {
                    jump!((r[d] as i32) <= (imm as i32))
                }
                JSLE32_X => {
                    jump!((r[d] as i32) <= (r[s] as i32))
                }

                // Loads.
                LDXW => r[d] = fault!(mem.load(addr_src!(), 4)),
                LDXH => r[d] = fault!(mem.load(addr_src!(), 2)),
                LDXB => r[d] = fault!(mem.load(addr_src!(), 1)),
                LDXDW => r[d] = fault!(mem.load(addr_src!(), 8)),
                LDXSW => r[d] = fault!(mem.load(addr_src!(), 4)) as i32 as i64 as u64,
                LDXSH => r[d] = fault!(mem.load(addr_src!(), 2)) as i16 as i64 as u64,
                LDXSB => r[d] = fault!(mem.load(addr_src!(), 1)) as i8 as i64 as u64,

                // Stores of immediates and registers.
                STW => fault!(mem.store(addr_dst!(), 4, imm)),
                STH => fault!(mem.store(addr_dst!(), 2, imm)),
                STB => fault!(mem.store(addr_dst!(), 1, imm)),
                STDW => fault!(mem.store(addr_dst!(), 8, imm)),
                STXW => fault!(mem.store(addr_dst!(), 4, r[s])),
                STXH => fault!(mem.store(addr_dst!(), 2, r[s])),
                STXB => fault!(mem.store(addr_dst!(), 1, r[s])),
                STXDW => fault!(mem.store(addr_dst!(), 8, r[s])),

                ATOMIC_W | ATOMIC_DW => {
                    let size = if op.code == ATOMIC_DW { 8 } else { 4 };
                    let mask = if size == 8 { u64::MAX } else { u32::MAX as u64 };
                    let v = r[s] & mask;
                    let code = op.imm as i32;
                    let expected = r[0] & mask;
                    let (old, dest) = match code & !BPF_FETCH {
                        ATOMIC_ADD => (
                            mem.atomic_rmw(addr_dst!(), size, |o| Some(o.wrapping_add(v) & mask)),
                            s,
                        ),
                        ATOMIC_OR => (mem.atomic_rmw(addr_dst!(), size, |o| Some(o | v)), s),
                        ATOMIC_AND => (mem.atomic_rmw(addr_dst!(), size, |o| Some(o & v)), s),
                        ATOMIC_XOR => (mem.atomic_rmw(addr_dst!(), size, |o| Some(o ^ v)), s),
                        ATOMIC_XCHG => (mem.atomic_rmw(addr_dst!(), size, |_| Some(v)), s),
                        // cmpxchg: compare with r0; the old value goes to r0.
                        _ => (
                            mem.atomic_rmw(addr_dst!(), size, |o| (o == expected).then_some(v)),
                            0,
                        ),
                    };
                    let old = fault!(old);
                    if code & BPF_FETCH != 0 {
                        r[dest] = old;
                    }
                }

                // lddw: the value was assembled at load time; skip the filler slot.
                LDDW => {
                    r[d] = imm;
                    pc += 1;
                }
                OP_UNRESOLVED => return Err(VmError::UnresolvedReference { pc: pc_err }),

                // Legacy packet loads: big-endian, out of bounds ends the program with 0.
                LDABSW | LDABSH | LDABSB | LDINDW | LDINDH | LDINDB => {
                    let Some(pkt) = self.packet else {
                        return Err(VmError::NoPacket { pc: pc_err });
                    };
                    let pkt_len = pkt.len();
                    let size: u64 = match op.code & BPF_SIZE_MASK {
                        BPF_W => 4,
                        BPF_H => 2,
                        _ => 1,
                    };
                    let mut off = op.imm as i32;
                    if op.code & BPF_MODE_MASK == BPF_IND {
                        off = off.wrapping_add(r[s] as u32 as i32);
                    }
                    if off < 0 || off as u64 + size > pkt_len {
                        return Ok(RunResult {
                            r0: 0,
                            executed,
                            packet: None,
                        });
                    }
                    let v = fault!(mem.load(pkt.data + off as u64, size));
                    r[0] = match size {
                        4 => (v as u32).swap_bytes() as u64,
                        2 => (v as u16).swap_bytes() as u64,
                        _ => v,
                    };
                }

                CALL => match op.src {
                    0 => match self.call_helper(mem, op.imm as u32 as u64, &mut r, pc_err)? {
                        HelperOutcome::Return(v) => r[0] = v,
                        HelperOutcome::Exit(v) => {
                            return Ok(RunResult {
                                r0: v,
                                executed,
                                packet: None,
                            });
                        }
                        HelperOutcome::TailCall { program } => {
                            let target = self.env.and_then(|e| e.programs.get(program as usize));
                            match target {
                                Some(p) if self.tail_calls < MAX_TAIL_CALLS => {
                                    self.tail_calls += 1;
                                    prog = p;
                                    // Callbacks from here on run subprograms of
                                    // the tail-called program.
                                    self.program = p;
                                    (ops, switches) = pick(prog, self.exact);
                                    pc = 0;
                                }
                                // A failed tail call continues after the call.
                                _ => r[0] = (-2i64) as u64,
                            }
                        }
                        HelperOutcome::Loop { nr, callback, ctx } => {
                            let mut i = 0;
                            while i < nr {
                                let (ret, n) = self.callback(
                                    mem,
                                    callback,
                                    [i, ctx, 0, 0, 0],
                                    r[10],
                                    frames.len(),
                                    pc_err,
                                    tracer,
                                )?;
                                executed += n;
                                i += 1;
                                if ret != 0 {
                                    break;
                                }
                            }
                            r[0] = i;
                        }
                        HelperOutcome::ForEach { map, callback, ctx } => {
                            let env = self.env;
                            let mut host = InterpHost {
                                st: self,
                                mem,
                                frames_in_use: frames.len(),
                                pc: pc_err,
                                executed: &mut executed,
                                tracer,
                            };
                            r[0] =
                                for_each_elem(&mut host, env, map, callback, ctx, r[10], pc_err)?;
                        }
                    },
                    BPF_PSEUDO_CALL => {
                        self.push_frame(mem, &mut frames, &mut r, pc, pc_err)?;
                        pc = op.off as usize;
                    }
                    _ => {
                        return Err(VmError::KfuncUnsupported {
                            pc: pc_err,
                            btf_id: op.imm as i32,
                        });
                    }
                },
                CALLX => {
                    let target = r[d];
                    if target & !0xffff_ffff == FUNC_ADDR_TAG
                        && ((target & 0xffff_ffff) as usize) < ops.len() - 1
                    {
                        self.push_frame(mem, &mut frames, &mut r, pc, pc_err)?;
                        pc = (target & 0xffff_ffff) as usize;
                    } else {
                        match self.call_helper(mem, target, &mut r, pc_err)? {
                            HelperOutcome::Return(v) => r[0] = v,
                            HelperOutcome::Exit(v) => {
                                return Ok(RunResult {
                                    r0: v,
                                    executed,
                                    packet: None,
                                });
                            }
                            // Special helpers are only reachable through `call N`.
                            _ => {
                                return Err(VmError::UnknownHelper {
                                    pc: pc_err,
                                    id: target,
                                });
                            }
                        }
                    }
                }
                EXIT => match frames.pop() {
                    None => {
                        if T::ENABLED {
                            let mut after = [0u64; 11];
                            after.copy_from_slice(&r[..11]);
                            tracer.step(this_pc, &before, &after);
                        }
                        return Ok(RunResult {
                            r0: r[0],
                            executed,
                            packet: None,
                        });
                    }
                    Some(f) => {
                        mem.resize_front(-(STACK_FRAME_SIZE as i64));
                        r[6..10].copy_from_slice(&f.saved);
                        r[10] = f.fp;
                        pc = f.ret;
                    }
                },
                // Fused pairs: two instructions, one dispatch.
                OP_MOV_ADD_K => {
                    r[d] = r[s].wrapping_add(imm);
                    pc += 1;
                    executed += 1;
                }
                OP_MOV_AND_K => {
                    r[d] = r[s] & imm;
                    pc += 1;
                    executed += 1;
                }
                OP_MOV_LSH_K => {
                    r[d] = r[s] << (imm & 63);
                    pc += 1;
                    executed += 1;
                }
                OP_MOV_RSH_K => {
                    r[d] = r[s] >> (imm & 63);
                    pc += 1;
                    executed += 1;
                }
                OP_MOV_ADD_X => {
                    // Read the addend first: it may be rD itself (then it is rS).
                    let x = (op.off & 15) as usize;
                    let add = if x == d { r[s] } else { r[x] };
                    r[d] = r[s].wrapping_add(add);
                    pc += 1;
                    executed += 1;
                }
                OP_SWITCH => {
                    let leaf = switches[op.imm as usize].lookup(r[d]);
                    executed += leaf.nodes as u64 - 1;
                    pc = leaf.target as usize;
                }
                OP_INVALID => return Err(VmError::FellOffEnd { pc: pc_err }),
                // Listing the top of the opcode space lets the dispatch table
                // cover every u8, so no range check precedes the jump.
                0xdf..=0xff => return Err(VmError::FellOffEnd { pc: pc_err }),
                // Unreachable for validated programs: lowering only emits the
                // opcodes above. Report rather than panic.
                _ => return Err(VmError::FellOffEnd { pc: pc_err }),
            }
            if T::ENABLED {
                let mut after = [0u64; 11];
                after.copy_from_slice(&r[..11]);
                tracer.step(this_pc, &before, &after);
            }
        }
    }

    /// Remembers how deep the stack region reached.
    #[inline(always)]
    fn note_front(&mut self, mem: &MemoryMap<'_>) {
        if let Some(r) = mem.regions().first() {
            self.min_front = self.min_front.min(r.start);
        }
    }

    #[inline(never)]
    fn push_frame(
        &mut self,
        mem: &mut MemoryMap<'_>,
        frames: &mut Vec<Frame>,
        r: &mut [u64; 16],
        ret: usize,
        pc: usize,
    ) -> Result<(), VmError> {
        if frames.len() + 1 >= self.depth {
            return Err(VmError::CallDepthExceeded {
                pc,
                limit: self.depth,
            });
        }
        frames.push(Frame {
            ret,
            saved: [r[6], r[7], r[8], r[9]],
            fp: r[10],
        });
        r[10] -= STACK_FRAME_SIZE as u64;
        mem.resize_front(STACK_FRAME_SIZE as i64);
        self.note_front(mem);
        Ok(())
    }

    /// Runs the subprogram at function address `callback` in a new frame
    /// below `fp`; returns its r0 and the instructions it executed.
    #[allow(clippy::too_many_arguments)]
    fn callback<T: Tracer>(
        &mut self,
        mem: &mut MemoryMap<'_>,
        callback: u64,
        args: [u64; 5],
        fp: u64,
        frames_in_use: usize,
        pc: usize,
        tracer: &mut T,
    ) -> Result<(u64, u64), VmError> {
        let target = (callback & 0xffff_ffff) as usize;
        if callback & !0xffff_ffff != FUNC_ADDR_TAG || target >= self.program.ops.len() - 1 {
            return Err(VmError::HelperFailed {
                pc,
                id: 0,
                message: format!("callback {callback:#x} is not a function address"),
            });
        }
        let used = frames_in_use + 1;
        if used + 1 > self.depth {
            return Err(VmError::CallDepthExceeded {
                pc,
                limit: self.depth,
            });
        }
        let saved_depth = self.depth;
        let saved_program = self.program;
        self.depth -= used;
        mem.resize_front(STACK_FRAME_SIZE as i64);
        self.note_front(mem);
        let res = self.exec::<T, false>(
            mem,
            args,
            target,
            fp - STACK_FRAME_SIZE as u64,
            u64::MAX,
            tracer,
        );
        mem.resize_front(-(STACK_FRAME_SIZE as i64));
        self.depth = saved_depth;
        self.program = saved_program;
        let r = res?;
        Ok((r.r0, r.executed))
    }

    /// Calls helper `id` and returns what it asks the engine to do.
    #[inline(never)]
    fn call_helper(
        &mut self,
        mem: &mut MemoryMap<'_>,
        id: u64,
        r: &mut [u64; 16],
        pc: usize,
    ) -> Result<HelperOutcome, VmError> {
        let helper = u32::try_from(id)
            .ok()
            .and_then(|id32| self.helpers.get(id32))
            .ok_or(VmError::UnknownHelper { pc, id })?;
        let mut ctx = HelperContext {
            memory: mem,
            pc,
            env: self.env,
            packet: &mut self.packet,
        };
        match helper(&mut ctx, [r[1], r[2], r[3], r[4], r[5]]) {
            Ok(o) => Ok(o),
            Err(e) => Err(VmError::HelperFailed {
                pc,
                id: id as u32,
                message: e.message,
            }),
        }
    }
}

/// What `bpf_for_each_map_elem` needs from an engine: the run's memory and
/// a way to call a callback subprogram.
pub(crate) trait CallbackHost {
    fn memory(&self) -> &MemoryMap<'_>;
    /// Calls the subprogram at function address `callback` with `args` in
    /// a frame below `fp`; returns its r0.
    fn call(&mut self, callback: u64, args: [u64; 5], fp: u64) -> Result<u64, VmError>;
}

struct InterpHost<'x, 'p, 'm, T: Tracer> {
    st: &'x mut State<'p>,
    mem: &'x mut MemoryMap<'m>,
    frames_in_use: usize,
    pc: usize,
    executed: &'x mut u64,
    tracer: &'x mut T,
}

impl<T: Tracer> CallbackHost for InterpHost<'_, '_, '_, T> {
    fn memory(&self) -> &MemoryMap<'_> {
        self.mem
    }

    fn call(&mut self, callback: u64, args: [u64; 5], fp: u64) -> Result<u64, VmError> {
        let (ret, n) = self.st.callback(
            self.mem,
            callback,
            args,
            fp,
            self.frames_in_use,
            self.pc,
            self.tracer,
        )?;
        *self.executed += n;
        Ok(ret)
    }
}

/// `bpf_for_each_map_elem`: calls `callback` with (map, &key, &value, ctx)
/// for each element until it returns non-zero; returns the number of
/// elements visited. The key is copied to the 64 bytes below the caller's
/// frame pointer (the kernel passes a pointer into the map; the caller's
/// stack is the memory the callback may read), and restored afterwards.
pub(crate) fn for_each_elem(
    host: &mut impl CallbackHost,
    env: Option<&crate::env::Env>,
    map: usize,
    callback: u64,
    ctx: u64,
    fp: u64,
    pc: usize,
) -> Result<u64, VmError> {
    let Some(env) = env else { return Ok(0) };
    let Some(m) = env.maps.get(map) else {
        return Ok(0);
    };
    let handle = crate::env::MAP_HANDLE_TAG | map as u64;
    let mut key: Option<Vec<u8>> = None;
    let mut count = 0u64;
    let ks = m.spec.key_size as usize;
    let key_addr = fp - 64;
    if ks > 64 {
        return Err(VmError::HelperFailed {
            pc,
            id: 164,
            message: "keys over 64 bytes are not supported".into(),
        });
    }
    let fault = |fault| VmError::MemoryFault { pc, fault };
    let saved = host
        .memory()
        .read_bytes(key_addr, ks as u64)
        .map_err(fault)?;
    while let Ok(k) = m.next_key(key.as_deref()) {
        let Some(value) = m.lookup_addr(&k, env.cpu) else {
            break;
        };
        host.memory().write_bytes(key_addr, &k).map_err(fault)?;
        count += 1;
        let ret = host.call(callback, [handle, key_addr, value, ctx, 0], fp - 64)?;
        if ret != 0 {
            break;
        }
        key = Some(k);
    }
    host.memory().write_bytes(key_addr, &saved).map_err(fault)?;
    Ok(count)
}
