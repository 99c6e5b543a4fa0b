//! An optimizer for classic programs: any program that passes
//! [`crate::validate`] comes out no longer and with the same result on
//! every packet (also the 0 of a load past the end of a short packet).
//!
//! The program is a graph of instructions (classic jumps go forward only,
//! so it has no cycles). A forward pass gives each instruction what holds
//! on every path to it: the value of A, X and each scratch word as an
//! expression over the packet (`ldh [12]`, `4*([14]&0xf)`, constants,
//! arithmetic on those), the outcomes of the comparisons taken on the way
//! (`ldh [12] == 0x800` is false), and how many bytes of the packet a
//! load has already proven present. With that:
//!
//! - **jump threading**: an edge into code whose comparisons the edge
//!   already decides goes straight to where they lead, when nothing the
//!   skipped instructions computed is used there and none of them could
//!   have ended the filter on a short packet; a comparison it does not
//!   decide is followed both ways, to a point both ways reach (values
//!   known to be one of a few constants where paths met help decide);
//! - **constant results**: an edge into code that returns the same value
//!   however it goes (0 also when a load fails) goes to that `ret`;
//! - **decided comparisons** (on every path to them) become jumps, and an
//!   X operand known to be a constant becomes that constant;
//! - **redundant and dead instructions** go: a load of what a register
//!   already holds, a write of a register nobody reads;
//! - **identical code is shared**: an instruction with the same operation
//!   and the same successors as a later one is replaced by it;
//! - **peepholes**: `and #k; jeq #0` is `jset #k`, `sub #k; jeq #0` is
//!   `jeq #k` (also with X), when A is not read afterwards.
//!
//! libpcap's optimizer (`tcpdump -d`) is the yardstick for size.

// Instruction indices address several parallel vectors (instructions,
// targets, removal marks, liveness) at once.
#![allow(clippy::needless_range_loop)]

use std::collections::HashMap;

use crate::{Insn, MEMWORDS, class, misc, mode, op, rval, size, skf, src};

type Id = u32;

/// A value a register can hold, as an expression over the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Val {
    Const(u32),
    /// `len` (the length on the wire).
    Len,
    /// An absolute packet load: size bits, offset.
    Load(u16, u32),
    /// A load at X + offset: size bits, X's value, offset.
    Ind(u16, Id, u32),
    /// `4*([k]&0xf)`.
    Msh(u32),
    Alu(u16, Id, Id),
    Neg(Id),
    /// What a register holds on entry to an instruction that paths with
    /// different values meet at.
    Phi(usize, u8),
    /// What an ancillary (or other special) load at an instruction read.
    Special(usize),
    /// A scratch word not yet written.
    Init(u8),
}

/// A comparison's outcome: `v op rhs` is `holds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Fact {
    v: Id,
    op: u16,
    rhs: Id,
    holds: bool,
}

const A: usize = 0;
const X: usize = 1;
const REGS: usize = 2 + MEMWORDS as usize;

/// What holds at an instruction on every path to it.
#[derive(Clone, Debug)]
struct Info {
    regs: [Id; REGS],
    /// Sorted.
    facts: Vec<Fact>,
    /// The packet has at least this many bytes (a load that far worked).
    minlen: u32,
    /// Indirect loads that worked: X's value, first and end offset. Sorted.
    ind: Vec<(Id, u32, u32)>,
    /// Values known to be one of a few constants (paths that compared a
    /// value with different constants met): sorted by value.
    sets: Vec<(Id, Vec<u32>)>,
}

/// The most constants a value set holds.
const MAX_SET: usize = 16;

struct Values {
    vals: Vec<Val>,
    ids: HashMap<Val, Id>,
}

impl Values {
    fn id(&mut self, v: Val) -> Id {
        if let Some(&i) = self.ids.get(&v) {
            return i;
        }
        let i = self.vals.len() as Id;
        self.vals.push(v);
        self.ids.insert(v, i);
        i
    }

    fn konst(&self, i: Id) -> Option<u32> {
        match self.vals[i as usize] {
            Val::Const(c) => Some(c),
            _ => None,
        }
    }

    /// The range every value of `i` lies in, from what it is.
    fn range(&self, i: Id) -> (u32, u32) {
        match self.vals[i as usize] {
            Val::Const(c) => (c, c),
            Val::Load(size::B, _) | Val::Ind(size::B, _, _) => (0, 0xff),
            Val::Load(size::H, _) | Val::Ind(size::H, _, _) => (0, 0xffff),
            Val::Msh(_) => (0, 60),
            Val::Alu(op::AND, a, b) => (0, self.range(a).1.min(self.range(b).1)),
            Val::Alu(op::RSH, a, b) => match self.konst(b) {
                Some(s) => (0, self.range(a).1 >> (s & 31)),
                None => (0, u32::MAX),
            },
            _ => (0, u32::MAX),
        }
    }

    fn alu(&mut self, o: u16, a: Id, b: Id) -> Id {
        if let (Some(x), Some(y)) = (self.konst(a), self.konst(b))
            && let Some(r) = crate::interp::alu(o, x, y)
        {
            return self.id(Val::Const(r));
        }
        match (o, self.konst(b)) {
            (op::ADD | op::SUB | op::OR | op::XOR | op::LSH | op::RSH, Some(0))
            | (op::MUL | op::DIV, Some(1))
            | (op::AND, Some(u32::MAX)) => a,
            (op::MUL | op::AND, Some(0)) => self.id(Val::Const(0)),
            _ => self.id(Val::Alu(o, a, b)),
        }
    }
}

/// Registers an instruction reads and writes: bit 0 A, bit 1 X, bit
/// 2 + k scratch word k.
fn uses_defs(i: Insn) -> (u32, u32) {
    let (a, x, m) = (1u32, 2u32, 4u32 << (i.k & 15));
    let xop = i.code & 0x08 == src::X;
    match i.class() {
        class::LD => match i.code & 0xe0 {
            // Some ancillary loads read A and X (`xor_x`, `nla`).
            mode::ABS if i.k >= skf::AD_OFF => (a | x, a),
            mode::IND => (x, a),
            mode::MEM => (m, a),
            _ => (0, a),
        },
        class::LDX if i.code & 0xe0 == mode::MEM => (m, x),
        class::LDX => (0, x),
        class::ST => (a, m),
        class::STX => (x, m),
        class::ALU if i.code & 0xf0 == op::NEG => (a, a),
        class::ALU => (a | if xop { x } else { 0 }, a),
        class::JMP if i.code & 0xf0 == op::JA => (0, 0),
        class::JMP => (a | if xop { x } else { 0 }, 0),
        class::RET if i.code & 0x18 == rval::A => (a, 0),
        class::RET => (0, 0),
        class::MISC if i.code & 0xf8 == misc::TXA => (x, a),
        _ => (a, x),
    }
}

fn width(code: u16) -> u32 {
    match code & 0x18 {
        size::W => 4,
        size::H => 2,
        _ => 1,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Falls through to the next instruction.
    Op,
    Ja,
    Cond,
    Ret,
}

fn kind(i: Insn) -> Kind {
    match i.class() {
        class::RET => Kind::Ret,
        class::JMP if i.code & 0xf0 == op::JA => Kind::Ja,
        class::JMP => Kind::Cond,
        _ => Kind::Op,
    }
}

struct Graph {
    insn: Vec<Insn>,
    /// Absolute targets: (jt, jf) of a conditional jump, (target, _) of
    /// `ja`.
    tgt: Vec<(usize, usize)>,
    /// Removed (or unreachable): control passes to the next instruction.
    nop: Vec<bool>,
    live: Vec<u32>,
    vals: Values,
}

impl Graph {
    fn new(p: &[Insn]) -> Graph {
        let tgt = p
            .iter()
            .enumerate()
            .map(|(pc, i)| match kind(*i) {
                Kind::Ja => (pc + 1 + i.k as usize, 0),
                Kind::Cond => (pc + 1 + i.jt as usize, pc + 1 + i.jf as usize),
                _ => (0, 0),
            })
            .collect();
        Graph {
            insn: p.to_vec(),
            tgt,
            nop: vec![false; p.len()],
            live: vec![0; p.len()],
            vals: Values {
                vals: Vec::new(),
                ids: HashMap::new(),
            },
        }
    }

    fn resolve(&self, mut at: usize) -> usize {
        while self.nop[at] {
            at += 1;
        }
        at
    }

    fn succs(&self, pc: usize) -> [Option<usize>; 2] {
        match kind(self.insn[pc]) {
            Kind::Op => [Some(self.resolve(pc + 1)), None],
            Kind::Ja => [Some(self.resolve(self.tgt[pc].0)), None],
            Kind::Cond => [
                Some(self.resolve(self.tgt[pc].0)),
                Some(self.resolve(self.tgt[pc].1)),
            ],
            Kind::Ret => [None, None],
        }
    }

    /// Drops what cannot be reached, jumps to the next instruction and
    /// conditions with one target; whether anything changed.
    fn clean(&mut self) -> bool {
        let n = self.insn.len();
        let mut changed = false;
        loop {
            let mut round = false;
            let mut seen = vec![false; n];
            seen[self.resolve(0)] = true;
            for pc in 0..n {
                if !seen[pc] || self.nop[pc] {
                    continue;
                }
                for s in self.succs(pc).into_iter().flatten() {
                    seen[s] = true;
                }
            }
            for pc in 0..n {
                if self.nop[pc] {
                    continue;
                }
                if !seen[pc] {
                    self.nop[pc] = true;
                    round = true;
                    continue;
                }
                match kind(self.insn[pc]) {
                    Kind::Cond => {
                        let [t, f] = self.succs(pc);
                        if t == f {
                            self.insn[pc] = Insn::new(class::JMP | op::JA, 0, 0, 0);
                            self.tgt[pc] = (t.unwrap(), 0);
                            round = true;
                        }
                    }
                    Kind::Ja if self.resolve(self.tgt[pc].0) == self.resolve(pc + 1) => {
                        self.nop[pc] = true;
                        round = true;
                    }
                    _ => {}
                }
            }
            if !round {
                return changed;
            }
            changed = true;
        }
    }

    fn liveness(&mut self) {
        for pc in (0..self.insn.len()).rev() {
            if self.nop[pc] {
                continue;
            }
            let (uses, defs) = uses_defs(self.insn[pc]);
            let out = self
                .succs(pc)
                .into_iter()
                .flatten()
                .fold(0, |acc, s| acc | self.live[s]);
            self.live[pc] = uses | (out & !defs);
        }
    }

    fn entry_info(&mut self) -> Info {
        let zero = self.vals.id(Val::Const(0));
        let mut regs = [zero; REGS];
        for (w, r) in regs[2..].iter_mut().enumerate() {
            *r = self.vals.id(Val::Init(w as u8));
        }
        Info {
            regs,
            facts: Vec::new(),
            minlen: 0,
            ind: Vec::new(),
            sets: Vec::new(),
        }
    }

    /// Runs the non-jump instruction at `pc` on `s`; whether it could end
    /// the filter (a load past the packet, a division by zero) given what
    /// `s` knows.
    fn apply(&mut self, pc: usize, s: &mut Info) -> bool {
        let i = self.insn[pc];
        let k = i.k;
        let konst = |v: &mut Values, c: u32| v.id(Val::Const(c));
        let m = 2 + (k & 15) as usize;
        match i.class() {
            class::LD => {
                let (v, fault) = match i.code & 0xe0 {
                    mode::ABS if k >= 0x8000_0000 => (self.vals.id(Val::Special(pc)), true),
                    mode::ABS => {
                        let end = k as u64 + width(i.code) as u64;
                        let fault = end > s.minlen as u64;
                        if end <= u32::MAX as u64 {
                            s.minlen = s.minlen.max(end as u32);
                        }
                        (self.vals.id(Val::Load(i.code & 0x18, k)), fault)
                    }
                    mode::IND => {
                        let x = s.regs[X];
                        let end = k.wrapping_add(width(i.code));
                        let small = k < 0x4000_0000;
                        let fault = !(small
                            && s.ind
                                .iter()
                                .any(|&(v, lo, hi)| v == x && lo <= k && end <= hi));
                        if small && fault {
                            let e = (x, k, end);
                            if let Err(at) = s.ind.binary_search(&e) {
                                s.ind.insert(at, e);
                            }
                        }
                        (self.vals.id(Val::Ind(i.code & 0x18, x, k)), fault)
                    }
                    mode::MEM => (s.regs[m], false),
                    mode::LEN => (self.vals.id(Val::Len), false),
                    _ => (konst(&mut self.vals, k), false),
                };
                s.regs[A] = v;
                fault
            }
            class::LDX => {
                let (v, fault) = match i.code & 0xe0 {
                    mode::MEM => (s.regs[m], false),
                    mode::LEN => (self.vals.id(Val::Len), false),
                    mode::MSH => {
                        let fault = k as u64 >= s.minlen as u64;
                        if k < u32::MAX {
                            s.minlen = s.minlen.max(k + 1);
                        }
                        (self.vals.id(Val::Msh(k)), fault)
                    }
                    _ => (konst(&mut self.vals, k), false),
                };
                s.regs[X] = v;
                fault
            }
            class::ST => {
                s.regs[m] = s.regs[A];
                false
            }
            class::STX => {
                s.regs[m] = s.regs[X];
                false
            }
            class::ALU => {
                let o = i.code & 0xf0;
                if o == op::NEG {
                    s.regs[A] = match self.vals.konst(s.regs[A]) {
                        Some(c) => konst(&mut self.vals, c.wrapping_neg()),
                        None => self.vals.id(Val::Neg(s.regs[A])),
                    };
                    return false;
                }
                let b = if i.code & 0x08 == src::X {
                    s.regs[X]
                } else {
                    konst(&mut self.vals, k)
                };
                let fault = matches!(o, op::DIV | op::MOD) && self.vals.konst(b).unwrap_or(0) == 0;
                s.regs[A] = self.vals.alu(o, s.regs[A], b);
                fault
            }
            class::MISC => {
                if i.code & 0xf8 == misc::TXA {
                    s.regs[A] = s.regs[X];
                } else {
                    s.regs[X] = s.regs[A];
                }
                false
            }
            _ => true,
        }
    }

    /// The comparison of a conditional jump in state `s`: (value, rhs).
    fn comparison(&mut self, pc: usize, s: &Info) -> (Id, Id) {
        let i = self.insn[pc];
        let rhs = if i.code & 0x08 == src::X {
            s.regs[X]
        } else {
            self.vals.id(Val::Const(i.k))
        };
        (s.regs[A], rhs)
    }

    /// Whether `v op rhs` holds wherever `facts` do, when they decide it.
    fn decide(&self, info: &Info, v: Id, o: u16, rhs: Id) -> Option<bool> {
        let facts = &info.facts[..];
        let eval = |a: u32, k: u32| match o {
            op::JEQ => a == k,
            op::JGT => a > k,
            op::JGE => a >= k,
            _ => a & k != 0,
        };
        let start = facts.partition_point(|f| f.v < v);
        let same = facts[start..].iter().take_while(|f| f.v == v);
        let Some(k) = self.vals.konst(rhs) else {
            if v == rhs && o != op::JSET {
                return Some(o != op::JGT);
            }
            return same
                .clone()
                .find(|f| f.op == o && f.rhs == rhs)
                .map(|f| f.holds);
        };
        let (mut lo, mut hi) = self.vals.range(v);
        let (mut zero, mut eq, mut ne) = (0u32, None, false);
        let mut set = Vec::new();
        for f in same {
            let Some(c) = self.vals.konst(f.rhs) else {
                continue;
            };
            match (f.op, f.holds) {
                (op::JEQ, true) => eq = Some(c),
                (op::JEQ, false) => ne |= c == k,
                (op::JGT, true) => lo = lo.max(c.saturating_add(1)),
                (op::JGT, false) => hi = hi.min(c),
                (op::JGE, true) => lo = lo.max(c),
                (op::JGE, false) => hi = hi.min(c.saturating_sub(1)),
                (_, false) => zero |= c,
                (_, true) => set.push(c),
            }
        }
        if let Some(e) = eq {
            return Some(eval(e, k));
        }
        if lo > hi {
            return None;
        }
        // One of a few constants: the ones the other facts leave.
        if let Ok(at) = info.sets.binary_search_by_key(&v, |(id, _)| *id) {
            let mut left = info.sets[at].1.iter().filter(|&&c| {
                c >= lo
                    && c <= hi
                    && c & zero == 0
                    && set.iter().all(|m| c & m != 0)
                    && !facts[start..]
                        .iter()
                        .take_while(|f| f.v == v)
                        .any(|f| f.op == op::JEQ && !f.holds && self.vals.konst(f.rhs) == Some(c))
            });
            if let Some(&first) = left.next() {
                let r = eval(first, k);
                if left.all(|&c| eval(c, k) == r) {
                    return Some(r);
                }
            }
        }
        if lo == hi {
            return Some(eval(lo, k));
        }
        match o {
            op::JEQ => (ne || k < lo || k > hi || k & zero != 0).then_some(false),
            op::JGT if lo > k => Some(true),
            op::JGT if hi <= k => Some(false),
            op::JGE if lo >= k => Some(true),
            op::JGE if hi < k => Some(false),
            op::JSET => {
                let possible = if hi.leading_zeros() == 0 {
                    u32::MAX
                } else {
                    (1u32 << (32 - hi.leading_zeros())) - 1
                };
                if k & !zero & possible == 0 {
                    Some(false)
                } else if set.iter().any(|c| c & !k == 0) {
                    Some(true)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// The forward pass: what holds on entry to each reachable instruction.
    fn forward(&mut self) -> Vec<Option<Info>> {
        let n = self.insn.len();
        let mut inn: Vec<Option<Info>> = vec![None; n];
        inn[self.resolve(0)] = Some(self.entry_info());
        for pc in 0..n {
            if self.nop[pc] {
                continue;
            }
            let Some(info) = inn[pc].clone() else {
                continue;
            };
            match kind(self.insn[pc]) {
                Kind::Ret => {}
                Kind::Op => {
                    let mut s = info;
                    self.apply(pc, &mut s);
                    let to = self.resolve(pc + 1);
                    self.meet(&mut inn, to, s);
                }
                Kind::Ja => {
                    let to = self.resolve(self.tgt[pc].0);
                    self.meet(&mut inn, to, info);
                }
                Kind::Cond => {
                    for (to, holds) in [(self.tgt[pc].0, true), (self.tgt[pc].1, false)] {
                        let s = self.edge(pc, &info, holds);
                        let to = self.resolve(to);
                        self.meet(&mut inn, to, s);
                    }
                }
            }
        }
        inn
    }

    /// What holds after the conditional jump at `pc` went one way.
    fn edge(&mut self, pc: usize, info: &Info, holds: bool) -> Info {
        let (v, rhs) = self.comparison(pc, info);
        let mut s = info.clone();
        let f = Fact {
            v,
            op: self.insn[pc].code & 0xf0,
            rhs,
            holds,
        };
        if let Err(at) = s.facts.binary_search(&f) {
            s.facts.insert(at, f);
        }
        s
    }

    fn meet(&mut self, inn: &mut [Option<Info>], to: usize, s: Info) {
        let Some(cur) = &mut inn[to] else {
            inn[to] = Some(s);
            return;
        };
        for r in 0..REGS {
            if cur.regs[r] != s.regs[r] {
                cur.regs[r] = self.vals.id(Val::Phi(to, r as u8));
            }
        }
        // A value that is one of a few constants on each side is one of
        // their union here.
        let possible = |i: &Info, v: Id| -> Option<Vec<u32>> {
            if let Ok(at) = i.sets.binary_search_by_key(&v, |(id, _)| *id) {
                return Some(i.sets[at].1.clone());
            }
            let start = i.facts.partition_point(|f| f.v < v);
            i.facts[start..]
                .iter()
                .take_while(|f| f.v == v)
                .find(|f| f.op == op::JEQ && f.holds)
                .and_then(|f| self.vals.konst(f.rhs))
                .map(|c| vec![c])
        };
        let mut ids: Vec<Id> = cur.sets.iter().map(|(v, _)| *v).collect();
        ids.extend(
            cur.facts
                .iter()
                .filter(|f| f.op == op::JEQ && f.holds && self.vals.konst(f.rhs).is_some())
                .map(|f| f.v),
        );
        ids.sort_unstable();
        ids.dedup();
        let mut sets = Vec::new();
        for v in ids {
            if let (Some(mut a), Some(b)) = (possible(cur, v), possible(&s, v)) {
                a.extend(b);
                a.sort_unstable();
                a.dedup();
                if a.len() > 1 && a.len() <= MAX_SET {
                    sets.push((v, a));
                }
            }
        }
        cur.sets = sets;
        cur.facts.retain(|f| s.facts.binary_search(f).is_ok());
        cur.ind.retain(|e| s.ind.binary_search(e).is_ok());
        cur.minlen = cur.minlen.min(s.minlen);
    }

    /// Where an edge into `target` can go instead, given `s` on it: past
    /// every comparison `s` decides and every instruction that cannot end
    /// the filter, to the furthest point that every way on reaches with
    /// each register read there still holding what it holds on the edge.
    /// A comparison `s` does not decide is followed both ways (a bounded
    /// number of instructions in all) and the points both reach count.
    fn thread(&mut self, target: usize, s: &Info) -> usize {
        let first = self.resolve(target);
        let mut budget = 256;
        let points = self.reached(first, s.clone(), s, &mut budget);
        match points.into_iter().max() {
            Some(best) if best != first => best,
            _ => target,
        }
    }

    /// The points every path from `cur` (in state `sim`) reaches with the
    /// registers read there as in `orig`.
    fn reached(
        &mut self,
        mut cur: usize,
        mut sim: Info,
        orig: &Info,
        budget: &mut usize,
    ) -> Vec<usize> {
        let mut points = Vec::new();
        loop {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            cur = match kind(self.insn[cur]) {
                Kind::Ret => break,
                Kind::Op => {
                    if self.apply(cur, &mut sim) {
                        break;
                    }
                    self.resolve(cur + 1)
                }
                Kind::Ja => self.resolve(self.tgt[cur].0),
                Kind::Cond => {
                    let (v, rhs) = self.comparison(cur, &sim);
                    match self.decide(&sim, v, self.insn[cur].code & 0xf0, rhs) {
                        Some(true) => self.resolve(self.tgt[cur].0),
                        Some(false) => self.resolve(self.tgt[cur].1),
                        None => {
                            let t = self.edge(cur, &sim, true);
                            let f = self.edge(cur, &sim, false);
                            let (jt, jf) =
                                (self.resolve(self.tgt[cur].0), self.resolve(self.tgt[cur].1));
                            // (A jump leaves the registers as they are.)
                            let mut a = self.reached(jt, t, orig, budget);
                            if self.agrees(jt, &sim, orig) {
                                a.push(jt);
                            }
                            let mut b = self.reached(jf, f, orig, budget);
                            if self.agrees(jf, &sim, orig) {
                                b.push(jf);
                            }
                            points.extend(a.into_iter().filter(|p| b.contains(p)));
                            break;
                        }
                    }
                }
            };
            if self.agrees(cur, &sim, orig) {
                points.push(cur);
            }
        }
        points
    }

    /// Whether each register read at `at` holds in `sim` what it holds in
    /// `orig`.
    fn agrees(&self, at: usize, sim: &Info, orig: &Info) -> bool {
        let live = self.live[at];
        (0..REGS).all(|r| live & (1 << r) == 0 || sim.regs[r] == orig.regs[r])
    }

    /// The one value every path from `cur` returns given `s` (an
    /// instruction that ends the filter returns 0), when exploring at most
    /// `budget` instructions shows it.
    fn constant_result(&mut self, mut cur: usize, s: &Info, budget: &mut usize) -> Option<u32> {
        let mut sim = s.clone();
        let mut faulted = false;
        let result = loop {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let i = self.insn[cur];
            match kind(i) {
                Kind::Ret if i.code & 0x18 == rval::K => break i.k,
                Kind::Ret => break self.vals.konst(sim.regs[A])?,
                Kind::Op => {
                    faulted |= self.apply(cur, &mut sim);
                    cur = self.resolve(cur + 1);
                }
                Kind::Ja => cur = self.resolve(self.tgt[cur].0),
                Kind::Cond => {
                    let (v, rhs) = self.comparison(cur, &sim);
                    let o = i.code & 0xf0;
                    match self.decide(&sim, v, o, rhs) {
                        Some(true) => cur = self.resolve(self.tgt[cur].0),
                        Some(false) => cur = self.resolve(self.tgt[cur].1),
                        None => {
                            let t = self.edge(cur, &sim, true);
                            let f = self.edge(cur, &sim, false);
                            let (jt, jf) = self.tgt[cur];
                            let a = self.constant_result(self.resolve(jt), &t, budget)?;
                            let b = self.constant_result(self.resolve(jf), &f, budget)?;
                            if a != b {
                                return None;
                            }
                            break a;
                        }
                    }
                }
            }
        };
        (!faulted || result == 0).then_some(result)
    }

    /// Where an edge into `target` with `s` on it should go.
    fn redirect(&mut self, from: usize, target: usize, s: &Info) -> usize {
        let mut budget = 64;
        if let Some(c) = self.constant_result(self.resolve(target), s, &mut budget) {
            let ret = Insn::new(class::RET | rval::K, 0, 0, c);
            if let Some(r) =
                (from + 1..self.insn.len()).find(|&r| !self.nop[r] && self.insn[r] == ret)
            {
                return if self.resolve(target) == r { target } else { r };
            }
        }
        self.thread(target, s)
    }

    fn threading(&mut self) -> bool {
        let inn = self.forward();
        self.liveness();
        let mut changed = false;
        for pc in (0..self.insn.len()).rev() {
            let Some(info) = inn[pc].as_ref() else {
                continue;
            };
            if self.nop[pc] {
                continue;
            }
            match kind(self.insn[pc]) {
                Kind::Ja => {
                    let to = self.redirect(pc, self.tgt[pc].0, info);
                    if to != self.tgt[pc].0 {
                        self.tgt[pc].0 = to;
                        changed = true;
                        self.liveness();
                    }
                }
                Kind::Cond => {
                    for holds in [true, false] {
                        let s = self.edge(pc, info, holds);
                        let old = if holds {
                            self.tgt[pc].0
                        } else {
                            self.tgt[pc].1
                        };
                        let to = self.redirect(pc, old, &s);
                        if to != old {
                            if holds {
                                self.tgt[pc].0 = to;
                            } else {
                                self.tgt[pc].1 = to;
                            }
                            changed = true;
                            self.liveness();
                        }
                    }
                }
                _ => {}
            }
        }
        changed
    }

    /// Removes instructions that change nothing read later and cannot end
    /// the filter.
    fn redundant(&mut self) -> bool {
        let inn = self.forward();
        self.liveness();
        let mut changed = false;
        for pc in (0..self.insn.len()).rev() {
            let Some(before) = inn[pc].as_ref() else {
                continue;
            };
            let i = self.insn[pc];
            if self.nop[pc] {
                continue;
            }
            // An X operand known to be a constant becomes that constant.
            if matches!(i.class(), class::ALU | class::JMP)
                && i.code & 0x08 == src::X
                && let Some(c) = self.vals.konst(before.regs[X])
                && !(matches!(i.code & 0xf0, op::DIV | op::MOD) && c == 0)
                && !(i.class() == class::ALU && i.code & 0xf0 == op::NEG)
            {
                self.insn[pc] = Insn::new(i.code & !0x08, i.jt, i.jf, c);
                changed = true;
                self.liveness();
            }
            // A comparison every path to it decides is a jump.
            if kind(self.insn[pc]) == Kind::Cond {
                let (v, rhs) = self.comparison(pc, before);
                if let Some(holds) = self.decide(before, v, self.insn[pc].code & 0xf0, rhs) {
                    let to = if holds {
                        self.tgt[pc].0
                    } else {
                        self.tgt[pc].1
                    };
                    self.insn[pc] = Insn::new(class::JMP | op::JA, 0, 0, 0);
                    self.tgt[pc] = (to, 0);
                    changed = true;
                    self.liveness();
                }
                continue;
            }
            if kind(self.insn[pc]) != Kind::Op {
                continue;
            }
            let mut after = before.clone();
            if self.apply(pc, &mut after) {
                continue;
            }
            let live = self.live[self.resolve(pc + 1)];
            if (0..REGS).all(|r| live & (1 << r) == 0 || after.regs[r] == before.regs[r]) {
                self.nop[pc] = true;
                changed = true;
                self.liveness();
                continue;
            }
            // A register set to a known constant is set by an immediate
            // load, so what computed it may become dead.
            let i = self.insn[pc];
            let (_, defs) = uses_defs(i);
            let imm = match defs {
                1 => class::LD | mode::IMM,
                2 => class::LDX | mode::IMM,
                _ => continue,
            };
            let r = defs.trailing_zeros() as usize;
            if let Some(c) = self.vals.konst(after.regs[r])
                && i.code != imm
            {
                self.insn[pc] = Insn::new(imm, 0, 0, c);
                changed = true;
                self.liveness();
            }
        }
        changed
    }

    /// Sends jumps to the last of identical instructions (same operation,
    /// same successors).
    fn share(&mut self) -> bool {
        let n = self.insn.len();
        let mut sig: Vec<u32> = vec![u32::MAX; n];
        let mut ids: HashMap<(u16, u32, u32, u32), u32> = HashMap::new();
        let mut rep: Vec<usize> = Vec::new();
        for pc in (0..n).rev() {
            if self.nop[pc] {
                continue;
            }
            let i = self.insn[pc].canonical();
            let [a, b] = self.succs(pc).map(|s| s.map_or(u32::MAX, |s| sig[s]));
            let key = if kind(i) == Kind::Ja {
                // A jump is its target.
                sig[pc] = a;
                continue;
            } else {
                (i.code, i.k, a, b)
            };
            let next = ids.len() as u32;
            let id = *ids.entry(key).or_insert(next);
            if id == next {
                rep.push(pc);
            }
            sig[pc] = id;
        }
        let mut changed = false;
        for pc in 0..n {
            if self.nop[pc] || !matches!(kind(self.insn[pc]), Kind::Ja | Kind::Cond) {
                continue;
            }
            for which in 0..2 {
                if which == 1 && kind(self.insn[pc]) == Kind::Ja {
                    continue;
                }
                let t = if which == 0 {
                    self.tgt[pc].0
                } else {
                    self.tgt[pc].1
                };
                let t = self.resolve(t);
                let r = rep[sig[t] as usize];
                if r != t && r > pc {
                    if which == 0 {
                        self.tgt[pc].0 = r;
                    } else {
                        self.tgt[pc].1 = r;
                    }
                    changed = true;
                }
            }
        }
        changed
    }

    fn peephole(&mut self) -> bool {
        self.liveness();
        let n = self.insn.len();
        // The only instruction that leads to each one, when it falls
        // through to it.
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        for p in (0..n).filter(|&p| !self.nop[p]) {
            for s in self.succs(p).into_iter().flatten() {
                preds[s].push(p);
            }
        }
        let mut changed = false;
        for pc in 0..self.insn.len() {
            let j = self.insn[pc];
            if self.nop[pc] || kind(j) != Kind::Cond || j.code != class::JMP | op::JEQ | src::K {
                continue;
            }
            if j.k != 0 {
                continue;
            }
            let p = match preds[pc][..] {
                [p] if kind(self.insn[p]) == Kind::Op => p,
                _ => continue,
            };
            let [t, f] = self.succs(pc).map(Option::unwrap);
            if (self.live[t] | self.live[f]) & 1 != 0 {
                continue;
            }
            let a = self.insn[p];
            if a.class() != class::ALU {
                continue;
            }
            let s = a.code & 0x08;
            match a.code & 0xf0 {
                op::AND => {
                    self.insn[pc] = Insn::new(class::JMP | op::JSET | s, 0, 0, a.k);
                    self.tgt[pc] = (self.tgt[pc].1, self.tgt[pc].0);
                }
                op::SUB => self.insn[pc] = Insn::new(class::JMP | op::JEQ | s, 0, 0, a.k),
                _ => continue,
            }
            self.nop[p] = true;
            changed = true;
            self.liveness();
        }
        changed
    }

    fn emit(&self) -> Option<Vec<Insn>> {
        let n = self.insn.len();
        let mut at = vec![usize::MAX; n];
        let mut k = 0;
        for pc in 0..n {
            if !self.nop[pc] {
                at[pc] = k;
                k += 1;
            }
        }
        let mut out = Vec::with_capacity(k);
        for pc in 0..n {
            if self.nop[pc] {
                continue;
            }
            let mut i = self.insn[pc];
            let me = at[pc];
            let rel = |t: usize| at[self.resolve(t)] - me - 1;
            match kind(i) {
                Kind::Ja => i.k = u32::try_from(rel(self.tgt[pc].0)).ok()?,
                Kind::Cond => {
                    i.jt = u8::try_from(rel(self.tgt[pc].0)).ok()?;
                    i.jf = u8::try_from(rel(self.tgt[pc].1)).ok()?;
                }
                _ => {}
            }
            out.push(i);
        }
        Some(out)
    }
}

/// Optimizes a classic program (see the module comment). A program that
/// does not pass [`crate::validate`] is returned as it is.
pub fn optimize(p: &[Insn]) -> Vec<Insn> {
    if crate::validate(p).is_err() {
        return p.to_vec();
    }
    let mut g = Graph::new(p);
    g.clean();
    // Each round only shortens edges or removes instructions, so this
    // ends; the bound is a guard.
    for _ in 0..4 * p.len() + 8 {
        let mut changed = g.threading();
        changed |= g.clean();
        changed |= g.redundant();
        changed |= g.clean();
        changed |= g.share();
        changed |= g.clean();
        changed |= g.peephole();
        changed |= g.clean();
        if !changed {
            break;
        }
    }
    match g.emit() {
        Some(out) if out.len() <= p.len() && crate::validate(&out).is_ok() => out,
        _ => p.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A random valid program from bytes: loads of a few offsets, ALU with
    /// small constants, scratch memory (all written first), forward jumps
    /// on constants the packets contain, returns of constants and A.
    fn program(ops: &[(u8, u8, u8)], n_ret: usize) -> Vec<Insn> {
        let mut p: Vec<Insn> = (0..MEMWORDS)
            .map(|k| Insn::new(class::ST, 0, 0, k))
            .collect();
        let body = ops.len();
        let consts = [0u32, 1, 2, 6, 0x11, 0x45, 0x800, 0xff];
        for (at, &(c, a, b)) in ops.iter().enumerate() {
            let k = consts[a as usize % consts.len()];
            let off = (b % 24) as u32;
            let sz = [size::B, size::H, size::W][a as usize % 3];
            let left = (body - at - 1 + n_ret) as u8;
            let i = match c % 20 {
                0 | 1 => Insn::new(class::LD | sz | mode::ABS, 0, 0, off),
                2 => Insn::new(class::LD | sz | mode::IND, 0, 0, off),
                3 => Insn::new(class::LDX | size::B | mode::MSH, 0, 0, off),
                4 => Insn::new(class::LD | mode::IMM, 0, 0, k),
                5 => Insn::new(class::LDX | mode::IMM, 0, 0, k % 8),
                6 => Insn::new(class::LD | mode::LEN, 0, 0, 0),
                7 => Insn::new(class::ST, 0, 0, b as u32 % 16),
                8 => Insn::new(class::LD | mode::MEM, 0, 0, b as u32 % 16),
                9 => Insn::new(class::LDX | mode::MEM, 0, 0, b as u32 % 16),
                10 => Insn::new(class::MISC | misc::TAX, 0, 0, 0),
                11 => Insn::new(class::MISC | misc::TXA, 0, 0, 0),
                12 => {
                    let o = [op::ADD, op::SUB, op::AND, op::OR, op::RSH, op::LSH][b as usize % 6];
                    let k = if matches!(o, op::RSH | op::LSH) {
                        k % 32
                    } else {
                        k
                    };
                    Insn::new(class::ALU | o, 0, 0, k)
                }
                13 => {
                    let o = [op::ADD, op::SUB, op::AND, op::DIV, op::MOD, op::XOR][b as usize % 6];
                    Insn::new(class::ALU | o | src::X, 0, 0, 0)
                }
                14 => Insn::new(class::RET | rval::A, 0, 0, 0),
                15 => Insn::new(class::JMP | op::JA, 0, 0, (b % left.max(1)) as u32),
                _ => {
                    let o = [op::JEQ, op::JGT, op::JGE, op::JSET][c as usize % 4];
                    let s = if a & 0x80 != 0 { src::X } else { src::K };
                    Insn::new(class::JMP | o | s, a % left.max(1), b % left.max(1), k)
                }
            };
            p.push(i);
        }
        for r in 0..n_ret {
            p.push(Insn::new(class::RET | rval::K, 0, 0, [0, 0xffff, 1][r % 3]));
        }
        p
    }

    fn packet(bytes: &[u8]) -> Vec<u8> {
        let alphabet = [0u8, 1, 2, 6, 8, 0x11, 0x45, 0xff];
        bytes.iter().map(|b| alphabet[*b as usize % 8]).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The optimized program returns what the program returns on every
        /// packet, also short ones, and is no longer.
        #[test]
        fn optimized_programs_return_the_same(
            ops in proptest::collection::vec(any::<(u8, u8, u8)>(), 1..40),
            n_ret in 1usize..4,
            pkts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..12),
        ) {
            let p = program(&ops, n_ret);
            prop_assume!(crate::validate(&p).is_ok());
            let o = optimize(&p);
            prop_assert!(o.len() <= p.len());
            prop_assert!(crate::validate(&o).is_ok(), "{}", crate::listing(&o));
            let meta = crate::Meta::default();
            for b in &pkts {
                let pkt = packet(b);
                prop_assert_eq!(
                    crate::run(&p, &pkt, &meta),
                    crate::run(&o, &pkt, &meta),
                    "packet {:?}\n{}\n-- optimized:\n{}", pkt, crate::listing(&p), crate::listing(&o)
                );
            }
        }
    }

    #[test]
    fn decided_comparisons_are_threaded_and_shared_code_merged() {
        // IPv4 protocol 6 or IPv4 protocol 17, as a naive compiler writes
        // it: the second `ldh [12]` test is decided on both edges into it,
        // the second `ldb [23]` loads what A holds.
        let p = crate::assemble(
            "ldh [12]\njeq #0x800 jt 2 jf 4\nldb [23]\njeq #6 jt 8 jf 4\n\
             ldh [12]\njeq #0x800 jt 6 jf 9\nldb [23]\njeq #17 jt 8 jf 9\n\
             ret #1\nret #0\n",
        )
        .unwrap();
        let o = optimize(&p);
        assert_eq!(
            crate::listing(&o),
            "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 6\n\
             (002) ldb      [23]\n(003) jeq      #0x6             jt 5\tjf 4\n\
             (004) jeq      #0x11            jt 5\tjf 6\n(005) ret      #1\n(006) ret      #0\n"
        );
    }
}
