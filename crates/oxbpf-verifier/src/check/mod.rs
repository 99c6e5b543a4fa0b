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
/// Instructions of history a path keeps between stored states.
const MAX_HIST: usize = 512;

/// A stored state at an instruction, with the number of live paths that
/// still pass through it: it may prune other paths only once complete.
struct Checkpoint {
    state: State,
    /// What the code after it needed precise (see [`precise`]).
    prec: Prec,
    /// The part of `prec` that instructions used (not the comparisons of
    /// converged iterator loops): what an iterator loop may not widen.
    uses: Prec,
    /// The instructions from the parent checkpoint to this one.
    hist: HistList,
    live: u32,
    /// Stack slots (per frame depth) whose content the code after this
    /// state read before writing it — the kernel's REG_LIVE_READ marks:
    /// once the state is complete, pruning ignores the other slots.
    reads: [u64; 8],
    /// Stack slots wholly written between the parent checkpoint and this
    /// one (a read below here of such a slot says nothing of the parent).
    written: [u64; 8],
    /// Hash of the state as the code ahead sees it (live registers only),
    /// so the infinite-loop check compares full states only when it may match.
    hash: u64,
    /// Its instruction.
    pc: usize,
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
        // Iterations of an iterator loop differ (never an infinite loop).
        for (k, it) in &f.stack.iters {
            (k, it.depth, it.active).hash(&mut h);
        }
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
    /// The instructions since the last checkpoint (for precision), shared
    /// with the paths forked from this one.
    hist: HistList,
    /// Stack slots (a bit per 8-byte slot, per frame depth) this path has
    /// wholly written since its last checkpoint: a later read of one of
    /// them does not depend on what the checkpoint's state held there.
    wrote: [u64; 8],
}

/// The states stored at one instruction: complete ones (which prune), in
/// the order they completed, and ones still being explored, with their
/// hashes.
#[derive(Default)]
struct PcStates {
    done: Vec<usize>,
    /// By hash: a long list of open states (a loop that keeps changing a
    /// register) costs one lookup, not a scan.
    open: HashMap<u64, Vec<usize>>,
    open_count: usize,
}

struct Verifier<'a> {
    insns: &'a [RawInsn],
    opts: &'a Options,
    checkpoints: Vec<Checkpoint>,
    at: HashMap<usize, PcStates>,
    prune_points: Vec<bool>,
    /// Registers live on entry to each instruction (bit i = ri).
    live: Vec<u16>,
    processed: u64,
    /// States stored now and at most, the longest list at one
    /// instruction, and paths pruned (for [`crate::Stats`]).
    states_now: u64,
    stats: crate::Stats,
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
    /// Helper prototypes already looked up for this program type (a
    /// helper is called on many paths; the lookup builds its argument list).
    protos: HashMap<i32, std::rc::Rc<crate::protos::Proto>>,
    /// First instruction of each function (the entry, local call targets,
    /// callbacks), sorted.
    fn_starts: Vec<usize>,
    /// Deepest stack byte each function's frame used on any path, and the
    /// functions each calls (local calls and callbacks): the combined stack
    /// of every chain of calls is checked from these once all paths are
    /// explored, as the kernel's check_max_stack_depth (the check on each
    /// path alone misses what pruned paths would have reached).
    fn_depth: Vec<i64>,
    fn_calls: Vec<Vec<(usize, usize)>>,
    /// The kernel's BTF, when given, and the typed context of a
    /// BTF-attached program.
    kbtf: Option<std::rc::Rc<crate::kbtf::Kbtf>>,
    ctx_args: Option<crate::kbtf::CtxArgs>,
    /// Each instruction decoded once (None inside a 64-bit load).
    decoded: Vec<Option<Instruction>>,
    /// A loop head's state was joined or widened (`Options::widen_loops`).
    widened: bool,
    /// Calls of an iterator's `_next` kfunc: prune points where a path
    /// back in a state an earlier iteration holds has converged.
    iter_next: Vec<bool>,
    /// The checkpoint the last visit stored, if it stored one.
    stored_now: Option<usize>,
    /// Precision marks being made for a converged iterator loop (see
    /// [`Checkpoint::uses`]).
    convergence_marks: bool,
    /// The constants the program's conditional jumps compare with (and
    /// their neighbours), sorted: where widening stops a moving bound.
    thresholds: Vec<i64>,
}

type VResult<T> = Result<T, (usize, String)>;

fn err<T>(pc: usize, msg: impl Into<String>) -> VResult<T> {
    Err((pc, msg.into()))
}

/// Verifies a program (linked instructions, map references as
/// `BPF_PSEUDO_MAP_IDX(_VALUE)` or fds taken as indices).
pub fn verify(insns: &[RawInsn], opts: &Options) -> Result<Report, Box<Rejection>> {
    // Widened loops prove less (no termination) than walking each
    // iteration: walk them first, and widen only what that cannot prove.
    if opts.widen_loops && opts.entry.is_none() {
        let exact = Options {
            widen_loops: false,
            ..opts.clone()
        };
        return match verify_all(insns, &exact) {
            Ok(r) => Ok(r),
            Err(e) => match verify_all(insns, opts) {
                Ok(r) => Ok(r),
                // Say why the kernel's way failed, unless only its
                // complexity limit stopped it.
                Err(w) if e.message.contains("too complex") => Err(w),
                Err(_) => Err(e),
            },
        };
    }
    verify_all(insns, opts)
}

fn verify_all(insns: &[RawInsn], opts: &Options) -> Result<Report, Box<Rejection>> {
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
                let mut s = report.stats;
                s.add(&e.stats);
                e.stats = s;
                e
            })?;
            report.insns_processed += r.insns_processed;
            report.stats.add(&r.stats);
            report.widened |= r.widened;
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
        states_now: 0,
        stats: crate::Stats::default(),
        log: Vec::new(),
        related: Vec::new(),
        callback_entry: vec![false; insns.len() + 1],
        global_changes_pkt: Vec::new(),
        protos: HashMap::new(),
        fn_starts: Vec::new(),
        fn_depth: Vec::new(),
        fn_calls: Vec::new(),
        kbtf: opts
            .kernel_btf
            .clone()
            .map(|k| std::rc::Rc::new(crate::kbtf::Kbtf::new(k))),
        ctx_args: None,
        decoded: Vec::new(),
        widened: false,
        iter_next: Vec::new(),
        stored_now: None,
        convergence_marks: false,
        thresholds: Vec::new(),
    };
    if let (Some(k), Some(t)) = (&v.kbtf, &opts.btf_target) {
        match k.ctx_args(t) {
            Ok(c) => v.ctx_args = Some(c),
            Err(message) => {
                return Err(Box::new(Rejection {
                    pc: 0,
                    insn: String::new(),
                    message,
                    regs: Vec::new(),
                    path: Vec::new(),
                    insns_processed: 0,
                    stats: crate::Stats::default(),
                    log: Vec::new(),
                    related: Vec::new(),
                }));
            }
        }
    }
    crate::state::BTF_NAMES.with(|b| *b.borrow_mut() = opts.kernel_btf.clone());
    let result = v.run();
    v.stats.insns_processed = v.processed;
    v.stats.total_states = v.checkpoints.len() as u64;
    match result {
        Ok(()) => Ok(Report {
            insns_processed: v.processed,
            stats: v.stats,
            log: v.log,
            widened: v.widened,
        }),
        Err((pc, message, regs, trail)) => Err(Box::new(Rejection {
            pc,
            insn: decode_at(insns, pc.min(insns.len().saturating_sub(1)))
                .map(|i| insn_text(&i))
                .unwrap_or_default(),
            message,
            regs,
            path: trail,
            insns_processed: v.processed,
            stats: v.stats,
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
            // After a call, as the kernel's visit_func_call_insn: paths
            // that differ only in what the callee left behind meet there.
            if matches!(insn, Instruction::Call(_)) && pc + 1 < n {
                self.prune_points[pc + 1] = true;
            }
        }
        // An iterator's `_next` is a prune point (the kernel forces a
        // checkpoint there): that is where its loops converge.
        self.iter_next = vec![false; n + 1];
        for (pc, d) in decoded.iter().enumerate() {
            if let Some(Instruction::Call(oxbpf_isa::CallTarget::Kfunc { btf_id, module: 0 })) = d
                && let Some(k) = &self.kbtf
                && let Some(t) = u32::try_from(*btf_id).ok().and_then(|id| k.ty(id))
                && crate::kfuncs::lookup(&t.name)
                    .is_some_and(|m| m.special == crate::kfuncs::Special::IterNext)
            {
                self.iter_next[pc] = true;
                self.prune_points[pc] = true;
            }
        }
        self.live = liveness(&decoded, n);
        self.decoded = decoded.clone();
        if self.opts.widen_loops {
            let mut t: Vec<i64> = decoded
                .iter()
                .flatten()
                .filter_map(|i| match i {
                    Instruction::Jmp {
                        src: oxbpf_isa::Source::Imm(c),
                        ..
                    } => Some(*c as i64),
                    _ => None,
                })
                .flat_map(|c| [c.saturating_sub(1), c, c.saturating_add(1)])
                .collect();
            t.sort_unstable();
            t.dedup();
            self.thresholds = t;
        }
        self.functions(&decoded, n);
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
        let reach = reachable(&decoded, n, 0);
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
                    pkt: false,
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
                        let mut r = Reg::ptr(Kind::MemOrNull {
                            size: *size,
                            writable: true,
                            pkt: false,
                        });
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
            hist: HistList::default(),
            wrote: [0; 8],
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
                            self.stats.pruned += 1;
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
                let insn = decoded[pc].expect("reachable insns are decoded");
                let mut decided = Prec::default();
                if self.opts.precise {
                    let helper_mask = match insn {
                        Instruction::Call(oxbpf_isa::CallTarget::Helper(id)) => {
                            self.helper_precise_args(id)
                        }
                        Instruction::Call(oxbpf_isa::CallTarget::Kfunc { btf_id, .. }) => {
                            self.kfunc_precise_args(btf_id)
                        }
                        _ => 0,
                    };
                    let (entry, need, jmp) =
                        precision_use(&path.state, pc, insn, &self.opts.global_funcs, helper_mask);
                    if !need.is_empty() {
                        let end = (path.state.frames.len() - 1) as u8;
                        self.mark_precise(&path.hist, path.last, need, end);
                    }
                    // A path that stores no state for long (every list at
                    // its instructions full) keeps a bounded history: past
                    // the bound, an entry no walk can undo stands for the
                    // rest, and marks there make the whole chain precise.
                    if path.hist.len() >= MAX_HIST {
                        path.hist = HistList::default();
                        path.hist.push(Hist::unknown());
                    }
                    path.hist.push(entry);
                    decided = jmp;
                }
                let end = (path.state.frames.len() - 1) as u8;
                let result = self.step(&mut path, insn);
                // A conditional jump that only one way could take was
                // decided by its scalars' ranges: they are precise.
                let one_way = match &result {
                    Ok(Step::Done) => true,
                    Ok(Step::Next(v)) => v.is_empty(),
                    Err(_) => false,
                };
                if !decided.is_empty() && one_way {
                    self.mark_precise(&path.hist, path.last, decided, end);
                }
                if let Some(before) = before {
                    // One line per step: the instruction and the registers
                    // it changed, in the current frame.
                    let text = decoded[pc].map(|i| insn_text(&i)).unwrap_or_default();
                    let mut line = format!("{pc}: {text}");
                    if let Some(f) = path.state.frames.last() {
                        for (i, (b, a)) in before.iter().zip(&f.regs).enumerate() {
                            if b != a && a.kind != Kind::NotInit {
                                line.push_str(&format!(" ; R{i}={a}"));
                            }
                        }
                    }
                    if self.log.len() < 100_000_000 {
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
        let (total, frames, at) = self.deepest(self.func_of(entry_pc), &mut Vec::new());
        if total > STACK {
            return Err((
                at.unwrap_or(entry_pc),
                format!("combined stack size of {frames} calls is {total}, too large (max 512)"),
                vec![],
                vec![],
            ));
        }
        Ok(())
    }

    /// Function boundaries and the static call graph.
    fn functions(&mut self, decoded: &[Option<Instruction>], n: usize) {
        // (instruction, function it calls or passes as a callback)
        let calls: Vec<(usize, usize)> = decoded
            .iter()
            .enumerate()
            .filter_map(|(pc, d)| {
                let rel = match d {
                    Some(Instruction::Call(oxbpf_isa::CallTarget::Local(rel))) => *rel as i64,
                    Some(Instruction::LoadImm64 {
                        imm: oxbpf_isa::Imm64::Func(rel),
                        ..
                    }) => *rel as i64,
                    _ => return None,
                };
                let t = pc as i64 + 1 + rel;
                (0..n as i64).contains(&t).then_some((pc, t as usize))
            })
            .collect();
        let mut starts = vec![0];
        starts.extend(self.opts.global_funcs.iter().map(|g| g.pc));
        starts.extend(calls.iter().map(|&(_, t)| t));
        starts.sort_unstable();
        starts.dedup();
        self.fn_starts = starts;
        self.fn_depth = vec![0; self.fn_starts.len()];
        self.fn_calls = vec![Vec::new(); self.fn_starts.len()];
        for (pc, t) in calls {
            // Global functions are verified on their own, with their own
            // stacks counted there.
            if self.opts.global_funcs.iter().any(|g| g.pc == t) {
                continue;
            }
            let (from, to) = (self.func_of(pc), self.func_of(t));
            self.fn_calls[from].push((pc, to));
        }
    }

    /// The function holding instruction `pc`.
    fn func_of(&self, pc: usize) -> usize {
        self.fn_starts
            .partition_point(|&s| s <= pc)
            .saturating_sub(1)
    }

    /// Frame `fi` of the path used stack down to `depth` bytes.
    pub(crate) fn note_depth(&mut self, path: &Path, pc: usize, fi: usize, depth: i64) {
        let f = match path.state.frames.get(fi + 1) {
            Some(callee) => self.func_of(callee.ret_pc.saturating_sub(1)),
            None => self.func_of(pc),
        };
        if let Some(d) = self.fn_depth.get_mut(f) {
            *d = (*d).max(depth);
        }
    }

    /// The deepest chain of calls from function `f`: (its combined stack,
    /// frames, the call instruction that adds the last frame).
    fn deepest(&self, f: usize, seen: &mut Vec<usize>) -> (i64, usize, Option<usize>) {
        let own = (self.fn_depth[f] + 7) / 8 * 8;
        let mut best = (own, 1, None);
        if seen.contains(&f) {
            return best;
        }
        seen.push(f);
        for &(pc, g) in &self.fn_calls[f] {
            let (d, frames, at) = self.deepest(g, seen);
            if own + d > best.0 {
                best = (own + d, frames + 1, at.or(Some(pc)));
            }
        }
        seen.pop();
        best
    }

    /// Marks `set` (places of the state after `hist`, in frame `end`)
    /// precise in every stored state the values came through.
    fn mark_precise(&mut self, hist: &HistList, last: Option<usize>, mut set: Prec, end: u8) {
        if set.all || !precise::backtrack(&self.decoded, hist, &mut set, end) {
            self.mark_all(last);
            return;
        }
        let mut at = last;
        while let Some(c) = at {
            if set.is_empty() {
                return;
            }
            let cp = &mut self.checkpoints[c];
            precise::settle(&cp.state, &mut set);
            let new_use = !self.convergence_marks && cp.uses.merge(&set);
            if !cp.prec.merge(&set) && !new_use {
                return;
            }
            let end = cp.state.frames.len().saturating_sub(1) as u8;
            let hist = std::mem::take(&mut cp.hist);
            let ok = precise::backtrack(&self.decoded, &hist, &mut set, end);
            let cp = &mut self.checkpoints[c];
            cp.hist = hist;
            at = cp.parent;
            if !ok {
                self.mark_all(at);
                return;
            }
        }
    }

    /// Every scalar of the stored states from `at` up is precise.
    fn mark_all(&mut self, mut at: Option<usize>) {
        let real = !self.convergence_marks;
        while let Some(c) = at {
            let cp = &mut self.checkpoints[c];
            if cp.prec.all && (cp.uses.all || !real) {
                return;
            }
            cp.prec.all = true;
            cp.prec.locs.clear();
            if real {
                cp.uses.all = true;
                cp.uses.locs.clear();
            }
            at = cp.parent;
        }
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
            // Complete: from now on it may prune. Its history served the
            // precision walks of the paths below it, which are all done.
            cp.hist = HistList::default();
            let (pc, parent, hash) = (cp.pc, cp.parent, cp.hash);
            if let Some(l) = self.at.get_mut(&pc)
                && let Some(same) = l.open.get_mut(&hash)
                && let Some(i) = same.iter().rposition(|&x| x == c)
            {
                same.remove(i);
                if same.is_empty() {
                    l.open.remove(&hash);
                }
                l.open_count -= 1;
                l.done.push(c);
            }
            at = parent;
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
        // The lists are taken out while they are scanned (the scan reads
        // other checkpoints) and put back before returning.
        let mut at = self.at.remove(&pc).unwrap_or_default();
        let mut verdict = None;
        let mut useless = false;
        // Widened loops: precision and liveness marks come from finished
        // subtrees, which a loop still being joined may not have; compare
        // exactly.
        let marks = !self.opts.widen_loops;
        // Complete states prune. Newest first: a path usually meets the
        // state its sibling stored most recently.
        for &c in at.done.iter().rev() {
            let cp = &self.checkpoints[c];
            let prec = (self.opts.precise && marks).then_some(&cp.prec);
            let reads = marks.then_some(&cp.reads);
            if covers(&cp.state, &path.state, live, prec, reads) {
                self.checkpoints[c].hits += 1;
                // What the proof from there read of the stack, this
                // path's states must keep (the kernel's
                // propagate_liveness).
                let reads = self.checkpoints[c].reads;
                for (d, m) in reads.iter().enumerate() {
                    if *m != 0 {
                        self.stack_read_mask(path, d, *m);
                    }
                }
                // The proof from here needed these precise: so does
                // this path, in the states it came through.
                if self.opts.precise {
                    let need = self.checkpoints[c].prec.clone();
                    let end = (path.state.frames.len() - 1) as u8;
                    self.mark_precise(&path.hist, path.last, need, end);
                }
                verdict = Some(Visit::Pruned);
                break;
            }
            let cp = &mut self.checkpoints[c];
            cp.misses += 1;
            useless |= cp.misses > cp.hits * 3 + 3;
        }
        // States still being explored: a callback entered again, or a loop
        // back to an unchanged state. Their hashes sit beside their ids,
        // so a long list of open states costs no state comparisons.
        // Widened loops: back at a loop head this path is still exploring,
        // the head's state either holds this one (the loop has reached its
        // fixpoint: every further iteration is one already explored) or is
        // joined with it — the second time round widened — and the path
        // goes on from the join.
        self.stored_now = None;
        if verdict.is_none()
            && self.iter_next.get(pc).copied().unwrap_or(false)
            && self.iter_converged(path, pc, live)
        {
            verdict = Some(Visit::Pruned);
        }
        if verdict.is_none() && self.opts.widen_loops {
            let mut head = None;
            let mut rounds = 0;
            let mut c = path.last;
            while let Some(x) = c {
                let cp = &self.checkpoints[x];
                if cp.pc == pc && cp.live > 0 {
                    head.get_or_insert(x);
                    rounds += 1;
                }
                c = cp.parent;
            }
            if let Some(h) = head {
                let hs = &self.checkpoints[h].state;
                if covers(hs, &path.state, live, None, None) {
                    self.widened = true;
                    self.at.insert(pc, at);
                    return Visit::Pruned;
                }
                let t = (rounds >= 2).then_some(self.thresholds.as_slice());
                if let Some(j) = crate::state::join_states(hs, &path.state, t) {
                    path.state = j;
                    self.widened = true;
                }
            }
        }
        if verdict.is_none() {
            let callback = self.callback_entry[pc] && path.state.cur().site.is_some();
            if callback {
                for &c in at.open.values().flatten() {
                    let cp = &self.checkpoints[c];
                    if covers(&cp.state, &path.state, live, None, None)
                        && self.is_ancestor(c, path.last)
                    {
                        // A callback entered again in a state an earlier call
                        // of the same path covers: the calls have converged.
                        self.checkpoints[c].hits += 1;
                        verdict = Some(Visit::Pruned);
                        break;
                    }
                }
            }
            if verdict.is_none()
                && !self.opts.widen_loops
                && let Some(same) = at.open.get(&hash)
            {
                for &c in same.iter().rev() {
                    let cp = &self.checkpoints[c];
                    if covers(&cp.state, &path.state, live, None, None)
                        && covers(&path.state, &cp.state, live, None, None)
                        && same_callback_calls(&cp.state, &path.state)
                        && self.is_ancestor(c, path.last)
                    {
                        // Back to a state this path is still exploring,
                        // unchanged in everything that matters: it loops
                        // forever.
                        verdict = Some(Visit::Loop);
                        break;
                    }
                }
            }
        }
        // Like the kernel, forget complete states that keep failing to
        // prune: they only cost comparisons.
        if useless {
            let cps = &mut self.checkpoints;
            let before = at.done.len();
            at.done.retain(|&c| {
                let cp = &mut cps[c];
                let keep = cp.misses <= cp.hits * 3 + 3;
                if !keep {
                    // Nothing compares with it any more: only its place in
                    // the tree (parent, marks) is still used.
                    cp.state.frames = Vec::new();
                    cp.state.refs = Vec::new();
                }
                keep
            });
            self.states_now -= (before - at.done.len()) as u64;
        }
        if let Some(v) = verdict {
            self.at.insert(pc, at);
            return v;
        }
        // Bound the number of stored states per instruction.
        if at.done.len() + at.open_count < 4096 {
            let id = self.checkpoints.len();
            // The path moves from its last checkpoint to this one, which
            // (incomplete) keeps the parent live in its place.
            self.checkpoints.push(Checkpoint {
                state: path.state.clone(),
                prec: Prec::default(),
                uses: Prec::default(),
                hist: std::mem::take(&mut path.hist),
                live: 1,
                reads: [0; 8],
                written: std::mem::take(&mut path.wrote),
                hash,
                pc,
                parent: path.last,
                hits: 0,
                misses: 0,
            });
            at.open.entry(hash).or_default().push(id);
            at.open_count += 1;
            self.states_now += 1;
            let st = &mut self.stats;
            st.peak_states = st.peak_states.max(self.states_now);
            st.max_states_per_insn = st
                .max_states_per_insn
                .max((at.done.len() + at.open_count) as u64);
            path.last = Some(id);
            self.stored_now = Some(id);
        }
        self.at.insert(pc, at);
        Visit::Continue
    }
}

impl Verifier<'_> {
    /// Whether a pointer may be stored where user space can read it (a
    /// map, the context): with `allow_ptr_leaks` for root, and always for
    /// the program types only CAP_PERFMON may load (the kernel's
    /// `is_perfmon_prog_type`: tracing programs, which read any kernel
    /// memory anyway, and key maps by kernel pointers as libbpf-tools do).
    pub(super) fn ptr_leaks_ok(&self) -> bool {
        use ProgramType as T;
        self.opts.privileged
            && (self.opts.allow_ptr_leaks
                || matches!(
                    self.opts.prog_type,
                    T::Kprobe
                        | T::Tracepoint
                        | T::PerfEvent
                        | T::RawTracepoint
                        | T::RawTracepointWritable
                        | T::Tracing
                        | T::Lsm
                        | T::StructOps
                        | T::Ext
                ))
    }

    /// The argument registers (bit n for rn) of kfunc `btf_id` whose exact
    /// value its checks use, as the kernel's check_kfunc_args marks them:
    /// constants (`__k`) and memory sizes (`__sz`, `__szk`). A kfunc whose
    /// prototype is not at hand: all.
    pub(super) fn kfunc_precise_args(&self, btf_id: i32) -> u8 {
        use oxbpf_obj::btf::Kind as BK;
        let Some(k) = &self.kbtf else { return 0x3e };
        let proto = u32::try_from(btf_id)
            .ok()
            .and_then(|id| k.ty(id))
            .and_then(|t| match t.kind {
                BK::Func { proto, .. } => k.ty(proto),
                _ => None,
            });
        let Some(BK::FuncProto { params, .. }) = proto.map(|p| p.kind.clone()) else {
            return 0x3e;
        };
        let mut mask = 0u8;
        for (i, (name, _)) in params.iter().enumerate().take(5) {
            if name.ends_with("__k") || name.ends_with("__sz") || name.ends_with("__szk") {
                mask |= 1 << (i + 1);
            }
        }
        mask
    }

    /// The argument registers (bit n for rn) of helper `id` whose exact
    /// value its prototype checks: sizes, constant sizes of a result, and
    /// scalars passed where a pointer may be NULL. Unknown helpers: all.
    pub(super) fn helper_precise_args(&mut self, id: i32) -> u8 {
        use crate::protos::{Arg, Ret};
        let p = match self.protos.get(&id) {
            Some(p) => p.clone(),
            None => match crate::protos::proto_for(id, self.opts.prog_type, self.opts.privileged) {
                Ok(p) => {
                    let p = std::rc::Rc::new(p);
                    self.protos.insert(id, p.clone());
                    p
                }
                Err(_) => return 0x3e,
            },
        };
        let mut mask = 0u8;
        for (i, a) in p.args.iter().enumerate().take(5) {
            let matters = !matches!(a, Arg::Anything);
            if matters {
                mask |= 1 << (i + 1);
            }
        }
        if let Ret::MemOrNullSizeArg(a) = p.ret {
            mask |= 1 << (a + 1);
        }
        mask
    }

    /// The path reads stack slots `mask` of frame depth `d`: the
    /// checkpoints it came through, up to one below which the path wrote
    /// them, must keep them when they prune.
    pub(super) fn stack_read_mask(&mut self, path: &Path, d: usize, mask: u64) {
        let Some(&w) = path.wrote.get(d) else { return };
        let mut mask = mask & !w;
        let mut c = path.last;
        while mask != 0
            && let Some(id) = c
        {
            let cp = &mut self.checkpoints[id];
            let new = mask & !cp.reads[d];
            if new == 0 {
                break;
            }
            cp.reads[d] |= new;
            mask = new & !cp.written[d];
            c = cp.parent;
        }
    }

    /// The path reads stack bytes `a..b` (indices into the 512-byte frame)
    /// of frame depth `d`.
    pub(super) fn stack_read(&mut self, path: &Path, d: usize, a: usize, b: usize) {
        if b <= a {
            return;
        }
        let (first, last) = (a / 8, (b - 1) / 8);
        let mask = if last - first >= 63 {
            u64::MAX
        } else {
            ((1u64 << (last - first + 1)) - 1) << first
        };
        self.stack_read_mask(path, d, mask);
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

/// The instructions reachable from `entry`, through jumps, local calls
/// and callback addresses.
fn reachable(decoded: &[Option<Instruction>], n: usize, entry: usize) -> Vec<bool> {
    let mut seen = vec![false; n];
    let mut work = vec![entry];
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
                        let ksym = self.opts.ksym_loads.iter().find(|(at, ..)| *at == pc);
                        let Some((_, name, weak)) = ksym.cloned() else {
                            return err(
                                pc,
                                "kernel variables (ld_imm64 of a BTF id) are not supported",
                            );
                        };
                        let func = self.kbtf.as_ref().map(|k| k.kernel.func(&name));
                        // A per-CPU variable: its address, readable only
                        // through bpf_per_cpu_ptr/bpf_this_cpu_ptr.
                        let var = self.kbtf.as_ref().and_then(|k| {
                            let (v, percpu) = k.kernel.var(&name)?;
                            let t = match k.ty(v)?.kind {
                                oxbpf_obj::btf::Kind::Var { target, .. } => target,
                                _ => return None,
                            };
                            let t = oxbpf_obj::btfindex::BtfTypes::resolve(k.idx(), t);
                            percpu.then_some(t)
                        });
                        if let Some(t) = var {
                            Reg::ptr(Kind::Btf {
                                id: t,
                                flags: crate::state::btf_flag::PERCPU,
                            })
                        } else {
                            match func {
                                // A kfunc's address (what bpf_ksym_exists
                                // tests): read-only memory of no size, as the
                                // kernel's check_pseudo_btf_id.
                                Some(Some(_)) => Reg::ptr(Kind::Mem {
                                    size: 0,
                                    writable: false,
                                    pkt: false,
                                }),
                                // A weak ksym the kernel lacks: libbpf loads 0.
                                Some(None) if weak => Reg::konst(0),
                                _ => {
                                    return err(
                                        pc,
                                        format!(
                                            "kernel variable {name} (ld_imm64 of a BTF id) is not supported by oxbpf's verifier yet{}",
                                            if self.kbtf.is_none() {
                                                " (and no kernel BTF was given)"
                                            } else {
                                                ""
                                            }
                                        ),
                                    );
                                }
                            }
                        }
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
}

mod alu;
mod calls;
mod dynptrs;
mod flow;
mod iters;
mod memory;
pub(crate) mod precise;

use precise::{Hist, HistList, Loc, Prec, StackUse};

/// For precision tracking, before `insn` runs in `st`: its history entry,
/// the scalars it uses in a way whose range matters (marked precise now),
/// and those of a conditional jump (precise if only one way is taken).
fn precision_use(
    st: &State,
    pc: usize,
    insn: Instruction,
    globals: &[crate::GlobalFunc],
    helper_mask: u8,
) -> (Hist, Prec, Prec) {
    use oxbpf_isa::Source;
    let f = st.frames.len() - 1;
    let fr = st.cur();
    let regs = &fr.regs;
    let scalar = |r: oxbpf_isa::Reg| regs[r.index()].kind == Kind::Scalar;
    let ptr = |r: oxbpf_isa::Reg| regs[r.index()].kind.is_pointer();
    let loc = |r: oxbpf_isa::Reg| Loc::Reg(f as u8, r.index() as u8);
    // The slot an access of `bytes` at `base + off` is in; one across two
    // slots is not followed.
    let stack_use = |base: oxbpf_isa::Reg, off: i16, bytes: i64| {
        let b = regs[base.index()];
        match b.kind {
            Kind::Stack { frame } => match b.var.konst() {
                Some(v) => {
                    let at = b.off.wrapping_add(v as i64).wrapping_add(off as i64) + STACK;
                    if (0..STACK).contains(&at) && at % 8 + bytes <= 8 {
                        StackUse::Slot(frame, (at / 8 * 8) as u16)
                    } else {
                        StackUse::Unknown
                    }
                }
                None => StackUse::Unknown,
            },
            _ => StackUse::None,
        }
    };
    let mut hist = Hist {
        pc: pc as u32,
        frame: f as u8,
        stack: StackUse::None,
        callback_exit: false,
        linked: None,
    };
    let mut need = Prec::default();
    let mut decided = Prec::default();
    match insn {
        Instruction::Alu {
            op,
            dst,
            src: Source::Reg(s),
            ..
        } if op != oxbpf_isa::AluOp::Mov => {
            // A scalar added to (or otherwise combined with) a pointer.
            if ptr(dst) && scalar(s) {
                need.locs.insert(loc(s));
            } else if ptr(s) && scalar(dst) {
                need.locs.insert(loc(dst));
            }
        }
        Instruction::Load {
            src, offset, size, ..
        } => hist.stack = stack_use(src, offset, size.bytes() as i64),
        Instruction::Store {
            dst,
            src,
            offset,
            size,
        } => {
            hist.stack = stack_use(dst, offset, size.bytes() as i64);
            // Context fields may restrict what is written.
            if let Source::Reg(s) = src
                && regs[dst.index()].kind == Kind::Ctx
                && scalar(s)
            {
                need.locs.insert(loc(s));
            }
        }
        Instruction::Atomic {
            dst,
            src,
            offset,
            size,
            ..
        } => {
            hist.stack = stack_use(dst, offset, size.bytes() as i64);
            if scalar(src) {
                need.locs.insert(loc(src));
            }
        }
        // A helper's or kfunc's arguments are checked against its
        // prototype; a global function is not entered, and its arguments
        // are checked against its types (a NULL scalar for a memory
        // argument) the same way.
        Instruction::Call(t)
            if match t {
                oxbpf_isa::CallTarget::Local(rel) => globals
                    .iter()
                    .any(|g| g.pc as i64 == pc as i64 + 1 + rel as i64),
                _ => true,
            } =>
        {
            // A helper's: only the arguments whose value its prototype
            // checks (sizes, constants, a NULL where a pointer may be
            // NULL), as the kernel's check_func_arg marks them.
            let mask = match t {
                oxbpf_isa::CallTarget::Helper(_) | oxbpf_isa::CallTarget::Kfunc { .. } => {
                    helper_mask
                }
                _ => 0x3e,
            };
            for (r, reg) in regs.iter().enumerate().take(6).skip(1) {
                if reg.kind == Kind::Scalar && mask & (1 << r) != 0 {
                    need.locs.insert(Loc::Reg(f as u8, r as u8));
                }
            }
        }
        Instruction::Callx { .. } => need.all = true,
        Instruction::Exit => {
            hist.callback_exit = fr.callback;
            // The program's (or a callback's) return value is checked.
            if (f == 0 || fr.callback) && regs[0].kind == Kind::Scalar {
                need.locs.insert(Loc::Reg(f as u8, 0));
            }
        }
        Instruction::Jmp { dst, src, .. } => {
            let s = match src {
                Source::Reg(s) => Some(s),
                Source::Imm(_) => None,
            };
            if let Some(s) = s {
                if ptr(dst) && scalar(s) {
                    need.locs.insert(loc(s));
                } else if ptr(s) && scalar(dst) {
                    need.locs.insert(loc(dst));
                }
            }
            let mut linked = Vec::new();
            for r in std::iter::once(dst).chain(s) {
                if scalar(r) {
                    decided.locs.insert(loc(r));
                    let id = regs[r.index()].id;
                    if id != 0 {
                        linked.extend(precise::linked_locs(st, id));
                    }
                }
            }
            if linked.len() > 1 {
                hist.linked = Some(std::rc::Rc::new(linked));
            }
        }
        _ => {}
    }
    (hist, need, decided)
}

use calls::*;

/// An instruction as the verifier's log and rejections print it: the
/// disassembler's text, except that a helper call names its helper as the
/// kernel's log does (`call bpf_map_lookup_elem#1`, `call unknown#999`).
pub(crate) fn insn_text(insn: &Instruction) -> String {
    match insn {
        Instruction::Call(oxbpf_isa::CallTarget::Helper(id)) => {
            let name =
                oxbpf_abi::helpers::helper_name(*id as u32).unwrap_or_else(|| "unknown".into());
            format!("call {name}#{id}")
        }
        other => other.to_string(),
    }
}

/// Whether two states are in the same calls of their callbacks: a
/// callback entered again (each entry has a site of its own) that comes
/// back to the state of its previous call has converged, it does not loop.
fn same_callback_calls(a: &crate::state::State, b: &crate::state::State) -> bool {
    a.frames.len() == b.frames.len()
        && a.frames
            .iter()
            .zip(&b.frames)
            .all(|(x, y)| match (&x.site, &y.site) {
                (Some(x), Some(y)) => std::rc::Rc::ptr_eq(x, y),
                (None, None) => true,
                _ => false,
            })
}
