//! Branches (each arm refined), exits (leaks, locks, callback return
//! values) and the branch trail kept for diagnostics.

use super::*;

impl Verifier<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn branch(
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
                    hist: path.hist.clone(),
                    wrote: path.wrote,
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

    pub(super) fn exit(&mut self, path: &mut Path, pc: usize) -> VResult<Step> {
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
            if let Some((lo, hi)) =
                crate::return_range(self.opts.prog_type, self.opts.attach.as_deref())
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
            let mut wrote = path.wrote;
            if let Some(w) = wrote.get_mut(st.frames.len() - 1) {
                // A new frame: nothing of an older one at this depth is read.
                *w = u64::MAX;
            }
            again = Some(Path {
                pc: site.target,
                state: st,
                last: path.last,
                trail: path.trail.clone(),
                hist: path.hist.clone(),
                wrote,
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
    pub(super) fn check_leaks(
        &mut self,
        path: &Path,
        pc: usize,
        what: &str,
        callback: Option<u8>,
    ) -> VResult<()> {
        if let Some(l) = path.state.lock {
            self.relate_lock(l);
            return err(
                pc,
                format!(
                    "{what} cannot be used inside bpf_spin_lock-ed region: the lock taken at insn {} is still held on this path; call bpf_spin_unlock first",
                    l.pc
                ),
            );
        }
        if let Some((_, at)) = path.state.rcu.filter(|_| callback.is_none()) {
            self.related = vec![(at as usize, "bpf_rcu_read_lock was called".into())];
            return err(
                pc,
                format!(
                    "{what} cannot be used inside bpf_rcu_read_lock-ed region: the section entered at insn {at} is still open on this path; call bpf_rcu_read_unlock first"
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
}

/// Branch decisions kept per path for diagnostics: the most recent ones
/// (between 64 and 128), so long loops cannot make paths grow without end.
pub(super) fn push_trail(trail: &mut Vec<(usize, bool)>, step: (usize, bool)) {
    const KEEP: usize = 64;
    if trail.len() >= 2 * KEEP {
        trail.drain(..trail.len() - KEEP);
    }
    trail.push(step);
}
