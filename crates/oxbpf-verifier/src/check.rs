//! The verifier proper: a depth-first walk over every path, with states
//! pruned against states already proven safe at the same instruction.

use std::collections::HashMap;

use oxbpf_abi::{helper, map_type};
use oxbpf_isa::{Instruction, RawInsn, decode_at};
use oxbpf_obj::ProgramType;

use crate::protos::{Arg, Field, Ret, ctx_field, ctx_size};
use crate::scalar::Scalar;
use crate::state::{
    CallbackSite, Frame, Gone, Kind, LockState, RefKind, RefState, Reg, State, byte, covers,
    widen_frames,
};
use crate::{MapInfo, Options, Rejection, Report};

const STACK: i64 = 512;

/// A stored state at an instruction, with the number of live paths that
/// still pass through it: it may prune other paths only once complete.
struct Checkpoint {
    state: State,
    live: u32,
    /// Hash of the state as the code ahead sees it (live registers only),
    /// so the infinite-loop check compares full states only when it may match.
    hash: u64,
    parent: Option<usize>,
    /// Times this (complete) state pruned a path, and times it did not.
    hits: u32,
    misses: u32,
}

/// Hash of what matters in `st` at an instruction with live registers `live`.
fn state_hash(st: &State, live: u16) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let top = st.frames.len() - 1;
    for (fi, f) in st.frames.iter().enumerate() {
        for (ri, r) in f.regs.iter().enumerate() {
            if fi == top && live & (1 << ri) == 0 {
                continue;
            }
            r.kind.hash(&mut h);
            r.off.hash(&mut h);
            r.var.hash(&mut h);
            r.range.hash(&mut h);
        }
        h.write(&f.stack.bytes);
        f.stack.spills.len().hash(&mut h);
        f.ret_pc.hash(&mut h);
    }
    h.finish()
}

struct Path {
    pc: usize,
    state: State,
    /// The last checkpoint this path passed through; checkpoints form a
    /// tree by their `parent`, and a checkpoint's `live` counts the live
    /// paths and incomplete children below it.
    last: Option<usize>,
    /// Branch decisions, for diagnostics.
    trail: Vec<(usize, bool)>,
}

struct Verifier<'a> {
    insns: &'a [RawInsn],
    opts: &'a Options,
    checkpoints: Vec<Checkpoint>,
    at: HashMap<usize, Vec<usize>>,
    prune_points: Vec<bool>,
    /// Registers live on entry to each instruction (bit i = ri).
    live: Vec<u16>,
    processed: u64,
    log: Vec<String>,
    /// Instructions a rejection is also about (set just before returning
    /// the error that names them).
    related: Vec<(usize, String)>,
    /// Entry instructions of callbacks (`lddw rX, func` targets): a path
    /// that comes back there inside a callback frame, covered by a state
    /// still being explored, has converged (the helper calls the callback
    /// a bounded number of times).
    callback_entry: Vec<bool>,
    /// Per global function: whether it (or anything it calls) may change
    /// packet data, which invalidates the caller's packet pointers.
    global_changes_pkt: Vec<bool>,
}

type VResult<T> = Result<T, (usize, String)>;

fn err<T>(pc: usize, msg: impl Into<String>) -> VResult<T> {
    Err((pc, msg.into()))
}

/// Verifies a program (linked instructions, map references as
/// `BPF_PSEUDO_MAP_IDX(_VALUE)` or fds taken as indices).
pub fn verify(insns: &[RawInsn], opts: &Options) -> Result<Report, Box<Rejection>> {
    let mut report = verify_entry(insns, opts)?;
    if opts.entry.is_none() {
        for i in 0..opts.global_funcs.len() {
            let o = Options {
                entry: Some(i),
                ..opts.clone()
            };
            let r = verify_entry(insns, &o).map_err(|mut e| {
                e.message = format!(
                    "in global function {}: {}",
                    opts.global_funcs[i].name, e.message
                );
                e.insns_processed += report.insns_processed;
                e
            })?;
            report.insns_processed += r.insns_processed;
            report.states += r.states;
            report.log.extend(r.log);
        }
    }
    Ok(report)
}

fn verify_entry(insns: &[RawInsn], opts: &Options) -> Result<Report, Box<Rejection>> {
    let mut v = Verifier {
        insns,
        opts,
        checkpoints: Vec::new(),
        at: HashMap::new(),
        prune_points: vec![false; insns.len() + 1],
        live: Vec::new(),
        processed: 0,
        log: Vec::new(),
        related: Vec::new(),
        callback_entry: vec![false; insns.len() + 1],
        global_changes_pkt: Vec::new(),
    };
    match v.run() {
        Ok(()) => Ok(Report {
            insns_processed: v.processed,
            states: v.checkpoints.len() as u64,
            log: v.log,
        }),
        Err((pc, message, regs, trail)) => Err(Box::new(Rejection {
            pc,
            insn: decode_at(insns, pc.min(insns.len().saturating_sub(1)))
                .map(|i| i.to_string())
                .unwrap_or_default(),
            message,
            regs,
            path: trail,
            insns_processed: v.processed,
            log: v.log,
            related: v.related,
        })),
    }
}

type Failure = (usize, String, Vec<(u8, String)>, Vec<(usize, bool)>);

impl<'a> Verifier<'a> {
    fn run(&mut self) -> Result<(), Failure> {
        let n = self.insns.len();
        if n == 0 {
            return Err((0, "the program is empty".into(), vec![], vec![]));
        }
        // Structure: decoding, jump targets, reachable code, last insn.
        let mut is_start = vec![false; n];
        let mut i = 0;
        let mut decoded: Vec<Option<Instruction>> = vec![None; n];
        while i < n {
            let insn = decode_at(self.insns, i).map_err(|e| (i, e.to_string(), vec![], vec![]))?;
            is_start[i] = true;
            decoded[i] = Some(insn);
            i += insn.slots();
        }
        for (pc, d) in decoded.iter().enumerate() {
            let Some(insn) = d else { continue };
            if let Some(rel) = insn.branch_offset() {
                let t = pc as i64 + 1 + rel;
                if t < 0 || t >= n as i64 || !is_start[t as usize] {
                    return Err((
                        pc,
                        format!("jump out of range from insn {pc} to {t}"),
                        vec![],
                        vec![],
                    ));
                }
                self.prune_points[t as usize] = true;
                if !matches!(insn, Instruction::Call(_) | Instruction::LoadImm64 { .. }) {
                    self.prune_points[pc + 1] = true;
                }
            }
        }
        self.live = liveness(&decoded, n);
        for (pc, d) in decoded.iter().enumerate() {
            if let Some(Instruction::LoadImm64 {
                imm: oxbpf_isa::Imm64::Func(rel),
                ..
            }) = d
            {
                let t = pc as i64 + 1 + *rel as i64;
                if t >= 0 && (t as usize) < n {
                    self.callback_entry[t as usize] = true;
                }
            }
        }
        self.global_changes_pkt = self
            .opts
            .global_funcs
            .iter()
            .map(|g| may_change_packet(&decoded, n, g.pc))
            .collect();
        // Unreachable instructions are rejected, as the kernel does.
        let reach = reachable(&decoded, n);
        if let Some(pc) = (0..n).find(|&p| is_start[p] && !reach[p]) {
            return Err((pc, format!("unreachable insn {pc}"), vec![], vec![]));
        }
        let mut st = State::entry();
        {
            let f = st.cur_mut();
            f.regs[1] = match (self.opts.prog_type, self.opts.raw_mem_len) {
                (ProgramType::Unspec, Some(len)) => Reg::ptr(Kind::Mem {
                    size: len as u32,
                    writable: true,
                }),
                _ => Reg::ptr(Kind::Ctx),
            };
            if let (ProgramType::Unspec, Some(len)) = (self.opts.prog_type, self.opts.raw_mem_len) {
                f.regs[2] = Reg::konst(len);
            }
        }
        let mut entry_pc = 0;
        if let Some(g) = self.opts.entry.and_then(|i| self.opts.global_funcs.get(i)) {
            entry_pc = g.pc;
            let mut regs = [Reg::NOT_INIT; 5];
            for (i, a) in g.args.iter().enumerate().take(5) {
                regs[i] = match a {
                    crate::GlobalArg::Scalar => Reg::unknown(),
                    crate::GlobalArg::Ctx => Reg::ptr(Kind::Ctx),
                    crate::GlobalArg::Mem { size } => {
                        let mut r = Reg::ptr(Kind::MemOrNull { size: *size });
                        r.id = st.fresh_id();
                        r
                    }
                };
            }
            st.cur_mut().regs[1..6].copy_from_slice(&regs);
        }
        let mut stack = vec![Path {
            pc: entry_pc,
            state: st,
            last: None,
            trail: Vec::new(),
        }];
        while let Some(mut path) = stack.pop() {
            loop {
                self.processed += 1;
                if self.processed > self.opts.max_insns_processed {
                    return Err(self.fail(
                        &path,
                        format!(
                            "the program is too complex: {} instructions processed (limit {})",
                            self.processed - 1,
                            self.opts.max_insns_processed
                        ),
                    ));
                }
                let pc = path.pc;
                if pc >= n {
                    return Err(self.fail(
                        &path,
                        "execution falls off the end of the program".to_string(),
                    ));
                }
                if self.prune_points[pc] {
                    match self.visit(&mut path) {
                        Visit::Pruned => {
                            self.end_path(&path);
                            break;
                        }
                        Visit::Loop => {
                            return Err(self.fail(&path, "infinite loop detected".to_string()));
                        }
                        Visit::Continue => {}
                    }
                }
                let before = if self.opts.log {
                    Some(path.state.cur().regs)
                } else {
                    None
                };
                let result =
                    self.step(&mut path, decoded[pc].expect("reachable insns are decoded"));
                if let Some(before) = before {
                    // One line per step: the instruction and the registers
                    // it changed, in the current frame.
                    let text = decoded[pc].map(|i| i.to_string()).unwrap_or_default();
                    let mut line = format!("{pc}: {text}");
                    if let Some(f) = path.state.frames.last() {
                        for (i, (b, a)) in before.iter().zip(&f.regs).enumerate() {
                            if b != a && a.kind != Kind::NotInit {
                                line.push_str(&format!(" ; R{i}={a}"));
                            }
                        }
                    }
                    if self.log.len() < 100_000 {
                        self.log.push(line);
                    }
                }
                match result {
                    Ok(Step::Next(extra)) => {
                        for p in extra {
                            if let Some(c) = p.last {
                                self.checkpoints[c].live += 1;
                            }
                            stack.push(p);
                        }
                    }
                    Ok(Step::Done) => {
                        self.end_path(&path);
                        break;
                    }
                    Err((epc, msg)) => {
                        path.pc = epc;
                        return Err(self.fail(&path, msg));
                    }
                }
            }
        }
        Ok(())
    }

    fn fail(&self, path: &Path, msg: String) -> Failure {
        let regs = path
            .state
            .frames
            .last()
            .map(|f| {
                f.regs
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.kind != Kind::NotInit)
                    .map(|(i, r)| (i as u8, r.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        (path.pc, msg, regs, path.trail.clone())
    }

    /// A path ended: its checkpoint loses a live path; checkpoints that
    /// become complete release their parent in turn.
    fn end_path(&mut self, path: &Path) {
        let mut at = path.last;
        while let Some(c) = at {
            let cp = &mut self.checkpoints[c];
            cp.live = cp.live.saturating_sub(1);
            if cp.live > 0 {
                break;
            }
            at = cp.parent;
        }
    }

    fn is_ancestor(&self, c: usize, mut at: Option<usize>) -> bool {
        while let Some(x) = at {
            if x == c {
                return true;
            }
            at = self.checkpoints[x].parent;
        }
        false
    }

    fn visit(&mut self, path: &mut Path) -> Visit {
        let pc = path.pc;
        let live = self.live.get(pc).copied().unwrap_or(u16::MAX);
        let hash = state_hash(&path.state, live);
        // The list is taken out while it is scanned (the scan reads other
        // checkpoints) and put back before returning.
        let mut list = self.at.remove(&pc).unwrap_or_default();
        let mut verdict = None;
        let mut useless = false;
        // Newest first: a path usually meets the state its sibling stored
        // most recently.
        for &c in list.iter().rev() {
            let cp = &self.checkpoints[c];
            if cp.live == 0 {
                if covers(&cp.state, &path.state, live) {
                    self.checkpoints[c].hits += 1;
                    verdict = Some(Visit::Pruned);
                    break;
                }
                let cp = &mut self.checkpoints[c];
                cp.misses += 1;
                useless |= cp.misses > cp.hits * 3 + 3;
            } else if self.callback_entry[pc]
                && path.state.cur().site.is_some()
                && covers(&cp.state, &path.state, live)
                && self.is_ancestor(c, path.last)
            {
                // A callback entered again in a state an earlier call of
                // the same path covers: the calls have converged.
                self.checkpoints[c].hits += 1;
                verdict = Some(Visit::Pruned);
                break;
            } else if cp.hash == hash
                && covers(&cp.state, &path.state, live)
                && covers(&path.state, &cp.state, live)
                && self.is_ancestor(c, path.last)
            {
                // Back to a state this path is still exploring, unchanged
                // in everything that matters: it loops forever.
                verdict = Some(Visit::Loop);
                break;
            }
        }
        // Like the kernel, forget complete states that keep failing to
        // prune: they only cost comparisons.
        if useless {
            let cps = &self.checkpoints;
            list.retain(|&c| {
                let cp = &cps[c];
                cp.live > 0 || cp.misses <= cp.hits * 3 + 3
            });
        }
        if let Some(v) = verdict {
            self.at.insert(pc, list);
            return v;
        }
        self.at.insert(pc, list);
        // Bound the number of stored states per instruction.
        let list = self.at.entry(pc).or_default();
        if list.len() < 4096 {
            let id = self.checkpoints.len();
            // The path moves from its last checkpoint to this one, which
            // (incomplete) keeps the parent live in its place.
            self.checkpoints.push(Checkpoint {
                state: path.state.clone(),
                live: 1,
                hash,
                parent: path.last,
                hits: 0,
                misses: 0,
            });
            list.push(id);
            path.last = Some(id);
        }
        Visit::Continue
    }
}

enum Visit {
    Pruned,
    Loop,
    Continue,
}

enum Step {
    /// Continue this path; also explore these.
    Next(Vec<Path>),
    Done,
}

/// Registers read before written, per instruction (backward dataflow to a
/// fixpoint). Calls read r1..r5 and clobber r0..r5; exits read r0.
fn liveness(decoded: &[Option<Instruction>], n: usize) -> Vec<u16> {
    use oxbpf_isa::Source;
    let mut uses = vec![0u16; n];
    let mut defs = vec![0u16; n];
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let bit = |r: oxbpf_isa::Reg| 1u16 << r.index();
    for pc in 0..n {
        let Some(insn) = decoded[pc] else { continue };
        let next = pc + insn.slots();
        let rel = |o: i64| (pc as i64 + 1 + o) as usize;
        let (u, d, s): (u16, u16, Vec<usize>) = match insn {
            Instruction::Alu { op, dst, src, .. } => {
                let su = if let Source::Reg(r) = src { bit(r) } else { 0 };
                let du = if op == oxbpf_isa::AluOp::Mov {
                    0
                } else {
                    bit(dst)
                };
                (su | du, bit(dst), vec![next])
            }
            Instruction::MovSx { dst, src, .. } => (bit(src), bit(dst), vec![next]),
            Instruction::Neg { dst, .. } | Instruction::Endian { dst, .. } => {
                (bit(dst), bit(dst), vec![next])
            }
            Instruction::LoadImm64 { dst, imm } => {
                let mut s = vec![next];
                if let oxbpf_isa::Imm64::Func(r) = imm {
                    s.push(rel(r as i64));
                }
                (0, bit(dst), s)
            }
            Instruction::Load { dst, src, .. } => (bit(src), bit(dst), vec![next]),
            Instruction::Store { dst, src, .. } => {
                let su = if let Source::Reg(r) = src { bit(r) } else { 0 };
                (bit(dst) | su, 0, vec![next])
            }
            Instruction::Atomic { dst, src, op, .. } => {
                let r0 = if op == oxbpf_isa::AtomicOp::Cmpxchg {
                    1
                } else {
                    0
                };
                (bit(dst) | bit(src) | r0, bit(src) | r0, vec![next])
            }
            Instruction::LoadPacket { addr, .. } => {
                let su = if let oxbpf_isa::PacketAddr::Ind { src, .. } = addr {
                    bit(src)
                } else {
                    0
                };
                (su | (1 << 6), 0b11_1111, vec![next])
            }
            Instruction::Ja { offset, .. } => (0, 0, vec![rel(offset as i64)]),
            Instruction::Jmp {
                dst, src, offset, ..
            } => {
                let su = if let Source::Reg(r) = src { bit(r) } else { 0 };
                (bit(dst) | su, 0, vec![next, rel(offset as i64)])
            }
            Instruction::Call(oxbpf_isa::CallTarget::Local(r)) => {
                (0b11_1110, 0b11_1111, vec![next, rel(r as i64)])
            }
            Instruction::Call(_) | Instruction::Callx { .. } => (0b11_1110, 0b11_1111, vec![next]),
            Instruction::Exit => (1, 0, vec![]),
        };
        uses[pc] = u | (1 << 10);
        defs[pc] = d;
        succs[pc] = s.into_iter().filter(|&x| x < n).collect();
    }
    let mut live_in = vec![0u16; n];
    loop {
        let mut changed = false;
        for pc in (0..n).rev() {
            if decoded[pc].is_none() {
                continue;
            }
            let out = succs[pc].iter().fold(0u16, |a, &s| a | live_in[s]);
            let inn = uses[pc] | (out & !defs[pc]);
            if inn != live_in[pc] {
                live_in[pc] = inn;
                changed = true;
            }
        }
        if !changed {
            return live_in;
        }
    }
}

fn reachable(decoded: &[Option<Instruction>], n: usize) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut work = vec![0usize];
    while let Some(pc) = work.pop() {
        if pc >= n || seen[pc] {
            continue;
        }
        seen[pc] = true;
        let Some(insn) = decoded[pc] else { continue };
        let next = pc + insn.slots();
        match insn {
            Instruction::Exit => {}
            Instruction::Ja { offset, .. } => work.push((pc as i64 + 1 + offset as i64) as usize),
            Instruction::Jmp { offset, .. } => {
                work.push(next);
                work.push((pc as i64 + 1 + offset as i64) as usize);
            }
            Instruction::Call(oxbpf_isa::CallTarget::Local(rel)) => {
                work.push(next);
                work.push((pc as i64 + 1 + rel as i64) as usize);
            }
            Instruction::LoadImm64 {
                imm: oxbpf_isa::Imm64::Func(rel),
                ..
            } => {
                work.push(next);
                work.push((pc as i64 + 1 + rel as i64) as usize);
            }
            _ => work.push(next),
        }
    }
    seen
}

impl Verifier<'_> {
    fn map(&self, idx: u32, pc: usize) -> VResult<&MapInfo> {
        self.opts
            .maps
            .get(idx as usize)
            .ok_or((pc, format!("map {idx} does not exist")))
    }

    /// A map the program names: program types that cannot take a lock
    /// may not use a map whose value holds one (the kernel's
    /// `check_map_prog_compatibility`).
    fn map_usable(&self, idx: u32, pc: usize) -> VResult<&MapInfo> {
        let m = self.map(idx, pc)?;
        if m.spin_lock.is_some() {
            use ProgramType as T;
            let who = match self.opts.prog_type {
                T::SocketFilter => Some("socket filter"),
                T::Kprobe
                | T::Tracepoint
                | T::PerfEvent
                | T::RawTracepoint
                | T::RawTracepointWritable => Some("tracing"),
                _ => None,
            };
            if let Some(who) = who {
                return err(
                    pc,
                    format!(
                        "{who} progs cannot use bpf_spin_lock yet: map '{}' holds a struct bpf_spin_lock",
                        m.name
                    ),
                );
            }
        }
        Ok(m)
    }

    fn step(&mut self, path: &mut Path, insn: Instruction) -> VResult<Step> {
        use Instruction as I;
        let pc = path.pc;
        let next = pc + insn.slots();
        let writes_fp = match insn {
            I::Alu { dst, .. }
            | I::MovSx { dst, .. }
            | I::Neg { dst, .. }
            | I::Endian { dst, .. }
            | I::LoadImm64 { dst, .. }
            | I::Load { dst, .. } => dst.index() == 10,
            I::Atomic { op, src, .. } => {
                src.index() == 10
                    && !matches!(
                        op,
                        oxbpf_isa::AtomicOp::Add { fetch: false }
                            | oxbpf_isa::AtomicOp::Or { fetch: false }
                            | oxbpf_isa::AtomicOp::And { fetch: false }
                            | oxbpf_isa::AtomicOp::Xor { fetch: false }
                            | oxbpf_isa::AtomicOp::Cmpxchg
                    )
            }
            _ => false,
        };
        if writes_fp {
            return err(pc, "frame pointer is read only");
        }
        match insn {
            I::Alu {
                width,
                op,
                dst,
                src,
            } => {
                self.alu(
                    path,
                    pc,
                    width == oxbpf_isa::Width::W64,
                    op,
                    dst.index(),
                    src,
                )?;
            }
            I::MovSx {
                width,
                bits,
                dst,
                src,
            } => {
                let s = self.read_scalar(path, pc, src.index(), "sign-extending")?;
                let v = match s.var.konst() {
                    Some(c) => {
                        let ext = match bits {
                            8 => c as i8 as i64 as u64,
                            16 => c as i16 as i64 as u64,
                            _ => c as i32 as i64 as u64,
                        };
                        if width == oxbpf_isa::Width::W32 {
                            Scalar::from_const(ext as u32 as u64)
                        } else {
                            Scalar::from_const(ext)
                        }
                    }
                    None => {
                        if width == oxbpf_isa::Width::W32 {
                            Scalar::urange(0, u32::MAX as u64)
                        } else {
                            Scalar::UNKNOWN
                        }
                    }
                };
                path.state.cur_mut().regs[dst.index()] = Reg::scalar(v);
            }
            I::Neg { width, dst } => {
                let d = self.read_scalar(path, pc, dst.index(), "negation of")?;
                let v = Scalar::from_const(0).sub(&d.var);
                path.state.cur_mut().regs[dst.index()] =
                    Reg::scalar(if width == oxbpf_isa::Width::W32 {
                        v.zext32()
                    } else {
                        v
                    });
            }
            I::Endian { bits, dst, .. } => {
                let d = self.read_scalar(path, pc, dst.index(), "byte swap of")?;
                let v = match d.var.konst() {
                    Some(c) => {
                        let x = match (insn, bits) {
                            (
                                I::Endian {
                                    op: oxbpf_isa::EndianOp::ToLe,
                                    ..
                                },
                                16,
                            ) => c as u16 as u64,
                            (
                                I::Endian {
                                    op: oxbpf_isa::EndianOp::ToLe,
                                    ..
                                },
                                32,
                            ) => c as u32 as u64,
                            (
                                I::Endian {
                                    op: oxbpf_isa::EndianOp::ToLe,
                                    ..
                                },
                                _,
                            ) => c,
                            (_, 16) => (c as u16).swap_bytes() as u64,
                            (_, 32) => (c as u32).swap_bytes() as u64,
                            _ => c.swap_bytes(),
                        };
                        Scalar::from_const(x)
                    }
                    None if bits < 64 => Scalar::urange(0, (1u64 << bits) - 1),
                    None => Scalar::UNKNOWN,
                };
                path.state.cur_mut().regs[dst.index()] = Reg::scalar(v);
            }
            I::LoadImm64 { dst, imm } => {
                use oxbpf_isa::Imm64;
                let r = match imm {
                    Imm64::Value(v) => Reg::konst(v),
                    Imm64::MapIdx(i) | Imm64::MapFd(i) => {
                        self.map_usable(i as u32, pc)?;
                        Reg::ptr(Kind::MapPtr { map: i as u32 })
                    }
                    Imm64::MapIdxValue { idx, offset } | Imm64::MapValue { fd: idx, offset } => {
                        let m = self.map_usable(idx as u32, pc)?;
                        if offset < 0 || offset as u32 >= m.value_size.max(1) {
                            return err(
                                pc,
                                format!("invalid offset {offset} into the value of map {idx}"),
                            );
                        }
                        let mut r = Reg::ptr(Kind::MapValue { map: idx as u32 });
                        r.off = offset as i64;
                        r
                    }
                    Imm64::Func(rel) => Reg::ptr(Kind::Func {
                        pc: (pc as i64 + 1 + rel as i64) as u32,
                    }),
                    Imm64::BtfId { .. } => {
                        return err(
                            pc,
                            "kernel variables (ld_imm64 of a BTF id) are not supported",
                        );
                    }
                };
                path.state.cur_mut().regs[dst.index()] = r;
            }
            I::Load {
                size,
                sign_extend,
                dst,
                src,
                offset,
            } => {
                let base = self.read(path, pc, src.index())?;
                let v = self.mem_access(
                    path,
                    pc,
                    src.index(),
                    &base,
                    offset as i64,
                    size.bytes() as i64,
                    None,
                )?;
                let v = match (v.kind, sign_extend) {
                    (Kind::Scalar, true) => Reg::unknown(),
                    _ => v,
                };
                path.state.cur_mut().regs[dst.index()] = v;
            }
            I::Store {
                size,
                dst,
                offset,
                src,
            } => {
                let base = self.read(path, pc, dst.index())?;
                let val = match src {
                    oxbpf_isa::Source::Reg(r) => self.read(path, pc, r.index())?,
                    oxbpf_isa::Source::Imm(i) => Reg::konst(i as i64 as u64),
                };
                if let oxbpf_isa::Source::Reg(r) = src
                    && val.kind.is_pointer()
                    && size.bytes() != 8
                    && !self.opts.privileged
                {
                    return err(pc, format!("R{} partial copy of a pointer", r.index()));
                }
                self.mem_access(
                    path,
                    pc,
                    dst.index(),
                    &base,
                    offset as i64,
                    size.bytes() as i64,
                    Some(val),
                )?;
            }
            I::Atomic {
                size,
                op,
                dst,
                src,
                offset,
            } => {
                let base = self.read(path, pc, dst.index())?;
                let val = self.read(path, pc, src.index())?;
                if val.kind != Kind::Scalar {
                    return err(
                        pc,
                        format!("R{} leaks addr into memory through an atomic", src.index()),
                    );
                }
                if !matches!(
                    base.kind,
                    Kind::Stack { .. } | Kind::MapValue { .. } | Kind::Mem { .. }
                ) {
                    return err(
                        pc,
                        format!(
                            "R{} atomic on {} is not allowed",
                            dst.index(),
                            base.kind.name()
                        ),
                    );
                }
                let old = self.mem_access(
                    path,
                    pc,
                    dst.index(),
                    &base,
                    offset as i64,
                    size.bytes() as i64,
                    None,
                )?;
                self.mem_access(
                    path,
                    pc,
                    dst.index(),
                    &base,
                    offset as i64,
                    size.bytes() as i64,
                    Some(Reg::unknown()),
                )?;
                let fetched = if old.kind == Kind::Scalar {
                    Reg::unknown()
                } else {
                    old
                };
                match op {
                    oxbpf_isa::AtomicOp::Cmpxchg => {
                        self.read(path, pc, 0)?;
                        path.state.cur_mut().regs[0] = fetched;
                    }
                    oxbpf_isa::AtomicOp::Xchg => path.state.cur_mut().regs[src.index()] = fetched,
                    oxbpf_isa::AtomicOp::Add { fetch: true }
                    | oxbpf_isa::AtomicOp::Or { fetch: true }
                    | oxbpf_isa::AtomicOp::And { fetch: true }
                    | oxbpf_isa::AtomicOp::Xor { fetch: true } => {
                        path.state.cur_mut().regs[src.index()] = fetched;
                    }
                    _ => {}
                }
            }
            I::LoadPacket { addr, .. } => {
                // A failed legacy packet load ends the program.
                self.check_leaks(path, pc, "BPF_LD_[ABS|IND]", None)?;
                if !matches!(
                    self.opts.prog_type,
                    ProgramType::SocketFilter
                        | ProgramType::SchedCls
                        | ProgramType::SchedAct
                        | ProgramType::Unspec
                ) {
                    return err(
                        pc,
                        "BPF_LD_[ABS|IND] instructions are not allowed for this program type",
                    );
                }
                let r6 = self.read(path, pc, 6)?;
                if r6.kind != Kind::Ctx && self.opts.prog_type != ProgramType::Unspec {
                    return err(pc, "at the time of BPF_LD_ABS|IND R6 != pointer to skb");
                }
                if let oxbpf_isa::PacketAddr::Ind { src, .. } = addr {
                    let s = self.read(path, pc, src.index())?;
                    if s.kind != Kind::Scalar {
                        return err(
                            pc,
                            format!("R{} packet load offset must be a scalar", src.index()),
                        );
                    }
                }
                let f = path.state.cur_mut();
                for r in 1..=5 {
                    f.regs[r] = Reg::NOT_INIT;
                }
                f.regs[0] = Reg::unknown();
            }
            I::Ja { offset, .. } => {
                path.pc = (pc as i64 + 1 + offset as i64) as usize;
                return Ok(Step::Next(vec![]));
            }
            I::Jmp {
                width,
                cond,
                dst,
                src,
                offset,
            } => {
                return self.branch(
                    path,
                    pc,
                    width == oxbpf_isa::Width::W64,
                    cond,
                    dst.index(),
                    src,
                    offset,
                );
            }
            I::Call(t) => return self.call(path, pc, t),
            I::Callx { .. } => {
                return err(
                    pc,
                    "indirect calls (callx) are not supported by the kernel verifier",
                );
            }
            I::Exit => return self.exit(path, pc),
        }
        path.pc = next;
        Ok(Step::Next(vec![]))
    }

    /// Reads a register, which must be initialized.
    /// [`Verifier::read`] of a register that must hold a number for `what`
    /// (an operation that makes no sense on a pointer).
    fn read_scalar(&self, path: &Path, pc: usize, r: usize, what: &str) -> VResult<Reg> {
        let reg = self.read(path, pc, r)?;
        if reg.kind != Kind::Scalar {
            return err(pc, format!("R{r} {what} a pointer is prohibited"));
        }
        Ok(reg)
    }

    fn read(&self, path: &Path, pc: usize, r: usize) -> VResult<Reg> {
        let reg = path.state.cur().regs[r];
        if reg.kind == Kind::NotInit {
            return err(
                pc,
                match reg.gone {
                    Gone::No => {
                        format!("R{r} !read_ok (the register is not initialized on this path)")
                    }
                    g => format!("R{r} !read_ok{}", g.explain()),
                },
            );
        }
        Ok(reg)
    }

    fn alu(
        &mut self,
        path: &mut Path,
        pc: usize,
        wide: bool,
        op: oxbpf_isa::AluOp,
        d: usize,
        src: oxbpf_isa::Source,
    ) -> VResult<()> {
        use oxbpf_isa::AluOp as A;
        let sreg = match src {
            oxbpf_isa::Source::Reg(r) => self.read(path, pc, r.index())?,
            oxbpf_isa::Source::Imm(i) => {
                if wide {
                    Reg::konst(i as i64 as u64)
                } else {
                    Reg::konst(i as u32 as u64)
                }
            }
        };
        if op == A::Mov {
            let v = if wide {
                // Copies of an unknown scalar share an id, so a later bounds
                // check on one bounds the other too (r2 = r1; if r2 > 10 ...).
                let mut v = sreg;
                if v.kind == Kind::Scalar
                    && v.var.konst().is_none()
                    && let oxbpf_isa::Source::Reg(s) = src
                    && v.id == 0
                {
                    v.id = path.state.fresh_id();
                    path.state.cur_mut().regs[s.index()].id = v.id;
                }
                v
            } else if sreg.kind == Kind::Scalar {
                Reg::scalar(sreg.var.zext32())
            } else if self.opts.privileged {
                Reg::unknown()
            } else {
                return err(
                    pc,
                    "32-bit move of a pointer is prohibited (leaks address bits)",
                );
            };
            path.state.cur_mut().regs[d] = v;
            return Ok(());
        }
        let dreg = self.read(path, pc, d)?;
        // Shifts by constants out of range are rejected, as the kernel does.
        if matches!(op, A::Lsh | A::Rsh | A::Arsh)
            && let oxbpf_isa::Source::Imm(i) = src
            && (i < 0 || i as u32 >= if wide { 64 } else { 32 })
        {
            return err(pc, format!("invalid shift {i}"));
        }
        if matches!(op, A::Div | A::Mod | A::Sdiv | A::Smod)
            && let oxbpf_isa::Source::Imm(0) = src
        {
            return err(pc, "div by zero");
        }
        // Pointer arithmetic.
        if dreg.kind.is_pointer() || sreg.kind.is_pointer() {
            if !wide {
                return err(pc, format!("R{d} 32-bit pointer arithmetic prohibited"));
            }
            let r = self.ptr_alu(path, pc, op, d, dreg, sreg)?;
            path.state.cur_mut().regs[d] = r;
            return Ok(());
        }
        let (a, b) = (dreg.var, sreg.var);
        let (a, b) = if wide {
            (a, b)
        } else {
            (a.zext32(), b.zext32())
        };
        let bits = if wide { 64 } else { 32 };
        let shift = |b: &Scalar| b.konst().map(|c| (c & (bits - 1)) as u32);
        let v = match op {
            A::Add => a.add(&b),
            A::Sub => a.sub(&b),
            A::Mul => a.mul(&b),
            A::And => a.and(&b),
            A::Or => a.or(&b),
            A::Xor => a.xor(&b),
            A::Lsh => match shift(&b) {
                Some(s) => a.lsh(s),
                None => Scalar::UNKNOWN,
            },
            A::Rsh => match shift(&b) {
                Some(s) => a.rsh(s),
                None if wide => Scalar::urange(0, a.umax),
                None => Scalar::UNKNOWN,
            },
            A::Arsh => match (shift(&b), wide) {
                (Some(s), true) => a.arsh(s),
                (Some(s), false) => Scalar::from_tnum(a.t.arsh(s, 32)),
                _ => Scalar::UNKNOWN,
            },
            A::Div => match (a.konst(), b.konst()) {
                (Some(x), Some(y)) => Scalar::from_const(x.checked_div(y).unwrap_or(0)),
                _ => Scalar::urange(0, a.umax),
            },
            A::Mod => match (a.konst(), b.konst()) {
                (Some(x), Some(y)) => Scalar::from_const(if y == 0 { x } else { x % y }),
                (_, Some(y)) if y != 0 && a.umin == 0 || b.umin > 0 => {
                    Scalar::urange(0, a.umax.min(b.umax.saturating_sub(1)))
                }
                _ => Scalar::urange(0, a.umax),
            },
            A::Sdiv | A::Smod => match (a.konst(), b.konst()) {
                (Some(x), Some(y)) => {
                    let (x, y) = if wide {
                        (x as i64, y as i64)
                    } else {
                        (x as i32 as i64, y as i32 as i64)
                    };
                    let r = if op == A::Sdiv {
                        if y == 0 { 0 } else { x.wrapping_div(y) }
                    } else if y == 0 {
                        x
                    } else {
                        x.wrapping_rem(y)
                    };
                    Scalar::from_const(r as u64)
                }
                _ => Scalar::UNKNOWN,
            },
            A::Mov => unreachable_mov(),
        };
        let v = if wide { v } else { v.zext32() };
        path.state.cur_mut().regs[d] = Reg::scalar(v);
        Ok(())
    }

    fn ptr_alu(
        &mut self,
        path: &mut Path,
        pc: usize,
        op: oxbpf_isa::AluOp,
        d: usize,
        dreg: Reg,
        sreg: Reg,
    ) -> VResult<Reg> {
        use oxbpf_isa::AluOp as A;
        // ptr - ptr of the same packet/stack/map value gives a scalar.
        if op == A::Sub && dreg.kind.is_pointer() && sreg.kind.is_pointer() {
            let pkt = |k: Kind| matches!(k, Kind::Packet | Kind::PacketMeta | Kind::PacketEnd);
            if (dreg.kind == sreg.kind && !matches!(dreg.kind, Kind::MapPtr { .. } | Kind::Ctx))
                || (pkt(dreg.kind) && pkt(sreg.kind))
            {
                // The distance between two pointers into the same object.
                let mut r = Reg::scalar(Scalar::UNKNOWN);
                // pkt_end - pkt is the length left in the packet after pkt:
                // remember which packet pointer, so bounds on it carry over.
                if dreg.kind == Kind::PacketEnd
                    && sreg.kind == Kind::Packet
                    && sreg.var.konst() == Some(0)
                {
                    r.plen = Some((sreg.id, sreg.off));
                    r.var = Scalar::urange(0, u32::MAX as u64);
                }
                return Ok(r);
            }
            return err(
                pc,
                format!("R{d} pointer -= pointer of another kind prohibited"),
            );
        }
        if dreg.kind.is_pointer() && sreg.kind.is_pointer() {
            return err(
                pc,
                format!("R{d} pointer {} pointer prohibited", crate::alu_name(op)),
            );
        }
        // scalar op pointer: only scalar + pointer (the result is a pointer).
        let (ptr, sc, commuted) = if dreg.kind.is_pointer() {
            (dreg, sreg.var, false)
        } else {
            (sreg, dreg.var, true)
        };
        if commuted && op != A::Add {
            return err(
                pc,
                format!("R{d} scalar {} pointer prohibited", crate::alu_name(op)),
            );
        }
        match ptr.kind {
            Kind::MapPtr { .. } | Kind::MapPtrOrNull { .. } | Kind::Func { .. } | Kind::Sock(_) => {
                return err(
                    pc,
                    format!("R{d} pointer arithmetic on {} prohibited", ptr.kind.name()),
                );
            }
            k if k.is_or_null() => {
                return err(
                    pc,
                    format!(
                        "R{d} pointer arithmetic on {} prohibited, null-check it first",
                        k.name()
                    ),
                );
            }
            Kind::PacketEnd => {
                return err(pc, format!("R{d} pointer arithmetic on pkt_end prohibited"));
            }
            _ => {}
        }
        if !matches!(op, A::Add | A::Sub) {
            return err(
                pc,
                format!("R{d} bitwise or multiplicative operator on pointer prohibited"),
            );
        }
        let mut r = ptr;
        match sc.konst() {
            Some(c) => {
                let c = c as i64;
                r.off = if op == A::Add {
                    r.off.wrapping_add(c)
                } else {
                    r.off.wrapping_sub(c)
                };
                if r.off.abs() > 1 << 29 {
                    return err(pc, format!("R{d} pointer offset {} is out of range", r.off));
                }
            }
            None => {
                if ptr.kind == Kind::Ctx {
                    return err(pc, format!("R{d} variable ctx access is prohibited"));
                }
                if sc.smin == i64::MIN || sc.smax == i64::MAX && op == A::Add || sc.umax > 1 << 29 {
                    return err(
                        pc,
                        format!(
                            "R{d} unbounded memory access: add a bounds check on the scalar ({sc}) before adding it to a pointer"
                        ),
                    );
                }
                r.var = if op == A::Add {
                    r.var.add(&sc)
                } else {
                    r.var.sub(&sc)
                };
                if matches!(ptr.kind, Kind::Packet | Kind::PacketMeta) {
                    r.id = path.state.fresh_id();
                    r.range = 0;
                }
            }
        }
        Ok(r)
    }

    /// Checks a memory access through `base` (register `rn`) at `off` of
    /// `size` bytes; stores `value` when given, else returns what is read.
    #[allow(clippy::too_many_arguments)]
    fn mem_access(
        &mut self,
        path: &mut Path,
        pc: usize,
        rn: usize,
        base: &Reg,
        off: i64,
        size: i64,
        value: Option<Reg>,
    ) -> VResult<Reg> {
        let write = value.is_some();
        if let Some(v) = value
            && v.kind.is_pointer()
            && !(self.opts.privileged && self.opts.allow_ptr_leaks)
            && !matches!(base.kind, Kind::Stack { .. })
        {
            return err(
                pc,
                format!(
                    "R{rn} leaks addr into {}: a {} stored there is visible to user space{}",
                    base.kind.name(),
                    v.kind.name(),
                    if self.opts.privileged {
                        " (allow with --allow-ptr-leaks)"
                    } else {
                        ""
                    }
                ),
            );
        }
        let lo = base.off + off + base.var.smin.max(-(1 << 40));
        let hi = base.off + off + (base.var.umax.min(1 << 40) as i64) + size;
        match base.kind {
            Kind::NotInit => err(pc, format!("R{rn} !read_ok")),
            Kind::Scalar => {
                if let Gone::Released { at, acquired } = base.gone {
                    self.related = vec![
                        (acquired as usize, "the reference was acquired".into()),
                        (at as usize, "it was released".into()),
                    ];
                }
                err(
                    pc,
                    format!(
                        "R{rn} invalid mem access 'scalar'{}",
                        if base.gone != Gone::No {
                            base.gone.explain()
                        } else if base.var.konst() == Some(0) {
                            " (a null pointer)".to_string()
                        } else {
                            String::new()
                        }
                    ),
                )
            }
            k if k.is_or_null() => err(
                pc,
                format!(
                    "R{rn} invalid mem access '{}': it may be NULL; compare it with 0 before use",
                    k.name()
                ),
            ),
            Kind::MapPtr { .. } | Kind::Func { .. } | Kind::PacketEnd => err(
                pc,
                format!("R{rn} invalid mem access '{}'", base.kind.name()),
            ),
            Kind::Ctx => self.ctx_access(path, pc, rn, base, off, size, value),
            Kind::Stack { frame } => {
                let var_write = base.var.konst().is_none() && write;
                if lo < -STACK || hi > 0 {
                    return err(
                        pc,
                        format!(
                            "invalid {} stack R{rn} off={} size={size} (the stack is fp-512 .. fp-1)",
                            if write { "write to" } else { "read from" },
                            base.off + off
                        ),
                    );
                }
                let fi = frame as usize;
                if fi >= path.state.frames.len() {
                    return err(
                        pc,
                        format!("R{rn} points to a stack frame that has returned"),
                    );
                }
                {
                    let f = &mut path.state.frames[fi];
                    f.depth = f.depth.max(-lo);
                }
                let total: i64 = path
                    .state
                    .frames
                    .iter()
                    .map(|f| (f.depth + 7) / 8 * 8)
                    .sum();
                if total > STACK {
                    return err(
                        pc,
                        format!(
                            "combined stack size of {} calls is {total}, too large (max 512)",
                            path.state.frames.len()
                        ),
                    );
                }
                let stack = &mut path.state.frames[fi].stack;
                let (a, b) = ((lo + STACK) as usize, (hi + STACK) as usize);
                if var_write || value.is_some() {
                    let stale: Vec<usize> = stack
                        .consts
                        .range(a.saturating_sub(8)..b)
                        .filter(|(k, (n, _))| **k < b && **k + *n as usize > a)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in stale {
                        stack.consts.remove(&k);
                    }
                    if !var_write
                        && let Some(v) = value
                        && v.kind == Kind::Scalar
                        && let Some(c) = v.var.konst()
                    {
                        let c = if size < 8 {
                            c & ((1u64 << (8 * size)) - 1)
                        } else {
                            c
                        };
                        stack.consts.insert(a, (size as u8, c));
                    }
                }
                if var_write {
                    // Some bytes of [a, b) are written, which ones is unknown:
                    // spills there end; written bytes become unknown data (a
                    // privileged program may read the rest anyway).
                    let keys: Vec<usize> = stack
                        .spills
                        .range(a.saturating_sub(7)..b)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        stack.spills.remove(&k);
                    }
                    if self.opts.privileged {
                        for byte in &mut stack.bytes[a..b] {
                            *byte = byte::MISC;
                        }
                    }
                    return Ok(Reg::NOT_INIT);
                }
                if let Some(v) = value {
                    // Any store over a spill slot ends that spill, unless it
                    // is an aligned full 8-byte store of a register.
                    let slot = a / 8 * 8;
                    let keys: Vec<usize> = stack
                        .spills
                        .range(slot.saturating_sub(7)..b)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        if k < b && k + 8 > a {
                            stack.spills.remove(&k);
                        }
                    }
                    if size == 8
                        && a % 8 == 0
                        && (v.kind.is_pointer()
                            || v.var.konst().is_none()
                            || v.var.konst() != Some(0))
                    {
                        stack.spills.insert(a, v);
                        for byte in &mut stack.bytes[a..b] {
                            *byte = byte::MISC;
                        }
                    } else {
                        let z = v.kind == Kind::Scalar && v.var.konst() == Some(0);
                        for byte in &mut stack.bytes[a..b] {
                            *byte = if z { byte::ZERO } else { byte::MISC };
                        }
                        if size == 8 && a % 8 == 0 && z {
                            stack.spills.insert(a, v);
                        }
                    }
                    Ok(Reg::NOT_INIT)
                } else {
                    let uninit = (a..b).find(|&i| stack.bytes[i] == byte::UNINIT);
                    // Privileged programs may read uninitialized stack (the
                    // kernel's allow_uninit_stack); the value is unknown.
                    if uninit.is_some() && self.opts.privileged {
                        return Ok(small_unknown(size));
                    }
                    if let Some(u) = uninit {
                        return err(
                            pc,
                            format!(
                                "invalid read from stack R{rn} off={} size={size}: byte fp{} is not initialized",
                                base.off + off,
                                u as i64 - STACK
                            ),
                        );
                    }
                    if let Some(sp) = stack.spills.get(&a)
                        && size == 8
                        && base.var.konst().is_some()
                    {
                        return Ok(*sp);
                    }
                    // Part of a spilled pointer read as bytes.
                    let partial_ptr = stack
                        .spills
                        .iter()
                        .any(|(k, r)| *k < b && k + 8 > a && r.kind.is_pointer());
                    if partial_ptr && !self.opts.privileged {
                        return err(pc, format!("R{rn} partial read of a spilled pointer"));
                    }
                    if (a..b).all(|i| stack.bytes[i] == byte::ZERO) {
                        return Ok(Reg::konst(0));
                    }
                    Ok(small_unknown(size))
                }
            }
            Kind::MapValue { map } => {
                let m = self.map(map, pc)?;
                if lo < 0 || hi > m.value_size as i64 {
                    return err(
                        pc,
                        format!(
                            "R{rn} {} the value of map {map} (size {}): access at [{lo}, {hi}) is outside [0, {})",
                            if write {
                                "writes outside"
                            } else {
                                "reads outside"
                            },
                            m.value_size,
                            m.value_size
                        ),
                    );
                }
                if write && m.read_only {
                    return err(pc, format!("R{rn} write into a read-only map (map {map})"));
                }
                if let Some(at) = m.spin_lock
                    && lo < at as i64 + 4
                    && (at as i64) < hi
                {
                    return err(
                        pc,
                        format!(
                            "bpf_spin_lock cannot be accessed directly by load/store: [{lo}, {hi}) of map {map}'s value overlaps the lock at {at}..{}",
                            at + 4
                        ),
                    );
                }
                Ok(small_unknown(size))
            }
            Kind::Mem {
                size: msize,
                writable,
            } => {
                if lo < 0 || hi > msize as i64 {
                    return err(
                        pc,
                        format!(
                            "R{rn} invalid access to memory of size {msize}: [{lo}, {hi}) is outside it"
                        ),
                    );
                }
                if write && !writable {
                    return err(pc, format!("R{rn} write into read-only memory"));
                }
                Ok(small_unknown(size))
            }
            Kind::Sock(k) => {
                if write {
                    return err(pc, format!("R{rn} cannot write into {}", base.kind.name()));
                }
                let o = base.off + off;
                if !crate::protos::sock_field_ok(k, o, size) {
                    return err(
                        pc,
                        format!(
                            "R{rn} invalid {} access off={o} size={size}",
                            base.kind.name()
                        ),
                    );
                }
                Ok(small_unknown(size))
            }
            Kind::Packet | Kind::PacketMeta => {
                if base.var.smin < 0 {
                    return err(pc, format!("R{rn} packet pointer with a negative offset"));
                }
                let o = base.off + off;
                if o < 0 || o + size > base.range {
                    return err(
                        pc,
                        format!(
                            "R{rn} offset is outside of the packet: access at {o}..{} but only {} bytes are checked against data_end",
                            o + size,
                            base.range
                        ),
                    );
                }
                if write
                    && !matches!(
                        self.opts.prog_type,
                        ProgramType::Xdp
                            | ProgramType::SchedCls
                            | ProgramType::SchedAct
                            | ProgramType::LwtXmit
                            | ProgramType::SkSkb
                    )
                {
                    return err(pc, "cannot write into packet for this program type");
                }
                Ok(small_unknown(size))
            }
            _ => err(
                pc,
                format!("R{rn} invalid mem access '{}'", base.kind.name()),
            ),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn ctx_access(
        &mut self,
        _path: &mut Path,
        pc: usize,
        rn: usize,
        base: &Reg,
        off: i64,
        size: i64,
        value: Option<Reg>,
    ) -> VResult<Reg> {
        if base.off != 0 || base.var.konst() != Some(0) {
            return err(
                pc,
                format!(
                    "dereference of modified ctx ptr R{rn} off={} disallowed",
                    base.off
                ),
            );
        }
        let t = self.opts.prog_type;
        if t == ProgramType::Unspec {
            if off < 0 || off + size > ctx_size(t) as i64 {
                return err(
                    pc,
                    format!("invalid bpf_context access off={off} size={size}"),
                );
            }
            return Ok(small_unknown(size));
        }
        let field_off = if size < 4 { off & !3 } else { off };
        let bad = || {
            (
                pc,
                format!(
                    "invalid bpf_context access off={off} size={size} for a {} program",
                    t.name()
                ),
            )
        };
        let field = ctx_field(t, field_off).ok_or_else(bad)?;
        match field {
            Field::Packet | Field::PacketEnd | Field::PacketMeta => {
                if size != 4 || value.is_some() {
                    return Err(bad());
                }
                Ok(Reg::ptr(match field {
                    Field::Packet => Kind::Packet,
                    Field::PacketEnd => Kind::PacketEnd,
                    _ => Kind::PacketMeta,
                }))
            }
            Field::Scalar {
                size: fsize,
                narrow,
                writable,
            } => {
                let ok = size as u32 == fsize || (narrow && (size as u32) < fsize);
                if !ok || off + size > field_off + fsize as i64 {
                    return Err(bad());
                }
                if let Some(v) = value {
                    if !writable {
                        return err(
                            pc,
                            format!("invalid bpf_context write off={off}: the field is read-only"),
                        );
                    }
                    if v.kind.is_pointer() {
                        return err(pc, format!("R{rn} leaks addr into ctx"));
                    }
                }
                Ok(small_unknown(size))
            }
        }
    }
}

fn unreachable_mov() -> Scalar {
    // `Mov` is handled before the scalar table; keep the match exhaustive
    // without a panic path.
    Scalar::UNKNOWN
}

/// An unknown value of `size` bytes (zero-extended).
fn small_unknown(size: i64) -> Reg {
    if size >= 8 {
        Reg::unknown()
    } else {
        Reg::scalar(Scalar::urange(0, (1u64 << (size * 8)) - 1))
    }
}

impl Verifier<'_> {
    #[allow(clippy::too_many_arguments)]
    fn branch(
        &mut self,
        path: &mut Path,
        pc: usize,
        wide: bool,
        cond: oxbpf_isa::JmpCond,
        d: usize,
        src: oxbpf_isa::Source,
        offset: i16,
    ) -> VResult<Step> {
        let dreg = self.read(path, pc, d)?;
        let (sreg, sidx) = match src {
            oxbpf_isa::Source::Reg(r) => (self.read(path, pc, r.index())?, Some(r.index())),
            oxbpf_isa::Source::Imm(i) => (
                if wide {
                    Reg::konst(i as i64 as u64)
                } else {
                    Reg::konst(i as u32 as u64)
                },
                None,
            ),
        };
        let target = (pc as i64 + 1 + offset as i64) as usize;
        let fall = pc + 1;
        let mut taken = path.state.clone();
        let mut not = path.state.clone();
        let (t_ok, n_ok) = crate::refine::refine(
            &mut taken,
            &mut not,
            wide,
            cond,
            d,
            dreg,
            sidx,
            sreg,
            self.opts.privileged,
            &self.opts.maps,
        )
        .map_err(|m| (pc, m))?;
        match (t_ok, n_ok) {
            (true, true) => {
                let mut other = Path {
                    pc: target,
                    state: taken,
                    last: path.last,
                    trail: path.trail.clone(),
                };
                push_trail(&mut other.trail, (pc, true));
                path.state = not;
                push_trail(&mut path.trail, (pc, false));
                path.pc = fall;
                Ok(Step::Next(vec![other]))
            }
            (true, false) => {
                path.state = taken;
                path.pc = target;
                Ok(Step::Next(vec![]))
            }
            (false, true) => {
                path.state = not;
                path.pc = fall;
                Ok(Step::Next(vec![]))
            }
            (false, false) => Ok(Step::Done),
        }
    }

    fn exit(&mut self, path: &mut Path, pc: usize) -> VResult<Step> {
        // A static subprogram may leave R0 unset (clang drops the return
        // value of a function whose callers ignore it); the caller then
        // cannot read it. The program and callbacks must return a value.
        let r0 = if path.state.frames.len() > 1 && !path.state.cur().callback {
            path.state.cur().regs[0]
        } else {
            self.read(path, pc, 0)?
        };
        if path.state.frames.len() == 1 {
            let what = match self.opts.entry.and_then(|i| self.opts.global_funcs.get(i)) {
                Some(g) => format!("BPF_EXIT instruction in global function {}", g.name),
                None => "BPF_EXIT instruction in main prog".to_string(),
            };
            self.check_leaks(path, pc, &what, None)?;
        }
        if path.state.frames.len() == 1 && self.opts.entry.is_some() {
            if r0.kind != Kind::Scalar {
                return err(
                    pc,
                    format!(
                        "At exit of a global function R0 is {}: global functions must return a scalar",
                        r0.kind.name()
                    ),
                );
            }
            return Ok(Step::Done);
        }
        if path.state.frames.len() == 1 {
            if r0.kind != Kind::Scalar {
                return err(
                    pc,
                    format!(
                        "At program exit R0 is {}: a program must return a scalar",
                        r0.kind.name()
                    ),
                );
            }
            if let Some((lo, hi)) = crate::return_range(self.opts.prog_type)
                && (r0.var.umin < lo || r0.var.umax > hi)
            {
                return err(
                    pc,
                    format!(
                        "At program exit R0 has value ({}) which should be in [{lo}, {hi}]",
                        r0.var
                    ),
                );
            }
            return Ok(Step::Done);
        }
        if path.state.cur().callback {
            if r0.kind != Kind::Scalar || r0.var.umax > 1 {
                return err(pc, format!("callback must return 0 or 1, R0 is {r0}"));
            }
            let me = (path.state.frames.len() - 1) as u8;
            self.check_leaks(path, pc, "BPF_EXIT instruction in a callback", Some(me))?;
        }
        let frame = path.state.frames.pop().expect("more than one frame");
        if !frame.callback && r0.kind.is_pointer() && matches!(r0.kind, Kind::Stack { .. }) {
            return err(pc, "a function returns a pointer to its own stack frame");
        }
        // A callback may be called again: enter it once more from the
        // caller's state now, widened against the state of this call.
        let mut again = None;
        if let Some(site) = &frame.site {
            let mut st = path.state.clone();
            widen_frames(&site.caller, &mut st.frames);
            let mut f = Frame::new(site.callsite, st.frames.len() as u8);
            f.callback = true;
            f.regs[1..6].copy_from_slice(&site.args);
            f.site = Some(std::rc::Rc::new(CallbackSite {
                caller: st.frames.clone(),
                ..(**site).clone()
            }));
            st.frames.push(f);
            again = Some(Path {
                pc: site.target,
                state: st,
                last: path.last,
                trail: path.trail.clone(),
            });
        }
        let f = path.state.cur_mut();
        f.regs[0] = if frame.callback { Reg::unknown() } else { r0 };
        for r in 1..=5 {
            f.regs[r] = Reg::NOT_INIT;
        }
        path.pc = match &frame.site {
            Some(site) => site.callsite + 1,
            None => frame.ret_pc,
        };
        Ok(Step::Next(again.into_iter().collect()))
    }

    /// Rejects leaving with a reference held or (outside a callback) a
    /// lock held: `what` names the way out, as the kernel's messages do.
    /// In a callback (`callback` = its frame) only references it acquired
    /// itself count: it may not keep any across calls.
    fn check_leaks(
        &mut self,
        path: &Path,
        pc: usize,
        what: &str,
        callback: Option<u8>,
    ) -> VResult<()> {
        if let Some(l) = path.state.lock {
            self.related = vec![(l.pc as usize, "the lock was taken by bpf_spin_lock".into())];
            return err(
                pc,
                format!(
                    "{what} cannot be used inside bpf_spin_lock-ed region: the lock taken at insn {} is still held on this path; call bpf_spin_unlock first",
                    l.pc
                ),
            );
        }
        let leaked: Vec<RefState> = path
            .state
            .refs
            .iter()
            .filter(|r| callback.is_none() || r.callback_frame == callback)
            .copied()
            .collect();
        if let Some(first) = leaked.first() {
            self.related = leaked
                .iter()
                .map(|r| {
                    (
                        r.pc as usize,
                        format!("the {} was acquired", r.kind.describe()),
                    )
                })
                .collect();
            let list: Vec<String> = leaked
                .iter()
                .map(|r| format!("the {} acquired at insn {}", r.kind.describe(), r.pc))
                .collect();
            return err(
                pc,
                format!(
                    "{what} would lead to reference leak: {} {} not released on this path; call {} on every path first",
                    list.join(", "),
                    if leaked.len() == 1 { "is" } else { "are" },
                    first.kind.release_hint()
                ),
            );
        }
        Ok(())
    }

    fn call(&mut self, path: &mut Path, pc: usize, t: oxbpf_isa::CallTarget) -> VResult<Step> {
        use oxbpf_isa::CallTarget as C;
        match t {
            C::Local(rel) => {
                let target = (pc as i64 + 1 + rel as i64) as usize;
                if let Some(g) = self.opts.global_funcs.iter().find(|g| g.pc == target) {
                    return self.call_global(path, pc, g);
                }
                self.push_frame(path, pc, target, pc + 1, false, None)?;
                Ok(Step::Next(vec![]))
            }
            C::Kfunc { btf_id, .. } => err(
                pc,
                format!("kernel function calls (kfunc BTF id {btf_id}) are not supported"),
            ),
            C::Helper(id) => self.helper(path, pc, id),
        }
    }

    /// A call of a global function: its arguments are checked against its
    /// prototype; it was (or will be) verified on its own, so the result is
    /// an unknown scalar.
    fn call_global(&mut self, path: &mut Path, pc: usize, g: &crate::GlobalFunc) -> VResult<Step> {
        if let Some(l) = path.state.lock {
            self.related = vec![(l.pc as usize, "the lock was taken by bpf_spin_lock".into())];
            return err(
                pc,
                format!(
                    "global function calls are not allowed while holding a lock, use static function instead (global function {} is called while the lock taken at insn {} is held)",
                    g.name, l.pc
                ),
            );
        }
        for (i, a) in g.args.iter().enumerate().take(5) {
            let rn = i + 1;
            let r = self.read(path, pc, rn).map_err(|(pc, m)| {
                (
                    pc,
                    format!("{m} (argument {rn} of global function {})", g.name),
                )
            })?;
            match a {
                crate::GlobalArg::Scalar => {
                    if r.kind != Kind::Scalar {
                        return err(
                            pc,
                            format!(
                                "R{rn} is {} but argument {rn} of global function {} is a scalar",
                                r.kind.name(),
                                g.name
                            ),
                        );
                    }
                }
                crate::GlobalArg::Ctx => {
                    if r.kind != Kind::Ctx || r.off != 0 {
                        return err(
                            pc,
                            format!(
                                "R{rn} is {} but argument {rn} of global function {} is the context",
                                r.kind.name(),
                                g.name
                            ),
                        );
                    }
                }
                crate::GlobalArg::Mem { size } => {
                    if r.kind == Kind::Scalar && r.var.konst() == Some(0) {
                        continue;
                    }
                    // The argument may be NULL, so a maybe-NULL pointer of
                    // at least that size passes as it is.
                    if let Kind::MemOrNull { size: have } = r.kind
                        && r.off == 0
                        && r.var.konst() == Some(0)
                        && have >= *size
                    {
                        continue;
                    }
                    self.check_mem_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        *size as i64,
                        false,
                        &format!("global function {}", g.name),
                    )?;
                }
            }
        }
        let changes = self
            .opts
            .global_funcs
            .iter()
            .position(|x| x.pc == g.pc)
            .and_then(|i| self.global_changes_pkt.get(i).copied())
            .unwrap_or(true);
        if changes {
            invalidate_packet(&mut path.state, pc, self.opts.privileged);
        }
        let f = path.state.cur_mut();
        f.regs[0] = Reg::unknown();
        for r in 1..=5 {
            f.regs[r] = Reg::NOT_INIT;
        }
        path.pc = pc + 1;
        Ok(Step::Next(vec![]))
    }

    fn push_frame(
        &mut self,
        path: &mut Path,
        pc: usize,
        target: usize,
        ret_pc: usize,
        callback: bool,
        args: Option<[Reg; 5]>,
    ) -> VResult<()> {
        if path.state.frames.len() >= 8 {
            return err(
                pc,
                format!(
                    "the call stack of {} frames is too deep (max 8)",
                    path.state.frames.len() + 1
                ),
            );
        }
        let caller = path.state.cur().clone();
        let mut f = Frame::new(ret_pc, path.state.frames.len() as u8);
        f.callback = callback;
        match args {
            Some(a) => f.regs[1..6].copy_from_slice(&a),
            None => f.regs[1..6].copy_from_slice(&caller.regs[1..6]),
        }
        path.state.frames.push(f);
        path.pc = target;
        Ok(())
    }

    fn helper(&mut self, path: &mut Path, pc: usize, id: i32) -> VResult<Step> {
        let p = crate::protos::proto_for(id, self.opts.prog_type, self.opts.privileged)
            .map_err(|r| (pc, r.message(id)))?;
        if p.gpl_only && !self.opts.gpl {
            return err(
                pc,
                format!(
                    "cannot call GPL-restricted function bpf_{} from a non-GPL program",
                    p.name
                ),
            );
        }
        if let Some(l) = path.state.lock
            && id != SPIN_UNLOCK
        {
            self.related = vec![(l.pc as usize, "the lock was taken by bpf_spin_lock".into())];
            return err(
                pc,
                format!(
                    "function calls are not allowed while holding a lock: bpf_{} is called while the bpf_spin_lock taken at insn {} is held; call bpf_spin_unlock first",
                    p.name, l.pc
                ),
            );
        }
        let mut release: Option<u32> = None;
        let mut lock_arg: Option<Reg> = None;
        let mut sock_arg: Option<Reg> = None;
        let mut map: Option<u32> = None;
        let mut callback: Option<u32> = None;
        let mut regs = [Reg::NOT_INIT; 5];
        for (i, arg) in p.args.iter().enumerate() {
            let rn = i + 1;
            let r = self
                .read(path, pc, rn)
                .map_err(|(pc, m)| (pc, format!("{m} (argument {rn} of bpf_{})", p.name)))?;
            regs[i] = r;
            let size_of_next = || -> VResult<Option<u64>> {
                let s = path.state.cur().regs[rn + 1];
                match s.kind {
                    Kind::Scalar => Ok(Some(s.var.umax)),
                    _ => err(
                        pc,
                        format!("R{} must be a size (scalar) for bpf_{}", rn + 1, p.name),
                    ),
                }
            };
            match arg {
                Arg::Anything => {}
                Arg::Map => match r.kind {
                    Kind::MapPtr { map: m } => map = Some(m),
                    _ => {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=map_ptr (argument of bpf_{})",
                                r.kind.name(),
                                p.name
                            ),
                        );
                    }
                },
                Arg::MapKey | Arg::MapValue | Arg::UninitMapValue => {
                    let m = self.map(map.unwrap_or(0), pc)?.clone();
                    let n = if *arg == Arg::MapKey {
                        m.key_size
                    } else {
                        m.value_size
                    } as i64;
                    let write = *arg == Arg::UninitMapValue;
                    self.check_mem_arg(path, pc, rn, &r, n, write, &format!("bpf_{}", p.name))?;
                    if !(self.opts.privileged && self.opts.allow_ptr_leaks)
                        && let Some(leak) = self.spilled_pointer_in(path, &r, n)
                    {
                        return err(
                            pc,
                            format!(
                                "R{rn} leaks addr into map {}: {leak}, and map contents are visible to user space{}",
                                map.unwrap_or(0),
                                if self.opts.privileged {
                                    " (allow with --allow-ptr-leaks)"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                    // A constant index past the end of an array: the update
                    // can never succeed (the kernel only fails it at run time).
                    if *arg == Arg::MapKey
                        && id as u32 == helper::MAP_UPDATE_ELEM
                        && matches!(m.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY)
                        && let Some(k) = self.stack_const(path, &r, m.key_size)
                        && k >= m.max_entries as u64
                    {
                        return err(
                            pc,
                            format!(
                                "R{rn} key {} is out of range for array map {} ({} entries): bpf_map_update_elem always fails",
                                k as u32 as i32,
                                map.unwrap_or(0),
                                m.max_entries
                            ),
                        );
                    }
                }
                Arg::FixedMem { size, write } => {
                    self.check_mem_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        *size as i64,
                        *write,
                        &format!("bpf_{}", p.name),
                    )?;
                }
                Arg::CtxOrNull if r.kind == Kind::Scalar && r.var.konst() == Some(0) => {}
                Arg::StackOrNull => {
                    let null = r.kind == Kind::Scalar && r.var.konst() == Some(0);
                    if !null && !matches!(r.kind, Kind::Stack { .. }) {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=fp (argument of bpf_{}: a pointer to the stack, or NULL)",
                                r.kind.name(),
                                p.name
                            ),
                        );
                    }
                }
                Arg::MemRw => {
                    let n = size_of_next()?.unwrap_or(0);
                    if n > 1 << 29 {
                        return err(
                            pc,
                            format!(
                                "R{} unbounded size for bpf_{}: bound it first",
                                rn + 1,
                                p.name
                            ),
                        );
                    }
                    let what = format!("bpf_{}", p.name);
                    self.check_mem_arg(path, pc, rn, &r, n as i64, false, &what)?;
                    self.check_mem_arg(path, pc, rn, &r, n as i64, true, &what)?;
                }
                Arg::Mem | Arg::UninitMem | Arg::MemOrNull => {
                    let n = size_of_next()?.unwrap_or(0);
                    if *arg == Arg::MemOrNull && r.kind == Kind::Scalar && r.var.konst() == Some(0)
                    {
                        continue;
                    }
                    if n > 1 << 29 {
                        return err(
                            pc,
                            format!(
                                "R{} unbounded size for bpf_{}: bound it first",
                                rn + 1,
                                p.name
                            ),
                        );
                    }
                    self.check_mem_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        n as i64,
                        *arg == Arg::UninitMem,
                        &format!("bpf_{}", p.name),
                    )?;
                }
                Arg::Size | Arg::SizeOrZero => {
                    if r.kind != Kind::Scalar {
                        return err(
                            pc,
                            format!("R{rn} must be a scalar size for bpf_{}", p.name),
                        );
                    }
                    if *arg == Arg::Size && r.var.umin == 0 && r.var.umax == 0 {
                        return err(
                            pc,
                            format!("R{rn} invalid zero-sized read for bpf_{}", p.name),
                        );
                    }
                }
                Arg::Ctx | Arg::CtxOrNull => {
                    if r.kind == Kind::Ctx && (r.off != 0 || r.var.konst() != Some(0)) {
                        return err(
                            pc,
                            format!(
                                "R{rn} must point to the start of the context, not ctx{:+} (argument of bpf_{}): pass the context pointer unmodified",
                                r.off, p.name
                            ),
                        );
                    }
                    if r.kind != Kind::Ctx || r.off != 0 {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=ctx (argument of bpf_{})",
                                r.kind.name(),
                                p.name
                            ),
                        );
                    }
                }
                Arg::Func => match r.kind {
                    Kind::Func { pc: f } => callback = Some(f),
                    _ => {
                        return err(
                            pc,
                            format!("R{rn} must be a function (callback) for bpf_{}", p.name),
                        );
                    }
                },
                Arg::SpinLock => {
                    self.check_spin_lock_arg(rn, pc, &r)?;
                    lock_arg = Some(r);
                }
                Arg::RingbufMem => {
                    release = Some(self.check_release_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        RefKind::RingbufRecord,
                        p.name,
                    )?);
                }
                Arg::ReleaseSock => {
                    release =
                        Some(self.check_release_arg(path, pc, rn, &r, RefKind::Socket, p.name)?);
                }
                Arg::SockCommon => {
                    if !matches!(r.kind, Kind::Sock(_)) {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=sock_common, sock, tcp_sock (argument of bpf_{}){}",
                                r.kind.name(),
                                p.name,
                                if r.kind.is_or_null() {
                                    ": compare it with 0 first"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                    sock_arg = Some(r);
                }
                Arg::ConstStr => {
                    if !matches!(r.kind, Kind::MapValue { .. } | Kind::Stack { .. }) {
                        return err(pc, format!("R{rn} must point to a constant string"));
                    }
                }
            }
        }
        // Specific map-type rules.
        if let Some(m) = map {
            let info = self.map(m, pc)?;
            let mt = info.map_type;
            let ok = map_fits_helper(mt, id as u32);
            if !ok {
                return err(
                    pc,
                    format!("cannot pass map_type {mt} into func bpf_{}#{id}", p.name),
                );
            }
        }
        let ret = match p.ret {
            Ret::Integer => Reg::unknown(),
            // A void helper leaves R0 unreadable (bpf_tail_call's caller
            // must not read it).
            Ret::Void => Reg::NOT_INIT,
            Ret::MapValueOrNull => {
                let m = map.unwrap_or(0);
                let inner_is_map = self.opts.maps.get(m as usize).is_some_and(|i| {
                    matches!(i.map_type, map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS)
                });
                let id = path.state.fresh_id();
                let mut r = Reg::ptr(if inner_is_map {
                    Kind::MapPtrOrNull {
                        map: self.opts.maps[m as usize].inner.unwrap_or(m),
                    }
                } else {
                    Kind::MapValueOrNull { map: m }
                });
                r.id = id;
                r
            }
            Ret::SockOrNull { kind, acquires } => {
                let mut r = Reg::ptr(Kind::SockOrNull(kind));
                r.id = path.state.fresh_id();
                if acquires {
                    r.ref_obj_id = r.id;
                    let callback_frame = path.state.callback_frame();
                    path.state.refs.push(RefState {
                        id: r.id,
                        kind: RefKind::Socket,
                        pc: pc as u32,
                        callback_frame,
                    });
                } else if let Some(s) = sock_arg {
                    // A view of the argument: released with it.
                    r.ref_obj_id = s.ref_obj_id;
                }
                r
            }
            Ret::MemOrNullSizeArg(a) => {
                let s = regs[a];
                match s.var.konst() {
                    Some(n) if s.kind == Kind::Scalar && n > 0 && n < 1 << 29 => {
                        let mut r = Reg::ptr(Kind::MemOrNull { size: n as u32 });
                        r.id = path.state.fresh_id();
                        // The record is a reference: it must be submitted or
                        // discarded on every path (a NULL result holds nothing).
                        r.ref_obj_id = r.id;
                        let callback_frame = path.state.callback_frame();
                        path.state.refs.push(RefState {
                            id: r.id,
                            kind: RefKind::RingbufRecord,
                            pc: pc as u32,
                            callback_frame,
                        });
                        r
                    }
                    _ => {
                        return err(
                            pc,
                            format!("R{} must be a constant size for bpf_{}", a + 1, p.name),
                        );
                    }
                }
            }
        };
        if id == TAIL_CALL {
            // A successful tail call never returns: nothing held may be left.
            self.check_leaks(path, pc, "tail_call", None)?;
        }
        if let Some(id) = release {
            path.state.release(id, pc, self.opts.privileged);
        }
        if let Some(r) = lock_arg {
            self.lock_or_unlock(path, pc, id, &r)?;
        }
        // A tail call from a subprogram that succeeds returns to the
        // subprogram's caller from another program, which may have changed
        // the packet (from the main program it never returns).
        if p.changes_packet || (id == TAIL_CALL && path.state.frames.len() > 1) {
            invalidate_packet(&mut path.state, pc, self.opts.privileged);
        }
        {
            let f = path.state.cur_mut();
            for r in 1..=5 {
                f.regs[r] = Reg::NOT_INIT;
            }
            f.regs[0] = ret;
        }
        // Callbacks run zero or more times: explore the body as a call from
        // here, returning to the instruction after the helper call.
        if let Some(cb) = callback {
            let mut other = Path {
                pc,
                state: path.state.clone(),
                last: path.last,
                trail: path.trail.clone(),
            };
            let args = match id as u32 {
                helper::LOOP => [
                    Reg::scalar(Scalar::urange(0, u32::MAX as u64)),
                    regs[2],
                    Reg::NOT_INIT,
                    Reg::NOT_INIT,
                    Reg::NOT_INIT,
                ],
                _ => {
                    let m = map.unwrap_or(0);
                    let info = self.map(m, pc)?.clone();
                    let mut key = Reg::ptr(Kind::Mem {
                        size: info.key_size,
                        writable: false,
                    });
                    key.off = 0;
                    [
                        Reg::ptr(Kind::MapPtr { map: m }),
                        key,
                        Reg::ptr(Kind::MapValue { map: m }),
                        regs[2],
                        Reg::NOT_INIT,
                    ]
                }
            };
            self.push_frame(&mut other, pc, cb as usize, pc, true, Some(args))?;
            let caller = other.state.frames[..other.state.frames.len() - 1].to_vec();
            other.state.cur_mut().site = Some(std::rc::Rc::new(CallbackSite {
                callsite: pc,
                target: cb as usize,
                args,
                caller,
            }));
            path.pc = pc + 1;
            return Ok(Step::Next(vec![other]));
        }
        path.pc = pc + 1;
        Ok(Step::Next(vec![]))
    }

    /// A pointer argument to `n` bytes, readable (and initialized) or writable.
    /// Where a pointer spilled in the `n` stack bytes at `r` lives, as
    /// "fp-8 holds a ctx pointer".
    fn spilled_pointer_in(&self, path: &Path, r: &Reg, n: i64) -> Option<String> {
        let Kind::Stack { frame } = r.kind else {
            return None;
        };
        let a = r.off + r.var.smin.max(-STACK) + STACK;
        let b = r.off + r.var.smax.min(0) + STACK + n;
        let st = &path.state.frames.get(frame as usize)?.stack;
        st.spills.iter().find_map(|(k, v)| {
            let k = *k as i64;
            (k < b && k + 8 > a && v.kind.is_pointer())
                .then(|| format!("stack fp{} holds a {} pointer", k - STACK, v.kind.name()))
        })
    }

    /// The constant stored at the stack address in `r` with a store of
    /// exactly `size` bytes, if the verifier knows it.
    fn stack_const(&self, path: &Path, r: &Reg, size: u32) -> Option<u64> {
        let Kind::Stack { frame } = r.kind else {
            return None;
        };
        let a = usize::try_from(r.off + r.var.konst()? as i64 + STACK).ok()?;
        let st = &path.state.frames.get(frame as usize)?.stack;
        match st.consts.get(&a) {
            Some(&(n, v)) if n as u32 == size => Some(v),
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_mem_arg(
        &mut self,
        path: &mut Path,
        pc: usize,
        rn: usize,
        r: &Reg,
        n: i64,
        write: bool,
        helper: &str,
    ) -> VResult<()> {
        if n == 0 {
            return Ok(());
        }
        match r.kind {
            Kind::Stack { .. } => {
                // Writable memory need not be initialized; mark it written.
                if write {
                    for i in 0..n {
                        self.mem_access(path, pc, rn, r, i, 1, Some(Reg::unknown()))
                            .map_err(|(pc, m)| {
                                (pc, format!("{m} (argument {rn} of {helper}, {n} bytes)"))
                            })?;
                    }
                } else {
                    for i in 0..n {
                        self.mem_access(path, pc, rn, r, i, 1, None)
                            .map_err(|(pc, m)| {
                                (pc, format!("{m} (argument {rn} of {helper}, {n} bytes)"))
                            })?;
                    }
                }
                Ok(())
            }
            Kind::MapValue { .. } | Kind::Packet | Kind::PacketMeta | Kind::Mem { .. } => self
                .mem_access(
                    path,
                    pc,
                    rn,
                    r,
                    0,
                    n,
                    if write { Some(Reg::unknown()) } else { None },
                )
                .map(|_| ())
                .map_err(|(pc, m)| (pc, format!("{m} (argument {rn} of {helper}, {n} bytes)"))),
            Kind::Scalar if r.var.konst() == Some(0) => err(
                pc,
                format!("R{rn} type=scalar: {helper} needs a pointer here, not NULL"),
            ),
            k => err(
                pc,
                format!(
                    "R{rn} type={} expected=pointer to memory (argument of {helper})",
                    k.name()
                ),
            ),
        }
    }
}

impl Verifier<'_> {
    /// A pointer given to a releasing helper: it must carry a reference of
    /// `kind` that this path still holds, unmodified. Returns the id.
    fn check_release_arg(
        &mut self,
        path: &Path,
        pc: usize,
        rn: usize,
        r: &Reg,
        kind: RefKind,
        helper: &str,
    ) -> VResult<u32> {
        let (expected, right_kind) = match kind {
            RefKind::RingbufRecord => ("ringbuf_mem", matches!(r.kind, Kind::Mem { .. })),
            RefKind::Socket => (
                "sock_common, sock, tcp_sock",
                matches!(r.kind, Kind::Sock(_)),
            ),
        };
        let held = path
            .state
            .refs
            .iter()
            .find(|x| r.ref_obj_id != 0 && x.id == r.ref_obj_id)
            .copied();
        let Some(held) = held.filter(|h| h.kind == kind && right_kind) else {
            let why = match r.gone {
                Gone::No if r.kind.is_or_null() => {
                    " (it may be NULL: compare it with 0 first)".to_string()
                }
                Gone::No => {
                    format!(" (bpf_{helper} takes only a pointer returned by the acquiring helper)")
                }
                g => g.explain(),
            };
            if let Gone::Released { at, acquired } = r.gone {
                self.related = vec![
                    (acquired as usize, "the reference was acquired".into()),
                    (at as usize, "it was released".into()),
                ];
            }
            return err(
                pc,
                format!("R{rn} type={} expected={expected}{why}", r.kind.name()),
            );
        };
        if r.off != 0 || r.var.konst() != Some(0) {
            self.related = vec![(held.pc as usize, "the reference was acquired".into())];
            return err(
                pc,
                format!(
                    "R{rn} must have zero offset when passed to release func: bpf_{helper} needs the pointer the acquiring helper returned, not {}",
                    r
                ),
            );
        }
        if let Some(k) = path.state.callback_frame()
            && held.callback_frame != Some(k)
        {
            self.related = vec![(held.pc as usize, "the reference was acquired".into())];
            return err(
                pc,
                format!(
                    "R{rn} releases a reference acquired outside this callback (at insn {}): a callback may run any number of times, so it may release only what it acquired itself",
                    held.pc
                ),
            );
        }
        Ok(held.id)
    }

    /// `bpf_spin_lock` / `bpf_spin_unlock`'s argument, as the kernel's
    /// `process_spin_lock` checks it: the map value's own lock, at a
    /// constant offset, in a map with BTF.
    fn check_spin_lock_arg(&self, rn: usize, pc: usize, r: &Reg) -> VResult<()> {
        let Kind::MapValue { map } = r.kind else {
            return err(
                pc,
                format!(
                    "R{rn} type={} expected=map_value: bpf_spin_lock needs a pointer to the lock in a map value",
                    r.kind.name()
                ),
            );
        };
        let Some(c) = r.var.konst() else {
            return err(
                pc,
                format!(
                    "R{rn} doesn't have constant offset. bpf_spin_lock has to be at the constant offset"
                ),
            );
        };
        let m = self.map(map, pc)?;
        if !m.has_btf {
            return err(
                pc,
                format!(
                    "map '{}' has to have BTF in order to use bpf_spin_lock (declare it with __type(value, ...))",
                    m.name
                ),
            );
        }
        let Some(at) = m.spin_lock else {
            return err(
                pc,
                format!(
                    "map '{}' has no valid spin_lock: its value type holds no struct bpf_spin_lock",
                    m.name
                ),
            );
        };
        let off = r.off + c as i64;
        if off != at as i64 {
            return err(
                pc,
                format!("off {off} doesn't point to 'struct bpf_spin_lock' that is at {at}"),
            );
        }
        Ok(())
    }

    fn lock_or_unlock(&mut self, path: &mut Path, pc: usize, id: i32, r: &Reg) -> VResult<()> {
        let Kind::MapValue { map } = r.kind else {
            return Ok(());
        };
        if id == SPIN_LOCK {
            if let Some(l) = path.state.lock {
                self.related = vec![(l.pc as usize, "the lock held was taken".into())];
                return err(pc, "Locking two bpf_spin_locks are not allowed");
            }
            path.state.lock = Some(LockState {
                map,
                id: r.id,
                pc: pc as u32,
            });
            return Ok(());
        }
        match path.state.lock {
            None => err(
                pc,
                "bpf_spin_unlock without taking a lock: no bpf_spin_lock is held on this path",
            ),
            Some(l) if l.map != map || l.id != r.id => {
                self.related = vec![(l.pc as usize, "the lock held was taken".into())];
                err(
                    pc,
                    format!(
                        "bpf_spin_unlock of different lock: the lock held was taken at insn {} through another map value",
                        l.pc
                    ),
                )
            }
            Some(_) => {
                path.state.lock = None;
                Ok(())
            }
        }
    }
}

/// Every packet pointer (and length measured against the packet) becomes
/// invalid: the helper at `pc` may have moved or resized the packet.
fn invalidate_packet(st: &mut State, pc: usize, privileged: bool) {
    let gone = Gone::PacketChanged { at: pc as u32 };
    st.for_each_reg(|r| {
        if matches!(r.kind, Kind::Packet | Kind::PacketMeta | Kind::PacketEnd) {
            *r = Reg::invalid(privileged, gone);
        }
        r.plen = None;
    });
}

/// Whether code reachable from `entry` (its function and every function it
/// calls) may change packet data: a packet-changing helper or a tail call.
fn may_change_packet(decoded: &[Option<Instruction>], n: usize, entry: usize) -> bool {
    let mut seen = vec![false; n];
    let mut work = vec![entry];
    while let Some(pc) = work.pop() {
        if pc >= n || seen[pc] {
            continue;
        }
        seen[pc] = true;
        let Some(insn) = decoded[pc] else { continue };
        let next = pc + insn.slots();
        let rel = |o: i64| (pc as i64 + 1 + o) as usize;
        match insn {
            Instruction::Exit => {}
            Instruction::Call(oxbpf_isa::CallTarget::Helper(id)) => {
                if id == TAIL_CALL
                    || u32::try_from(id)
                        .ok()
                        .and_then(oxbpf_abi::helpers::proto)
                        .is_some_and(|p| p.changes_pkt_data)
                {
                    return true;
                }
                work.push(next);
            }
            Instruction::Ja { offset, .. } => work.push(rel(offset as i64)),
            Instruction::Jmp { offset, .. } => {
                work.push(next);
                work.push(rel(offset as i64));
            }
            Instruction::Call(oxbpf_isa::CallTarget::Local(r)) => {
                work.push(next);
                work.push(rel(r as i64));
            }
            Instruction::LoadImm64 {
                imm: oxbpf_isa::Imm64::Func(r),
                ..
            } => {
                work.push(next);
                work.push(rel(r as i64));
            }
            _ => work.push(next),
        }
    }
    false
}

const TAIL_CALL: i32 = helper::TAIL_CALL as i32;
const SPIN_LOCK: i32 = helper::SPIN_LOCK as i32;
const SPIN_UNLOCK: i32 = helper::SPIN_UNLOCK as i32;

/// Whether helper `id` accepts a map of type `mt` (the kernel's
/// `check_map_func_compatibility`, for the helpers oxbpf knows).
fn map_fits_helper(mt: u32, id: u32) -> bool {
    use helper as h;
    use map_type as m;
    match id {
        h::MAP_LOOKUP_ELEM | h::MAP_UPDATE_ELEM | h::MAP_DELETE_ELEM => !matches!(
            mt,
            m::QUEUE
                | m::STACK
                | m::RINGBUF
                | m::BLOOM_FILTER
                | m::PERF_EVENT_ARRAY
                | m::PROG_ARRAY
        ),
        h::MAP_PUSH_ELEM | h::MAP_POP_ELEM | h::MAP_PEEK_ELEM => {
            matches!(mt, m::QUEUE | m::STACK | m::BLOOM_FILTER)
        }
        h::RINGBUF_OUTPUT | h::RINGBUF_RESERVE | h::RINGBUF_QUERY => mt == m::RINGBUF,
        h::TAIL_CALL => mt == m::PROG_ARRAY,
        h::PERF_EVENT_OUTPUT => mt == m::PERF_EVENT_ARRAY,
        h::REDIRECT_MAP => matches!(mt, m::DEVMAP | m::CPUMAP | m::XSKMAP | m::DEVMAP_HASH),
        h::SK_REDIRECT_MAP | h::SOCK_MAP_UPDATE | h::MSG_REDIRECT_MAP => mt == m::SOCKMAP,
        h::SOCK_HASH_UPDATE | h::MSG_REDIRECT_HASH | h::SK_REDIRECT_HASH => mt == m::SOCKHASH,
        _ => true,
    }
}

/// Branch decisions kept per path for diagnostics: the most recent ones
/// (between 64 and 128), so long loops cannot make paths grow without end.
fn push_trail(trail: &mut Vec<(usize, bool)>, step: (usize, bool)) {
    const KEEP: usize = 64;
    if trail.len() >= 2 * KEEP {
        trail.drain(..trail.len() - KEEP);
    }
    trail.push(step);
}
