//! Precision tracking, as the kernel's `mark_chain_precision`: a scalar's
//! exact range matters to a stored state only if the code after it used
//! the range to decide something (an offset added to a pointer, a helper's
//! argument, a branch that only one way could take, a return value). Such
//! uses mark the scalar precise, and the mark is carried back along the
//! path — through copies, arithmetic, spills and fills, calls and returns
//! — into every stored state the value came through. Pruning then compares
//! precise scalars by range and lets any scalar stand for an imprecise one.
//!
//! Anything the backward walk cannot follow (callbacks, indirect calls, a
//! stack slot reached through a variable offset) marks every scalar of the
//! stored states on the path precise instead, which is always sound.

use std::collections::BTreeSet;
use std::rc::Rc;

use oxbpf_isa::{AtomicOp, CallTarget, Instruction, Source};

use crate::state::{Kind, State, byte};

/// Where a register or spilled value lives: (frame, register) or (frame,
/// slot start as a byte index of the frame's stack).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Loc {
    Reg(u8, u8),
    Slot(u8, u16),
}

/// A set of places: a bit per register and per 8-byte stack slot of each
/// of the 8 frames (set operations are a few word operations; the walk
/// back does them at every instruction it crosses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct LocSet {
    regs: [u16; 8],
    slots: [u64; 8],
}

impl LocSet {
    fn bit(l: Loc) -> Option<(bool, usize, u64)> {
        match l {
            Loc::Reg(f, r) if (f as usize) < 8 && r < 16 => Some((false, f as usize, 1 << r)),
            Loc::Slot(f, b) if (f as usize) < 8 && b < 512 => {
                Some((true, f as usize, 1 << (b / 8)))
            }
            _ => None,
        }
    }

    pub fn insert(&mut self, l: Loc) -> bool {
        match Self::bit(l) {
            Some((false, f, m)) => {
                let new = self.regs[f] & m as u16 == 0;
                self.regs[f] |= m as u16;
                new
            }
            Some((true, f, m)) => {
                let new = self.slots[f] & m == 0;
                self.slots[f] |= m;
                new
            }
            None => false,
        }
    }

    pub fn remove(&mut self, l: &Loc) -> bool {
        match Self::bit(*l) {
            Some((false, f, m)) => {
                let had = self.regs[f] & m as u16 != 0;
                self.regs[f] &= !(m as u16);
                had
            }
            Some((true, f, m)) => {
                let had = self.slots[f] & m != 0;
                self.slots[f] &= !m;
                had
            }
            None => false,
        }
    }

    pub fn contains(&self, l: &Loc) -> bool {
        match Self::bit(*l) {
            Some((false, f, m)) => self.regs[f] & m as u16 != 0,
            Some((true, f, m)) => self.slots[f] & m != 0,
            None => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.regs.iter().all(|&r| r == 0) && self.slots.iter().all(|&s| s == 0)
    }

    /// Whether a place of a frame deeper than `f` is in the set.
    pub fn any_deeper(&self, f: u8) -> bool {
        let from = (f as usize + 1).min(8);
        self.regs[from..].iter().any(|&r| r != 0) || self.slots[from..].iter().any(|&s| s != 0)
    }

    pub fn clear(&mut self) {
        *self = LocSet::default();
    }

    /// The places, registers before slots, frame by frame (set bits only
    /// are visited).
    pub fn iter(&self) -> impl Iterator<Item = Loc> + '_ {
        let regs = (0..8u8).flat_map(move |f| {
            Bits(self.regs[f as usize] as u64).map(move |r| Loc::Reg(f, r as u8))
        });
        let slots = (0..8u8).flat_map(move |f| {
            Bits(self.slots[f as usize]).map(move |i| Loc::Slot(f, i as u16 * 8))
        });
        regs.chain(slots)
    }

    pub fn extend(&mut self, it: impl IntoIterator<Item = Loc>) {
        for l in it {
            self.insert(l);
        }
    }

    pub fn union(&mut self, other: &LocSet) {
        for f in 0..8 {
            self.regs[f] |= other.regs[f];
            self.slots[f] |= other.slots[f];
        }
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&Loc) -> bool) {
        let all: Vec<Loc> = self.iter().collect();
        for l in all {
            if !keep(&l) {
                self.remove(&l);
            }
        }
    }

    /// Whether any slot is in the set.
    pub fn any_slot(&self) -> bool {
        self.slots.iter().any(|&s| s != 0)
    }
}

/// The set bits of a word, lowest first.
struct Bits(u64);

impl Iterator for Bits {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(b)
    }
}

/// The precise values of a state (or the set being carried back).
#[derive(Clone, Debug, Default)]
pub(crate) struct Prec {
    /// Every scalar is precise.
    pub all: bool,
    pub locs: LocSet,
}

impl Prec {
    pub fn reg(&self, frame: usize, r: usize) -> bool {
        self.all || self.locs.contains(&Loc::Reg(frame as u8, r as u8))
    }

    pub fn slot(&self, frame: usize, at: usize) -> bool {
        self.all || self.locs.contains(&Loc::Slot(frame as u8, at as u16))
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.locs.is_empty()
    }

    fn has(&self, l: Loc) -> bool {
        self.locs.contains(&l)
    }

    /// Adds `other`; whether anything was new.
    pub fn merge(&mut self, other: &Prec) -> bool {
        if self.all {
            return false;
        }
        if other.all {
            self.all = true;
            self.locs.clear();
            return true;
        }
        let before = self.locs;
        self.locs.union(&other.locs);
        self.locs != before
    }
}

/// How an instruction touched the stack, for the walk back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StackUse {
    None,
    /// The 8-byte slot (frame, start byte) at the access.
    Slot(u8, u16),
    /// A stack access whose slot is not known (a variable offset).
    Unknown,
}

/// One executed instruction of a path, as the walk back needs it.
#[derive(Clone, Debug)]
pub(crate) struct Hist {
    pub pc: u32,
    /// The frame (depth) it ran in.
    pub frame: u8,
    pub stack: StackUse,
    /// An exit from a callback frame.
    pub callback_exit: bool,
    /// A conditional jump on a scalar linked to others (same id): every
    /// place holding the linked scalars, which the test bounds together.
    pub linked: Option<Rc<Vec<Loc>>>,
}

impl Hist {
    /// An entry for history that was not kept: the walk back stops at it.
    pub fn unknown() -> Hist {
        Hist {
            pc: u32::MAX,
            frame: 0,
            stack: StackUse::Unknown,
            callback_exit: false,
            linked: None,
        }
    }
}

/// A path's history: a list shared by the paths forked from it (a fork
/// costs nothing), newest entry first.
#[derive(Clone, Debug, Default)]
pub(crate) struct HistList(Option<Rc<HistNode>>);

#[derive(Debug)]
pub(crate) struct HistNode {
    e: Hist,
    prev: HistList,
    len: usize,
}

impl HistList {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |n| n.len)
    }

    pub fn push(&mut self, e: Hist) {
        let prev = std::mem::take(self);
        let len = prev.len() + 1;
        *self = HistList(Some(Rc::new(HistNode { e, prev, len })));
    }

    /// The entries, newest first.
    fn iter(&self) -> impl Iterator<Item = &Hist> {
        let mut at = self.0.as_deref();
        std::iter::from_fn(move || {
            let n = at?;
            at = n.prev.0.as_deref();
            Some(&n.e)
        })
    }
}

impl Drop for HistNode {
    // Iteratively: a long list dropped recursively would overflow the stack.
    fn drop(&mut self) {
        let mut next = self.prev.0.take();
        while let Some(rc) = next {
            match Rc::try_unwrap(rc) {
                Ok(mut n) => next = n.prev.0.take(),
                Err(_) => break,
            }
        }
    }
}

/// The places in `st` holding scalars linked by `id`.
pub(crate) fn linked_locs(st: &State, id: u32) -> Vec<Loc> {
    let mut out = Vec::new();
    for (fi, f) in st.frames.iter().enumerate() {
        for (ri, r) in f.regs.iter().enumerate() {
            if r.kind == Kind::Scalar && r.id == id {
                out.push(Loc::Reg(fi as u8, ri as u8));
            }
        }
        for (&at, r) in &f.stack.spills {
            if r.kind == Kind::Scalar && r.id == id {
                out.push(Loc::Slot(fi as u8, at as u16));
            }
        }
    }
    out
}

/// The set as it applies to a stored state: scalars linked to a precise
/// scalar are precise too (a test of one bounds all); places that hold no
/// scalar there are dropped.
pub(crate) fn settle(st: &State, set: &mut Prec) {
    if set.all {
        return;
    }
    let mut ids = BTreeSet::new();
    set.locs.retain(|l| match *l {
        Loc::Reg(f, r) => st
            .frames
            .get(f as usize)
            .map(|fr| fr.regs[r as usize])
            .is_some_and(|reg| {
                if reg.kind == Kind::Scalar && reg.id != 0 {
                    ids.insert(reg.id);
                }
                reg.kind == Kind::Scalar
            }),
        // A slot holds a scalar when a scalar is spilled there, or when it
        // holds plain bytes (whose zeros are known only while precise).
        Loc::Slot(f, at) => {
            st.frames
                .get(f as usize)
                .is_some_and(|fr| match fr.stack.spills.get(&(at as usize)) {
                    Some(reg) => {
                        if reg.kind == Kind::Scalar && reg.id != 0 {
                            ids.insert(reg.id);
                        }
                        reg.kind == Kind::Scalar
                    }
                    None => fr.stack.bytes[at as usize..at as usize + 8].contains(&byte::ZERO),
                })
        }
    });
    for id in ids {
        set.locs.extend(linked_locs(st, id));
    }
}

/// Carries `set` (what must be precise after the instructions of `hist`,
/// where the path is then in frame `end`) back to before them. `false`:
/// the walk met something it cannot follow.
pub(crate) fn backtrack(
    insns: &[Option<oxbpf_isa::Instruction>],
    hist: &HistList,
    set: &mut Prec,
    end: u8,
) -> bool {
    if set.all {
        return true;
    }
    let deeper = |set: &Prec, f: u8| set.locs.any_deeper(f);
    // The frame of the instruction after the one being undone.
    let mut later = end;
    for e in hist.iter() {
        if set.locs.is_empty() {
            return true;
        }
        let f = e.frame;
        if e.pc == u32::MAX {
            return false;
        }
        let Some(&Some(insn)) = insns.get(e.pc as usize) else {
            return false;
        };
        // Frames change only by local calls (into f + 1) and exits (back
        // to f - 1); anything else (callbacks) is not followed.
        // A local call that stays in its frame is a global function's: it
        // is not entered, and is undone as a helper call.
        let global = matches!(insn, Instruction::Call(CallTarget::Local(_))) && later == f;
        let expected = match insn {
            Instruction::Call(CallTarget::Local(_)) if global => Some(f),
            Instruction::Call(CallTarget::Local(_)) => f.checked_add(1),
            Instruction::Exit => f.checked_sub(1),
            _ => Some(f),
        };
        if expected != Some(later) || e.callback_exit {
            return false;
        }
        later = f;
        if let Some(linked) = &e.linked
            && linked.iter().any(|l| set.has(*l))
        {
            set.locs.extend(linked.iter().copied());
        }
        let reg = |r: oxbpf_isa::Reg| Loc::Reg(f, r.index() as u8);
        match insn {
            Instruction::Alu { op, dst, src, .. } => {
                let d = reg(dst);
                if set.has(d) {
                    if op == oxbpf_isa::AluOp::Mov {
                        set.locs.remove(&d);
                    }
                    if let Source::Reg(s) = src {
                        set.locs.insert(reg(s));
                    }
                }
            }
            Instruction::MovSx { dst, src, .. } => {
                if set.locs.remove(&reg(dst)) {
                    set.locs.insert(reg(src));
                }
            }
            Instruction::Neg { .. } | Instruction::Endian { .. } => {}
            Instruction::LoadImm64 { dst, .. } => {
                set.locs.remove(&reg(dst));
            }
            Instruction::Load { dst, .. } => {
                if set.locs.remove(&reg(dst)) {
                    match e.stack {
                        StackUse::Slot(fr, at) => {
                            set.locs.insert(Loc::Slot(fr, at));
                        }
                        StackUse::Unknown => return false,
                        StackUse::None => {}
                    }
                }
            }
            Instruction::Store { size, src, .. } => match e.stack {
                StackUse::Slot(fr, at) if set.has(Loc::Slot(fr, at)) => {
                    // A narrower store leaves the rest of the slot as it was.
                    if size.bytes() == 8 {
                        set.locs.remove(&Loc::Slot(fr, at));
                    }
                    if let Source::Reg(s) = src {
                        set.locs.insert(reg(s));
                    }
                }
                StackUse::Unknown if set.locs.any_slot() => {
                    return false;
                }
                _ => {}
            },
            Instruction::Atomic { op, src, .. } => {
                if e.stack != StackUse::None && set.locs.any_slot() {
                    return false;
                }
                // A fetched value comes from memory.
                match op {
                    AtomicOp::Cmpxchg => {
                        set.locs.remove(&Loc::Reg(f, 0));
                    }
                    AtomicOp::Xchg
                    | AtomicOp::Add { fetch: true }
                    | AtomicOp::Or { fetch: true }
                    | AtomicOp::And { fetch: true }
                    | AtomicOp::Xor { fetch: true } => {
                        set.locs.remove(&reg(src));
                    }
                    _ => {}
                }
            }
            Instruction::Jmp { dst, src, .. } => {
                if let Source::Reg(s) = src
                    && (set.has(reg(dst)) || set.has(reg(s)))
                {
                    set.locs.insert(reg(dst));
                    set.locs.insert(reg(s));
                }
            }
            Instruction::Ja { .. } => {}
            // A helper's or kfunc's r0 is its result; r1-r5 were clobbered.
            Instruction::Call(CallTarget::Helper(_) | CallTarget::Kfunc { .. }) => {
                set.locs.remove(&Loc::Reg(f, 0));
                if deeper(set, f) {
                    return false;
                }
            }
            Instruction::Call(CallTarget::Local(_)) if global => {
                // r0 is the helper's result; r1-r5 were clobbered.
                set.locs.remove(&Loc::Reg(f, 0));
                if deeper(set, f) {
                    return false;
                }
            }
            Instruction::Call(CallTarget::Local(_)) => {
                // The callee's arguments are the caller's r1-r5; nothing
                // else of the callee's frame existed before the call.
                let inner: Vec<Loc> = set
                    .locs
                    .iter()
                    .filter(|l| matches!(*l, Loc::Reg(lf, _) | Loc::Slot(lf, _) if lf > f))
                    .collect();
                for l in inner {
                    set.locs.remove(&l);
                    match l {
                        Loc::Reg(lf, r) if lf == f + 1 && (1..=5).contains(&r) => {
                            set.locs.insert(Loc::Reg(f, r));
                        }
                        _ => return false,
                    }
                }
            }
            Instruction::Exit => {
                // Back into the callee (frame f) from its caller (f - 1):
                // the caller's r0 is the callee's; the caller's other
                // registers and its stack are the caller's still.
                if deeper(set, f - 1) {
                    return false;
                }
                if set.locs.remove(&Loc::Reg(f - 1, 0)) {
                    set.locs.insert(Loc::Reg(f, 0));
                }
            }
            Instruction::Callx { .. } => {
                return false;
            }
            Instruction::LoadPacket { .. } => {
                set.locs.remove(&Loc::Reg(f, 0));
            }
        }
    }
    true
}
