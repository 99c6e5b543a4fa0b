//! Open-coded iterators (`bpf_iter_num_new/next/destroy` and the other
//! `KF_ITER_*` kfuncs), as the kernel's verifier treats them: the iterator
//! lives on the stack (STACK_ITER slots) and holds a reference from `_new`
//! to `_destroy`; `_next` on an active iterator forks the path into the
//! loop's exit (NULL, the iterator drained) and one more iteration (an
//! element), and a path that comes back to `_next` in a state the same
//! `_next` of this path already holds has converged — the kernel knows
//! every iterator ends, so such a loop needs no unrolling.

use super::precise::{Loc, Prec};
use super::{Path, STACK, VResult, Verifier, err};
use crate::kfuncs::Special;
use crate::state::{IterSlot, Kind, RefKind, Reg, State, byte, iter_name};

/// Where an iterator argument points: frame index, first byte, and the
/// iterator's size.
#[derive(Clone, Copy, Debug)]
pub(super) struct IterArg {
    pub frame: usize,
    pub at: usize,
    pub size: usize,
}

impl Verifier<'_> {
    /// The iterator argument (arg #0) of an iterator kfunc, checked as the
    /// kernel's process_iter_arg: a constant, 8-byte aligned stack address;
    /// for `_new` stack that holds no iterator (then written and made one),
    /// for the others an initialized iterator of that type.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn iter_arg(
        &mut self,
        path: &mut Path,
        pc: usize,
        rn: usize,
        r: &Reg,
        btf: u32,
        size: usize,
        special: Special,
        name: &str,
    ) -> VResult<IterArg> {
        let what = iter_name(btf);
        let Kind::Stack { frame } = r.kind else {
            return err(
                pc,
                format!(
                    "arg#0 expected pointer to an iterator on stack: R{rn} is {} ({name} takes a struct bpf_{what} on the stack)",
                    r.kind.name()
                ),
            );
        };
        let Some(v) = r.var.konst() else {
            return err(
                pc,
                format!("{what} has to be at a constant offset (R{rn} of {name})"),
            );
        };
        let off = r.off.wrapping_add(v as i64);
        let at = off + STACK;
        if off % 8 != 0 || at < 0 || at as usize + size > STACK as usize || size == 0 {
            return err(pc, format!("cannot pass in {what} at an offset={off}"));
        }
        let (fi, at) = (frame as usize, at as usize);
        if fi >= path.state.frames.len() {
            return err(pc, format!("R{rn} points into a frame that has returned"));
        }
        if special == Special::IterNew {
            let stack = &path.state.frames[fi].stack;
            if stack.bytes[at..at + size].contains(&byte::ITER) {
                return err(
                    pc,
                    format!(
                        "expected uninitialized {what} as arg #0 of {name}: fp{off} already holds an iterator (destroy it first)"
                    ),
                );
            }
            // The kfunc writes the whole iterator.
            for j in (0..size as i64).step_by(8) {
                self.mem_access(path, pc, rn, r, j, 8, Some(Reg::unknown()))?;
            }
            let id = path.state.acquire(RefKind::Iter(btf), pc);
            let stack = &mut path.state.frames[fi].stack;
            stack.spills.retain(|k, _| *k + 8 <= at || *k >= at + size);
            stack.consts.retain(|k, _| *k + 8 <= at || *k >= at + size);
            stack.bytes[at..at + size].fill(byte::ITER);
            stack.iters.insert(
                at,
                IterSlot {
                    btf,
                    size: size as u16,
                    active: true,
                    depth: 0,
                    ref_id: id,
                },
            );
        } else {
            let ok = path.state.frames[fi]
                .stack
                .iters
                .get(&at)
                .is_some_and(|it| it.btf == btf && it.size as usize == size);
            if !ok {
                return err(
                    pc,
                    format!(
                        "expected an initialized {what} as arg #0 of {name}: fp{off} holds no {what} (create it with bpf_{what}_new first)"
                    ),
                );
            }
            self.stack_read(path, fi, at, at + size);
        }
        Ok(IterArg {
            frame: fi,
            at,
            size,
        })
    }

    /// `_destroy`: the iterator's reference is released and its bytes are
    /// uninitialized stack again.
    pub(super) fn iter_destroy(&mut self, path: &mut Path, pc: usize, it: IterArg) {
        let stack = &mut path.state.frames[it.frame].stack;
        if let Some(slot) = stack.iters.remove(&it.at) {
            stack.bytes[it.at..it.at + it.size].fill(byte::UNINIT);
            path.state.release(slot.ref_id, pc, self.opts.privileged);
        }
    }

    /// `_next`: on a drained iterator, NULL again; on an active one, this
    /// path goes on with NULL (the iterator drained, as the kernel explores
    /// the loop's exit first) and the returned path is the next iteration,
    /// with `elem` in r0 and scalars the last iteration changed and nothing
    /// needed precise widened to unknown, as the kernel's
    /// widen_imprecise_scalars, so that loops converge.
    pub(super) fn iter_next(
        &mut self,
        path: &mut Path,
        pc: usize,
        it: IterArg,
        elem: Reg,
    ) -> Vec<Path> {
        let active = path.state.frames[it.frame]
            .stack
            .iters
            .get(&it.at)
            .is_some_and(|s| s.active);
        let mut out = Vec::new();
        if active {
            let mut st = path.state.clone();
            if let Some(prev) = self.prev_iter_entry(path, pc) {
                let cp = &self.checkpoints[prev];
                widen_imprecise(&cp.state, &cp.uses, &mut st);
            }
            if let Some(s) = st.frames[it.frame].stack.iters.get_mut(&it.at) {
                s.depth = s.depth.saturating_add(1);
            }
            let mut elem = elem;
            if let Kind::Mem { .. } = elem.kind
                && let Some(s) = st.frames[it.frame].stack.iters.get(&it.at)
            {
                // The element lives as long as the iterator.
                elem.ref_obj_id = s.ref_id;
            }
            let f = st.cur_mut();
            for r in 1..=5 {
                f.regs[r] = Reg::NOT_INIT;
            }
            f.regs[0] = elem;
            out.push(Path {
                pc: pc + 1,
                state: st,
                last: path.last,
                trail: path.trail.clone(),
                hist: path.hist.clone(),
                wrote: path.wrote,
            });
        }
        if let Some(s) = path.state.frames[it.frame].stack.iters.get_mut(&it.at) {
            s.active = false;
        }
        let f = path.state.cur_mut();
        for r in 1..=5 {
            f.regs[r] = Reg::NOT_INIT;
        }
        f.regs[0] = Reg::konst(0);
        path.pc = pc + 1;
        out
    }

    /// The state this path had at the same `_next` one iteration ago (the
    /// nearest stored ancestor at `pc` in the same frames, other than the
    /// one stored at this very visit), the kernel's find_prev_entry.
    fn prev_iter_entry(&self, path: &Path, pc: usize) -> Option<usize> {
        let mut c = path.last;
        while let Some(x) = c {
            let cp = &self.checkpoints[x];
            if cp.pc == pc
                && Some(x) != self.stored_now
                && cp.state.frames.len() == path.state.frames.len()
                && cp
                    .state
                    .frames
                    .iter()
                    .zip(&path.state.frames)
                    .all(|(a, b)| a.ret_pc == b.ret_pc)
            {
                return Some(x);
            }
            c = cp.parent;
        }
        None
    }

    /// At an iterator's `_next` with the iterator active: whether a state
    /// this path stored at the same `_next` (an earlier iteration) holds
    /// this one, every scalar compared by its range (the kernel's
    /// RANGE_WITHIN). Then the loop has converged and the path is pruned;
    /// the proof rests on every value of this state, so all its scalars
    /// are marked precise and all its stack read in the states it came
    /// through.
    pub(super) fn iter_converged(&mut self, path: &Path, pc: usize, live: u16) -> bool {
        let fr = path.state.cur();
        let r1 = fr.regs[1];
        let Kind::Stack { frame } = r1.kind else {
            return false;
        };
        let Some(v) = r1.var.konst() else {
            return false;
        };
        let at = r1.off.wrapping_add(v as i64) + STACK;
        let active = path
            .state
            .frames
            .get(frame as usize)
            .and_then(|f| usize::try_from(at).ok().and_then(|a| f.stack.iters.get(&a)))
            .is_some_and(|s| s.active);
        if !active {
            return false;
        }
        // The nearest earlier iterations only: a loop that has not
        // converged within them keeps a value that changes every time
        // (one the code needs exactly), and comparing each iteration with
        // all before it would cost the square of their number.
        let mut c = path.last;
        let mut hit = false;
        let (mut seen, mut walked) = (0, 0);
        while let Some(x) = c {
            let cp = &self.checkpoints[x];
            walked += 1;
            if cp.pc == pc {
                seen += 1;
                if crate::state::covers(&cp.state, &path.state, live, None, None) {
                    hit = true;
                    self.checkpoints[x].hits += 1;
                    break;
                }
            }
            if seen >= 8 || walked >= 4096 {
                break;
            }
            c = cp.parent;
        }
        if !hit {
            return false;
        }
        if self.opts.precise {
            let end = (path.state.frames.len() - 1) as u8;
            self.convergence_marks = true;
            self.mark_precise(&path.hist, path.last, all_scalars(&path.state), end);
            self.convergence_marks = false;
        }
        for d in 0..path.state.frames.len() {
            self.stack_read_mask(path, d, u64::MAX);
        }
        true
    }
}

/// Every place of `st` that holds a scalar (or known zero bytes).
fn all_scalars(st: &State) -> Prec {
    let mut p = Prec::default();
    for (fi, f) in st.frames.iter().enumerate() {
        for (ri, r) in f.regs.iter().enumerate() {
            if r.kind == Kind::Scalar {
                p.locs.insert(Loc::Reg(fi as u8, ri as u8));
            }
        }
        for (slot, r) in &f.stack.spills {
            if r.kind == Kind::Scalar {
                p.locs.insert(Loc::Slot(fi as u8, *slot as u16));
            }
        }
        for slot in (0..STACK as usize).step_by(8) {
            if f.stack.bytes[slot..slot + 8].contains(&byte::ZERO) {
                p.locs.insert(Loc::Slot(fi as u8, slot as u16));
            }
        }
    }
    p
}

/// Scalars of `cur` that differ from `prev` (the state one iteration
/// earlier) where the code after `prev` did not need them precise become
/// unknown.
fn widen_imprecise(prev: &State, prec: &Prec, cur: &mut State) {
    if prec.all {
        return;
    }
    for (fi, (p, c)) in prev.frames.iter().zip(cur.frames.iter_mut()).enumerate() {
        for (ri, (rp, rc)) in p.regs.iter().zip(c.regs.iter_mut()).enumerate() {
            if rp.kind == Kind::Scalar
                && rc.kind == Kind::Scalar
                && rp.plen.is_none()
                && rc.plen.is_none()
                && rp.var != rc.var
                && !prec.reg(fi, ri)
            {
                *rc = Reg::unknown();
            }
        }
        for (slot, rc) in c.stack.spills.iter_mut() {
            if let Some(rp) = p.stack.spills.get(slot)
                && rp.kind == Kind::Scalar
                && rc.kind == Kind::Scalar
                && rp.plen.is_none()
                && rc.plen.is_none()
                && rp.var != rc.var
                && !prec.slot(fi, *slot)
            {
                *rc = Reg::unknown();
                for b in &mut c.stack.bytes[*slot..*slot + 8] {
                    if *b == byte::ZERO {
                        *b = byte::MISC;
                    }
                }
            }
        }
    }
}
