//! The JIT: eBPF to x86-64 machine code, with the interpreter's semantics.
//!
//! * `emit` generates the code (dynasm-rs; no `unsafe`), with
//!   `encode` for the short forms of loads and stores and `liveness`
//!   for the registers trusted code may leave unwritten;
//! * `exec` is the only place that runs it (the `unsafe` calls into
//!   generated code and the callbacks it makes into Rust).
//!
//! Two modes: **checked** (the default) bounds-checks every load and store
//! against the run's [`MemoryMap`] in the generated code and reports the
//! same [`VmError::MemoryFault`] the interpreter gives; **trusted**
//! (`Vm::trust` / `LoadedObject::trust` with the verifier's proof, or the
//! `unsafe` [`Checks::trust_unproven`]) omits the checks, for programs the
//! verifier accepted, as the kernel does. Code is assembled into a vector,
//! copied into a read+write mapping and then switched to read+execute
//! (memmap2): never writable and executable at once.
//!
//! # Tuning log
//!
//! How the generated code got fast, with the measurements behind each step
//! (benchmark figures from `oxbpf bench` on the project's 2-core VM).
//!
//! - Code quality: compare-and-branch fused, memory operands, `lea` and
//!   base+index addressing for `rD = rS + rX` address idioms, `<<32 >>32` as a
//!   32-bit move, division by constants as multiplication (Granlund–Montgomery;
//!   32-bit divisors without a 32-bit multiplier use 2^32 + m in 64-bit
//!   arithmetic, so no division needs rdx) or shifts/masks, `rD = rS;
//!   rD &= 0xff/0xffff` as one `movzx`, multiplication by constants as
//!   shifts, `lea` (×3, ×5, ×9, and those times 2^k) or shift-and-add/subtract
//!   (2^k ± 1: `acc * 31` costs 2 cycles of latency instead of `imul`'s 3),
//!   `shlx`/`sarx`/`shrx` for
//!   register shifts when the CPU has BMI2, a conditional branch over a `goto`
//!   inverted into one branch, (uncounted code) a `goto` to a short block
//!   ending in a conditional branch replaced by a copy of that block (tail
//!   duplication of loop latches), and (trusted code) two adjacent byte loads
//!   joined by `<< 8` and `|` — clang's `p[0] << 8 | p[1]` for a big-endian
//!   packet field read through a byte pointer — as one 16-bit load and a `rol`,
//!   the other byte loaded only if liveness finds it read later. In checked
//!   code `rD = rS; rD += rX; rD = *(rD + k)` is one checked load of
//!   `[rS + rX + k]`.
//! - Summing loops (trusted, uncounted code on an AVX2 CPU): clang's
//!   `for (i = i0; i != N; i += S) a += *(uS *)(b + i + k)` — `t = b; t += i;
//!   t = *(uS *)(t + k); a += t; i += S; if i == N goto X; goto H` or
//!   `if i != N goto H`, with `t` dead after the loop — gets a vector
//!   preamble before the loop head: while `N - i` is a multiple of S and at
//!   least 16 elements, 16 elements per step go into four 256-bit
//!   accumulators of 64-bit lanes (zero-extended loads; wrapping sums do not
//!   depend on order, and none of those iterations can meet the exit test);
//!   then `i = N - rest`, `a` += the lanes, and either the loop's exit (`rest
//!   == 0`) or the scalar loop for the rest. Only entries falling into the
//!   loop from above take it; the scalar loop is unchanged. The same bytes
//!   are read as by the scalar iterations, so a verified program stays in
//!   bounds. `checksum` went from 1.48 to 0.46 µs (native, auto-vectorized by
//!   rustc: 0.66).
//! - Liveness (`jit/liveness.rs`): backward dataflow over the instructions
//!   (a bitset of r0–r10 per pc, iterated to a fixed point; calls read every
//!   register; a subprogram's `exit` hands r0–r5 back, as the interpreter
//!   restores only r6–r10 after a call), computed for trusted code only. It lets an idiom skip a write
//!   nothing reads: the `lea` of a store's address register, the extra byte of
//!   a joined 16-bit load.
//! - Encodings: loads, stores and `lea` are encoded by `jit/encode.rs`, not by
//!   `dynasm!`: with a register chosen at run time dynasm-rs always emits a SIB
//!   byte and a 32-bit displacement (`movzx edx, byte [r8-5]` in 9 bytes
//!   instead of 5). The encoder's unit test decodes every base, index and
//!   displacement class with iced-x86 (a dev-dependency). Heads of small loops
//!   (a back edge at most 16 instructions back) start on a 16-byte boundary;
//!   measured: `sieve` 10.2 → 9.1 µs, while aligning every loop head moved the
//!   `switch` benchmark's dense branches and slowed it by 10–20%.
//! - Constant blinding (`Config::blind_constants`, `--blind-constants`): every
//!   ALU, compare, store and `lddw` immediate is emitted as `imm ^ key` and
//!   `key` for a fresh random key per instruction and decoded in a scratch
//!   register, so no program-chosen constant appears in executable memory
//!   (shift counts and memory offsets are not blinded).
//!   Measured and not kept: jump tables for clang's compare trees (the
//!   `switch` benchmark went from 14.3 to 32.7 µs: on data-dependent cases the
//!   indirect jump mispredicts far more than the tree's branches) and 16-byte
//!   alignment of every loop head padded with one-byte `nop`s (`checksum` lost
//!   70%; the small-loop alignment above uses the multi-byte `nop` forms).
//! - Memory: code is assembled position-independent into a vector, copied into
//!   an anonymous read+write mapping, then switched to read+execute (memmap2);
//!   a mapping is never writable and executable at once. An object's programs
//!   share one mapping; freed mappings are switched back to read+write and
//!   reused (on this VM a new mapping costs ~10 µs in the kernel).
//! - **Encoder choice, by measurement**: dynasm-rs (`dynasm!` templates
//!   resolved at compile time, dynamic registers and labels at run time)
//!   emitted ~65 M BPF-instructions/s in a micro-benchmark of typical sequences
//!   (mov/add/load/cmp+jcc with labels); iced-x86's `CodeAssembler` 2.9 M/s
//!   (it builds instruction objects and runs a block encoder). The issue's
//!   target is 5 M/s for the whole JIT, so iced-x86 alone would miss it;
//!   Cranelift was not considered further (far slower to compile, and its
//!   register allocator would fight the fixed BPF register mapping).
//!
//! Per-run costs are kept off the hot path: each thread keeps one spare
//! stack (`memory.rs`, `PooledStack`, in a `Cell`; only frames a run could
//! have written are zeroed again), packet buffers below 4 GiB come from a
//! per-thread pool (`lowmem.rs`), a raw run's regions live inline in the
//! `MemoryMap`, whose slot 0 is reserved for the stack (adding it moves no
//! region), and helpers are found by indexing a vector. A raw JIT run
//! (`jit::run_raw`) builds its memory map in place and writes its result once
//! (moving just-built structures cost more than the rest: partial store
//! forwarding stalls); the stack's "written below here" mark is a `Cell` the
//! engine sets while the map still borrows the buffer; a verified program
//! that neither names r10 nor calls leaves the stack untouched and unzeroed
//! (an unverified one could write it through an address kept from an earlier
//! run; a helper such as `for_each_map_elem` uses its caller's stack).
//! *Leaf* code — trusted, without stack, calls, entry thunks, packet loads
//! or budget (`emit::Compiled::leaf`) — runs raw on a bare `JitCtx`
//! (`exec::enter_leaf`): no stack, memory map or runtime at all. A trusted
//! raw run of a two-instruction program costs ~20 ns (`jit_overhead`; ~34
//! for non-leaf code, ~52 before these changes); rbpf's JIT, which neither
//! zeroes a stack nor keeps a run context, ~5 ns.
//! `crates/oxbpf-vm/examples/` has the profiling tools used to measure these
//! (`jit_dump` writes the machine code of a program for
//! `objdump -D -b binary -m i386:x86-64`; `jit_overhead`, `run_overhead`,
//! `compile_loop`, `compile_objects`, `object_loop`, `peer_run` time one
//! thing each).

mod emit;
mod encode;
mod exec;
mod liveness;

use std::sync::{Arc, OnceLock};

use crate::env::Env;
use crate::error::VmError;
use crate::helpers::{HelperContext, HelperOutcome, Helpers};
use crate::interpreter::{Config, MAX_TAIL_CALLS, PacketState, RunResult, STACK_FRAME_SIZE};
use crate::memory::MemoryMap;
use crate::program::{FUNC_ADDR_TAG, Program};

/// Which engine runs a program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// The interpreter (the reference semantics; also the only engine that
    /// can trace every instruction).
    #[default]
    Interpreter,
    /// Native x86-64 code from the JIT.
    Jit,
}

/// Whether JIT-compiled code checks memory accesses at run time.
///
/// Checks are omitted only on the strength of the verifier's proof
/// ([`Vm::trust`](crate::Vm::trust), [`LoadedObject::trust`](crate::loaded::LoadedObject::trust)),
/// or through the `unsafe` [`Checks::trust_unproven`] that benchmarks of
/// programs beyond the verifier's reach use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    omitted: bool,
    /// Raw runs: the memory length the proof assumed (a run on memory of
    /// another length keeps its checks).
    mem_len: Option<u64>,
}

impl Checks {
    /// Every access checked (the default).
    pub const ON: Checks = Checks {
        omitted: false,
        mem_len: None,
    };

    /// Checks omitted for a program the verifier proved safe.
    pub(crate) fn proven(mem_len: Option<u64>) -> Checks {
        Checks {
            omitted: true,
            mem_len,
        }
    }

    /// No run-time memory checks in JIT code, without a proof.
    ///
    /// # Safety
    /// The program (and every program it tail-calls) must be memory-safe
    /// for the maps, program type and memory it will run with: an
    /// out-of-bounds access in unchecked native code corrupts the host
    /// process. Prefer the verifier's proof (`Vm::trust`).
    pub unsafe fn trust_unproven() -> Checks {
        Checks {
            omitted: true,
            mem_len: None,
        }
    }

    pub fn omitted(self) -> bool {
        self.omitted
    }

    /// The checks for a raw run on `len` bytes: a proof for another
    /// length does not apply.
    pub(crate) fn for_raw_len(self, len: u64) -> Checks {
        match self.mem_len {
            Some(n) if n != len => Checks::ON,
            _ => self,
        }
    }
}

/// Why a program could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("JIT: {message}")]
pub struct JitError {
    pub message: String,
}

impl JitError {
    pub(crate) fn new(message: String) -> JitError {
        JitError { message }
    }
}

/// Code generation variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mode {
    pub checked: bool,
    pub budget: bool,
    /// Count executed instructions (always true with a budget).
    pub count: bool,
    /// Constant blinding.
    pub blind: bool,
}

impl Mode {
    fn index(self) -> usize {
        self.checked as usize
            | (self.budget as usize) << 1
            | (self.count as usize) << 2
            | (self.blind as usize) << 3
    }
}

/// Compiled code of one program in one mode.
pub struct JitCode {
    /// Read+execute memory holding this program's code (and, for a batch,
    /// other programs' code too).
    mem: Arc<CodeMem>,
    /// Where this program's code starts in `mem`.
    base: usize,
    size: usize,
    entry: usize,
    body: usize,
    thunks: Option<usize>,
    len: usize,
    /// See `emit::Compiled::uses_fp`.
    uses_fp: bool,
    /// See `emit::Compiled::leaf`.
    leaf: bool,
}

impl std::fmt::Debug for JitCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JitCode({} bytes)", self.size)
    }
}

impl JitCode {
    /// Size of the machine code in bytes.
    pub fn code_size(&self) -> usize {
        self.size
    }

    /// The machine code (for disassembly and tests).
    pub fn bytes(&self) -> &[u8] {
        &self.mem[self.base..self.base + self.size]
    }

    fn addr(&self, off: usize) -> u64 {
        self.mem.as_ptr() as u64 + (self.base + off) as u64
    }

    fn entry_addr(&self) -> u64 {
        self.addr(self.entry)
    }

    fn body_addr(&self) -> u64 {
        self.addr(self.body)
    }

    fn thunk_addr(&self, pc: usize) -> Option<u64> {
        let t = self.thunks?;
        (pc < self.len).then(|| self.addr(t + emit::THUNK_SIZE * pc))
    }
}

/// A read+execute mapping of code. When the last program using it is
/// dropped, it is switched back to read+write and kept for the next
/// compilation of the same size (a protection change instead of a new
/// mapping and its page faults).
struct CodeMem(Option<memmap2::Mmap>);

impl std::ops::Deref for CodeMem {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}

/// Read+write mappings ready for reuse, with their sizes.
static CODE_POOL: std::sync::Mutex<Vec<memmap2::MmapMut>> = std::sync::Mutex::new(Vec::new());
/// Most mappings kept for reuse.
const CODE_POOL_MAX: usize = 256;

impl Drop for CodeMem {
    fn drop(&mut self) {
        if let Some(m) = self.0.take()
            && m.len() <= 1 << 20
            && let Ok(rw) = m.make_mut()
        {
            let mut pool = CODE_POOL.lock().unwrap_or_else(|p| p.into_inner());
            if pool.len() < CODE_POOL_MAX {
                pool.push(rw);
            }
        }
    }
}

/// A read+write mapping of exactly `len` bytes (a multiple of the page
/// size), reused from the pool when one is there.
fn rw_mapping(len: usize) -> Result<memmap2::MmapMut, JitError> {
    {
        let mut pool = CODE_POOL.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = pool.iter().position(|m| m.len() == len) {
            return Ok(pool.swap_remove(i));
        }
    }
    memmap2::MmapMut::map_anon(len)
        .map_err(|e| JitError::new(format!("cannot map memory for code: {e}")))
}

/// Places compiled programs in one read+execute mapping: written while
/// the mapping is read+write, then switched to read+execute (never both).
fn place(compiled: Vec<(emit::Compiled, usize)>) -> Result<Vec<Arc<JitCode>>, JitError> {
    let align = |n: usize| n.div_ceil(64) * 64;
    let total: usize = compiled.iter().map(|(c, _)| align(c.code.len())).sum();
    let mut rw = rw_mapping(total.max(1).div_ceil(4096) * 4096)?;
    let mut bases = Vec::with_capacity(compiled.len());
    let mut at = 0;
    for (c, _) in &compiled {
        rw[at..at + c.code.len()].copy_from_slice(&c.code);
        bases.push(at);
        at += align(c.code.len());
    }
    let mem = Arc::new(CodeMem(Some(rw.make_exec().map_err(|e| {
        JitError::new(format!("cannot make code executable: {e}"))
    })?)));
    Ok(compiled
        .into_iter()
        .zip(bases)
        .map(|((c, len), base)| {
            Arc::new(JitCode {
                mem: mem.clone(),
                base,
                size: c.code.len(),
                entry: c.entry,
                body: c.body,
                thunks: c.thunks,
                len,
                uses_fp: c.uses_fp,
                leaf: c.leaf,
            })
        })
        .collect())
}

/// Per-program cache of compiled code, one slot per [`Mode`].
#[derive(Clone, Debug, Default)]
pub(crate) struct JitCache {
    slots: [OnceLock<Result<Arc<JitCode>, JitError>>; 16],
}

/// The host CPU's optional instruction sets the code generator uses.
fn cpu() -> emit::Cpu {
    static CPU: OnceLock<emit::Cpu> = OnceLock::new();
    *CPU.get_or_init(|| emit::Cpu {
        bmi2: std::arch::is_x86_feature_detected!("bmi2"),
        avx2: std::arch::is_x86_feature_detected!("avx2"),
    })
}

/// Compiles a program now for runs with `config` (checked or not, with or
/// without a budget, counting instructions or not); later runs reuse the
/// code.
pub fn compile<'p>(program: &'p Program, config: &Config) -> Result<&'p JitCode, JitError> {
    code_for(program, Mode::of(config))
}

impl Mode {
    fn of(config: &Config) -> Mode {
        let budget = config.instruction_budget.is_some();
        Mode {
            checked: !config.checks.omitted(),
            budget,
            count: budget || config.count_instructions,
            blind: config.blind_constants,
        }
    }
}

/// The program's code for `mode`, compiled on first use; it lives as long
/// as the program (the cache owns it).
pub(crate) fn code_for(program: &Program, mode: Mode) -> Result<&JitCode, JitError> {
    match program.jit.slots[mode.index()].get_or_init(|| {
        let compiled = emit::compile(&program.ops, mode, cpu())?;
        let len = program.ops.len() - 1;
        Ok(place(vec![(compiled, len)])?.remove(0))
    }) {
        Ok(code) => Ok(code),
        Err(e) => Err(e.clone()),
    }
}

/// Whether `program` already has code for runs with `config`.
pub(crate) fn is_compiled(program: &Program, config: &Config) -> bool {
    program.jit.slots[Mode::of(config).index()].get().is_some()
}

/// Compiles several programs (an object's, which may tail-call each other)
/// into one executable mapping: one map and one protection change for all,
/// instead of one each. Programs already compiled for `config` are skipped.
pub fn compile_all(programs: &[&Program], config: &Config) -> Result<(), JitError> {
    let mode = Mode::of(config);
    let todo: Vec<&Program> = programs
        .iter()
        .copied()
        .filter(|p| p.jit.slots[mode.index()].get().is_none())
        .collect();
    if todo.is_empty() {
        return Ok(());
    }
    let compiled = todo
        .iter()
        .map(|p| Ok((emit::compile(&p.ops, mode, cpu())?, p.ops.len() - 1)))
        .collect::<Result<Vec<_>, JitError>>()?;
    for (p, code) in todo.iter().zip(place(compiled)?) {
        // A concurrent compile may have won; either code is equivalent.
        let _ = p.jit.slots[mode.index()].set(Ok(code));
    }
    Ok(())
}

/// The context the generated code works with (`r12`). Field order is part
/// of the code generator's contract (offsets in [`off`]).
#[repr(C)]
#[derive(Default)]
pub(crate) struct JitCtx {
    result: u64,
    executed: u64,
    budget: u64,
    saved_rsp: u64,
    stack_lo: u64,
    stack_hi: u64,
    depth_left: u64,
    /// The region of the last checked read (and write) outside the stack:
    /// start and length (start = u64::MAX when empty). Near the start, with
    /// the stack bounds, so the inline checks address them with 8-bit
    /// displacements.
    rcache_lo: u64,
    rcache_len: u64,
    wcache_lo: u64,
    wcache_len: u64,
    regs: [u64; 11],
    call_info: u64,
    call_id: u64,
    err_info: u64,
    check_addr: u64,
    pkt_data: u64,
    pkt_len: u64,
    has_pkt: u64,
    tail_entry: u64,
    helper_fn: u64,
    check_fn: u64,
    save_rdx: u64,
    save_rax: u64,
    save_src: u64,
    /// Lowest frame bottom of the run (the stack below it stays zero).
    min_lo: u64,
}

/// Byte offsets of [`JitCtx`] fields, for the code generator.
pub(crate) mod off {
    use super::JitCtx;
    use std::mem::offset_of;
    pub const RESULT: i32 = offset_of!(JitCtx, result) as i32;
    pub const EXECUTED: i32 = offset_of!(JitCtx, executed) as i32;
    pub const BUDGET: i32 = offset_of!(JitCtx, budget) as i32;
    pub const SAVED_RSP: i32 = offset_of!(JitCtx, saved_rsp) as i32;
    pub const STACK_LO: i32 = offset_of!(JitCtx, stack_lo) as i32;
    pub const STACK_HI: i32 = offset_of!(JitCtx, stack_hi) as i32;
    pub const DEPTH_LEFT: i32 = offset_of!(JitCtx, depth_left) as i32;
    pub const REGS: i32 = offset_of!(JitCtx, regs) as i32;
    pub const CALL_INFO: i32 = offset_of!(JitCtx, call_info) as i32;
    pub const CALL_ID: i32 = offset_of!(JitCtx, call_id) as i32;
    pub const ERR_INFO: i32 = offset_of!(JitCtx, err_info) as i32;
    pub const CHECK_ADDR: i32 = offset_of!(JitCtx, check_addr) as i32;
    pub const PKT_DATA: i32 = offset_of!(JitCtx, pkt_data) as i32;
    pub const PKT_LEN: i32 = offset_of!(JitCtx, pkt_len) as i32;
    pub const HAS_PKT: i32 = offset_of!(JitCtx, has_pkt) as i32;
    pub const TAIL_ENTRY: i32 = offset_of!(JitCtx, tail_entry) as i32;
    pub const HELPER_FN: i32 = offset_of!(JitCtx, helper_fn) as i32;
    pub const CHECK_FN: i32 = offset_of!(JitCtx, check_fn) as i32;
    pub const SAVE_RDX: i32 = offset_of!(JitCtx, save_rdx) as i32;
    pub const SAVE_RAX: i32 = offset_of!(JitCtx, save_rax) as i32;
    pub const SAVE_SRC: i32 = offset_of!(JitCtx, save_src) as i32;
    pub const RCACHE_LO: i32 = offset_of!(JitCtx, rcache_lo) as i32;
    pub const RCACHE_LEN: i32 = offset_of!(JitCtx, rcache_len) as i32;
    pub const WCACHE_LO: i32 = offset_of!(JitCtx, wcache_lo) as i32;
    pub const WCACHE_LEN: i32 = offset_of!(JitCtx, wcache_len) as i32;
    pub const MIN_LO: i32 = offset_of!(JitCtx, min_lo) as i32;
}

/// Everything a run needs besides the code; the generated code's calls
/// into Rust reach it through the [`JitCtx`] at its start.
#[repr(C)]
pub(crate) struct Runtime<'r, 'm> {
    ctx: JitCtx,
    mem: &'r mut MemoryMap<'m>,
    helpers: &'r Helpers,
    env: Option<&'r Env>,
    packet: Option<PacketState>,
    program: &'r Program,
    /// The running program's code (it changes with tail calls; every
    /// program's code is owned by its cache, which outlives the run).
    code: &'r JitCode,
    mode: Mode,
    depth: usize,
    budget: u64,
    tail_calls: u32,
    stack_top: u64,
    /// Whether a program of the run (the first or a tail-call target)
    /// names r10, so the stack may have been written.
    uses_fp: bool,
    error: Option<VmError>,
}

/// Runs `program` with JIT-compiled code; the same contract as
/// [`crate::interpreter::run`].
pub(crate) fn run(
    program: &Program,
    helpers: &Helpers,
    config: &Config,
    memory: MemoryMap<'_>,
    args: [u64; 5],
    env: Option<&Env>,
    packet: Option<PacketState>,
) -> Result<RunResult, VmError> {
    let code = code_for(program, Mode::of(config))
        .map_err(|e| VmError::JitFailed { message: e.message })?;
    let depth = config.max_call_depth.max(1);
    let dirty_from = std::cell::Cell::new(0);
    let mut stack = crate::memory::PooledStack::take(STACK_FRAME_SIZE * depth, &dirty_from);
    let mut memory = memory;
    // Only the current frame is accessible at first; calls extend it.
    let stack_top = memory.add_stack_front(stack.bytes(), STACK_FRAME_SIZE);
    let run = Run {
        program,
        helpers,
        config,
        code,
        depth,
        stack_top,
    };
    run.go(&mut memory, &dirty_from, args, env, packet)
}

/// [`run`] on raw memory (`Vm::run_raw`): the memory map is built here,
/// stack first, and used in place (moving a just-built map into the run
/// cost more than the rest of a short run: partial store forwarding).
pub(crate) fn run_raw(
    program: &Program,
    helpers: &Helpers,
    config: &Config,
    mem: &mut [u8],
) -> Result<RunResult, VmError> {
    let code = code_for(program, Mode::of(config))
        .map_err(|e| VmError::JitFailed { message: e.message })?;
    if code.leaf {
        return run_leaf(program, config, code, mem);
    }
    let depth = config.max_call_depth.max(1);
    let dirty_from = std::cell::Cell::new(0);
    let mut stack = crate::memory::PooledStack::take(STACK_FRAME_SIZE * depth, &dirty_from);
    let mut memory = MemoryMap::new();
    let stack_top = memory.add_stack_front(stack.bytes(), STACK_FRAME_SIZE);
    let len = mem.len() as u64;
    let start = memory.add_mut(crate::memory::RegionKind::Input, mem);
    // An empty input is passed as a null pointer (as `Vm::run_raw` does).
    let start = if len == 0 { 0 } else { start };
    let run = Run {
        program,
        helpers,
        config,
        code,
        depth,
        stack_top,
    };
    let packet = Some(PacketState::plain(start, len));
    // Returned as is: the result is written once, into the caller's slot.
    run.go(
        &mut memory,
        &dirty_from,
        [start, len, 0, 0, 0],
        None,
        packet,
    )
}

/// A raw run of leaf code (`emit::Compiled::leaf`): no stack (the program
/// never names r10), no memory map (nothing is checked and no helper
/// runs), no runtime — a bare context for the entry routine.
fn run_leaf(
    program: &Program,
    config: &Config,
    code: &JitCode,
    mem: &mut [u8],
) -> Result<RunResult, VmError> {
    let len = mem.len() as u64;
    // An empty input is passed as a null pointer (as `Vm::run_raw` does).
    let start = if len == 0 { 0 } else { mem.as_mut_ptr() as u64 };
    // Leaf code has no budget and no checks: none of the fields a run
    // context otherwise starts with matter.
    let mut ctx = JitCtx::default();
    let (entry, body) = (code.entry_addr(), code.body_addr());
    // r10 = 0: leaf code never reads it.
    let r0 = exec::enter_leaf(&mut ctx, code, entry, [start, len, 0, 0, 0], 0, body);
    let depth = config.max_call_depth.max(1);
    let budget = config.instruction_budget.unwrap_or(u64::MAX);
    if let Some(e) = error_of(ctx.err_info, program, budget, depth) {
        return Err(e);
    }
    Ok(RunResult {
        r0,
        executed: if Mode::of(config).count {
            ctx.executed
        } else {
            0
        },
        packet: Some(PacketState::plain(start, len)),
    })
}

/// What a run needs besides its memory.
struct Run<'r> {
    program: &'r Program,
    helpers: &'r Helpers,
    config: &'r Config,
    code: &'r JitCode,
    depth: usize,
    stack_top: u64,
}

impl Run<'_> {
    /// Enters the code; sets `dirty_from` to the stack offset below which
    /// the run wrote nothing. Inlined into both callers, so the packet and
    /// the result are built in place rather than copied.
    #[inline(always)]
    fn go(
        self,
        memory: &mut MemoryMap<'_>,
        dirty_from: &std::cell::Cell<usize>,
        args: [u64; 5],
        env: Option<&Env>,
        packet: Option<PacketState>,
    ) -> Result<RunResult, VmError> {
        let Run {
            program,
            helpers,
            config,
            code,
            depth,
            stack_top,
        } = self;
        let budget = config.instruction_budget.unwrap_or(u64::MAX);
        let mode = Mode::of(config);
        let mut rt = Runtime {
            ctx: JitCtx {
                budget,
                stack_lo: stack_top - STACK_FRAME_SIZE as u64,
                stack_hi: stack_top,
                depth_left: depth as u64 - 1,
                rcache_lo: u64::MAX,
                wcache_lo: u64::MAX,
                min_lo: stack_top - STACK_FRAME_SIZE as u64,
                ..JitCtx::default()
            },
            mem: memory,
            helpers,
            env,
            packet,
            program,
            code,
            mode,
            depth,
            budget,
            tail_calls: 0,
            stack_top,
            // Checked code runs unverified programs, which can write the
            // stack through an address kept from an earlier run (in a map,
            // say) without naming r10: only verified code may skip zeroing.
            uses_fp: code.uses_fp || mode.checked,
            error: None,
        };
        rt.sync_packet();
        let (entry, body) = (code.entry_addr(), code.body_addr());
        let r0 = exec::enter(&mut rt, entry, args, stack_top, body);
        let stack_base = stack_top - (STACK_FRAME_SIZE * depth) as u64;
        dirty_from.set(if rt.uses_fp {
            rt.ctx.min_lo.saturating_sub(stack_base) as usize
        } else {
            STACK_FRAME_SIZE * depth
        });
        match rt.take_error() {
            Some(e) => Err(e),
            None => Ok(RunResult {
                r0,
                // Uncounted code uses the counter register as scratch.
                executed: if rt.mode.count { rt.ctx.executed } else { 0 },
                packet: rt.packet,
            }),
        }
    }
}

/// The error generated code reported in `err_info` (none when 0).
fn error_of(info: u64, program: &Program, budget: u64, depth: usize) -> Option<VmError> {
    if info == 0 {
        return None;
    }
    let pc = (info & 0xffff_ffff) as usize;
    Some(match info >> 32 {
        emit::err::BUDGET => VmError::BudgetExhausted { pc, budget },
        emit::err::DEPTH => VmError::CallDepthExceeded { pc, limit: depth },
        emit::err::KFUNC => VmError::KfuncUnsupported {
            pc,
            btf_id: program.ops.get(pc).map_or(0, |o| o.imm as i32),
        },
        emit::err::UNRESOLVED => VmError::UnresolvedReference { pc },
        emit::err::NO_PACKET => VmError::NoPacket { pc },
        _ => VmError::FellOffEnd { pc },
    })
}

impl Runtime<'_, '_> {
    fn sync_packet(&mut self) {
        match self.packet {
            Some(p) => {
                self.ctx.pkt_data = p.data;
                self.ctx.pkt_len = p.len();
                self.ctx.has_pkt = 1;
            }
            None => self.ctx.has_pkt = 0,
        }
    }

    /// Makes the memory map's stack region match the generated code's view
    /// (the frames of the current call chain).
    fn sync_stack(&mut self) {
        let lo = self.ctx.stack_lo;
        self.mem.set_front(lo, self.stack_top - lo);
    }

    fn take_error(&mut self) -> Option<VmError> {
        if let Some(e) = self.error.take() {
            return Some(e);
        }
        let info = std::mem::take(&mut self.ctx.err_info);
        error_of(info, self.program, self.budget, self.depth)
    }

    /// Called by generated code for a memory access outside the current
    /// stack frames: 0 when the access is allowed, 1 after recording a fault.
    fn on_check(&mut self, addr: u64, info: u64) -> u64 {
        self.sync_stack();
        let size = (info >> 1) & 0x7f;
        let write = info & 1 != 0;
        match self.mem.check(addr, size, write) {
            Ok(()) => {
                // Remember the region for the inline check of the next
                // access (never the stack, whose bounds move with calls).
                if let Some(r) = self.mem.regions()[1..]
                    .iter()
                    .find(|r| addr.wrapping_sub(r.start) < r.len && (r.writable || !write))
                {
                    if write {
                        (self.ctx.wcache_lo, self.ctx.wcache_len) = (r.start, r.len);
                    } else {
                        (self.ctx.rcache_lo, self.ctx.rcache_len) = (r.start, r.len);
                    }
                }
                0
            }
            Err(fault) => {
                self.error = Some(VmError::MemoryFault {
                    pc: (info >> 8) as usize,
                    fault,
                });
                1
            }
        }
    }

    /// Called by generated code for a helper call. Returns 0 to continue
    /// (r0 in `regs[0]`), 1 to unwind (error or early exit), 2 to jump to
    /// `tail_entry`.
    fn on_helper(&mut self) -> u64 {
        let info = self.ctx.call_info;
        let pc = (info & 0xffff_ffff) as usize;
        let rem = (info >> 32) & 0x7fff_ffff;
        let via_callx = info & emit::CALLX_FLAG != 0;
        let id = self.ctx.call_id;
        // Helpers may move regions (the packet): forget the cached ones.
        (self.ctx.rcache_lo, self.ctx.rcache_len) = (u64::MAX, 0);
        (self.ctx.wcache_lo, self.ctx.wcache_len) = (u64::MAX, 0);
        match self.helper(pc, id, via_callx) {
            Ok(HelperOutcome::Return(v)) => {
                self.ctx.regs[0] = v;
                0
            }
            Ok(HelperOutcome::Exit(v)) => {
                self.ctx.result = v;
                self.ctx.executed -= rem;
                1
            }
            Ok(HelperOutcome::TailCall { program }) => {
                let target = self.env.and_then(|e| e.programs.get(program as usize));
                match target {
                    Some(p) if self.tail_calls < MAX_TAIL_CALLS => match code_for(p, self.mode) {
                        Ok(code) => {
                            self.tail_calls += 1;
                            self.ctx.tail_entry = code.body_addr();
                            self.ctx.executed -= rem;
                            self.code = code;
                            self.program = p;
                            self.uses_fp |= code.uses_fp;
                            2
                        }
                        Err(e) => {
                            self.error = Some(VmError::JitFailed { message: e.message });
                            1
                        }
                    },
                    _ => {
                        self.ctx.regs[0] = (-2i64) as u64;
                        0
                    }
                }
            }
            Ok(HelperOutcome::Loop { nr, callback, ctx }) => {
                let fp = self.ctx.regs[10];
                let mut i = 0;
                while i < nr {
                    match self.callback(callback, [i, ctx, 0, 0, 0], fp, pc) {
                        Ok(ret) => {
                            i += 1;
                            if ret != 0 {
                                break;
                            }
                        }
                        Err(e) => {
                            self.error = Some(e);
                            return 1;
                        }
                    }
                }
                self.ctx.regs[0] = i;
                0
            }
            Ok(HelperOutcome::ForEach { map, callback, ctx }) => {
                let fp = self.ctx.regs[10];
                let env = self.env;
                self.sync_stack();
                let mut host = JitHost { rt: self, pc };
                match crate::interpreter::for_each_elem(&mut host, env, map, callback, ctx, fp, pc)
                {
                    Ok(n) => {
                        self.ctx.regs[0] = n;
                        0
                    }
                    Err(e) => {
                        self.error = Some(e);
                        1
                    }
                }
            }
            Err(e) => {
                self.error = Some(e);
                1
            }
        }
    }

    fn helper(&mut self, pc: usize, id: u64, via_callx: bool) -> Result<HelperOutcome, VmError> {
        self.sync_stack();
        let helper = u32::try_from(id)
            .ok()
            .and_then(|id32| self.helpers.get(id32))
            .ok_or(VmError::UnknownHelper { pc, id })?;
        let r = &self.ctx.regs;
        let args = [r[1], r[2], r[3], r[4], r[5]];
        let mut hctx = HelperContext {
            memory: self.mem,
            pc,
            env: self.env,
            packet: &mut self.packet,
        };
        let out =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| helper(&mut hctx, args)));
        self.sync_packet();
        match out {
            Ok(Ok(o)) => match o {
                HelperOutcome::Return(_) | HelperOutcome::Exit(_) => Ok(o),
                _ if via_callx => Err(VmError::UnknownHelper { pc, id }),
                _ => Ok(o),
            },
            Ok(Err(e)) => Err(VmError::HelperFailed {
                pc,
                id: id as u32,
                message: e.message,
            }),
            Err(_) => Err(VmError::HelperFailed {
                pc,
                id: id as u32,
                message: "helper panicked".into(),
            }),
        }
    }

    /// Runs the subprogram at function address `callback` in a new frame
    /// below `fp`; returns its r0. Mirrors the interpreter's callbacks.
    fn callback(
        &mut self,
        callback: u64,
        args: [u64; 5],
        fp: u64,
        pc: usize,
    ) -> Result<u64, VmError> {
        let target = (callback & 0xffff_ffff) as usize;
        let addr = (callback & !0xffff_ffff == FUNC_ADDR_TAG)
            .then(|| self.code.thunk_addr(target))
            .flatten();
        let Some(addr) = addr else {
            return Err(VmError::HelperFailed {
                pc,
                id: 0,
                message: format!("callback {callback:#x} is not a function address"),
            });
        };
        if self.ctx.depth_left == 0 {
            return Err(VmError::CallDepthExceeded {
                pc,
                limit: self.depth,
            });
        }
        let saved_regs = self.ctx.regs;
        let saved = (self.ctx.depth_left, self.ctx.budget, self.ctx.stack_lo);
        self.ctx.depth_left -= 1;
        self.ctx.budget = u64::MAX;
        self.sync_stack();
        self.mem.resize_front(STACK_FRAME_SIZE as i64);
        self.ctx.stack_lo = self.mem.regions()[0].start;
        self.ctx.min_lo = self.ctx.min_lo.min(self.ctx.stack_lo);
        let code = self.code;
        let r0 = exec::enter(
            self,
            code.entry_addr(),
            args,
            fp - STACK_FRAME_SIZE as u64,
            addr,
        );
        (self.ctx.depth_left, self.ctx.budget, self.ctx.stack_lo) = saved;
        self.ctx.regs = saved_regs;
        self.sync_stack();
        match self.take_error() {
            Some(e) => Err(e),
            None => Ok(r0),
        }
    }
}

struct JitHost<'a, 'r, 'm> {
    rt: &'a mut Runtime<'r, 'm>,
    pc: usize,
}

impl crate::interpreter::CallbackHost for JitHost<'_, '_, '_> {
    fn memory(&self) -> &MemoryMap<'_> {
        self.rt.mem
    }

    fn call(&mut self, callback: u64, args: [u64; 5], fp: u64) -> Result<u64, VmError> {
        self.rt.callback(callback, args, fp, self.pc)
    }
}
