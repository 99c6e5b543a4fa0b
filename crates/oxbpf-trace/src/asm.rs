//! A small eBPF emitter with labels, for the code generator.

use oxbpf_isa::RawInsn;
use oxbpf_isa::raw::opcode::*;
use oxbpf_isa::raw::*;

pub type Reg = u8;
pub const R0: Reg = 0;
pub const R1: Reg = 1;
pub const R2: Reg = 2;
pub const R3: Reg = 3;
pub const R4: Reg = 4;
pub const R5: Reg = 5;
pub const R6: Reg = 6;
pub const R10: Reg = 10;

/// A jump target, placed later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Default)]
pub struct Asm {
    pub insns: Vec<RawInsn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
    /// After an unconditional jump or exit, until a label is placed: code
    /// here could never run, and the kernel refuses unreachable
    /// instructions, so it is not emitted.
    dead: bool,
    /// `lddw rX, func` instructions and the subprogram label they load.
    func_fixups: Vec<(usize, Label)>,
    /// Subprograms (callbacks) appended after the code by [`Asm::finish`],
    /// each already finished, at its label.
    subprogs: Vec<(Label, Vec<RawInsn>, Vec<usize>)>,
}

/// What [`Asm::checkpoint`] saves.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint(usize, usize, usize, bool, usize);

/// Memory access widths.
pub fn size_bits(bytes: u32) -> u8 {
    match bytes {
        1 => BPF_B,
        2 => BPF_H,
        4 => BPF_W,
        _ => BPF_DW,
    }
}

impl Asm {
    fn raw(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        if self.dead {
            return;
        }
        self.insns.push(RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn place(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
        // Reachable again if something jumps here (jumps to a label placed
        // later are all emitted before it is placed).
        if self.fixups.iter().any(|&(_, t)| t == l) {
            self.dead = false;
        }
    }

    pub fn mov_imm(&mut self, dst: Reg, imm: i64) {
        if let Ok(v) = i32::try_from(imm) {
            self.raw(MOV64_K, dst, 0, 0, v);
        } else {
            self.lddw(dst, imm as u64, 0);
        }
    }

    pub fn mov(&mut self, dst: Reg, src: Reg) {
        if dst != src {
            self.raw(MOV64_X, dst, src, 0, 0);
        }
    }

    /// `dst = (u32)dst` (zero-extends the low half).
    pub fn zext32(&mut self, dst: Reg) {
        self.raw(MOV32_X, dst, dst, 0, 0);
    }

    pub fn alu_imm(&mut self, op: u8, dst: Reg, imm: i32) {
        self.raw(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
    }

    pub fn alu(&mut self, op: u8, dst: Reg, src: Reg) {
        self.raw(BPF_ALU64 | op | BPF_X, dst, src, 0, 0);
    }

    /// Signed division or modulo (`off` 1: RFC 9669's SDIV/SMOD).
    pub fn alu_signed(&mut self, op: u8, dst: Reg, src: Reg) {
        self.raw(BPF_ALU64 | op | BPF_X, dst, src, 1, 0);
    }

    pub fn neg(&mut self, dst: Reg) {
        self.raw(NEG64, dst, 0, 0, 0);
    }

    /// Sign-extends the low `bytes` of `dst`.
    pub fn sext(&mut self, dst: Reg, bytes: u32) {
        if bytes < 8 {
            let shift = (64 - 8 * bytes) as i32;
            self.alu_imm(BPF_LSH, dst, shift);
            self.alu_imm(BPF_ARSH, dst, shift);
        }
    }

    /// Keeps the low `bytes` of `dst`.
    pub fn trunc(&mut self, dst: Reg, bytes: u32) {
        match bytes {
            1 => self.alu_imm(BPF_AND, dst, 0xff),
            2 => self.alu_imm(BPF_AND, dst, 0xffff),
            4 => self.zext32(dst),
            _ => {}
        }
    }

    pub fn ldx(&mut self, bytes: u32, dst: Reg, src: Reg, off: i16) {
        self.raw(BPF_LDX | BPF_MEM | size_bits(bytes), dst, src, off, 0);
    }

    pub fn stx(&mut self, bytes: u32, base: Reg, off: i16, src: Reg) {
        self.raw(BPF_STX | BPF_MEM | size_bits(bytes), base, src, off, 0);
    }

    pub fn st_imm(&mut self, bytes: u32, base: Reg, off: i16, imm: i32) {
        self.raw(BPF_ST | BPF_MEM | size_bits(bytes), base, 0, off, imm);
    }

    /// `lock *(u64 *)(base + off) += src`.
    pub fn atomic_add(&mut self, base: Reg, off: i16, src: Reg) {
        self.raw(
            BPF_STX | BPF_ATOMIC | BPF_DW,
            base,
            src,
            off,
            BPF_ADD as i32,
        );
    }

    /// `dst = imm64` (`src` a pseudo source: 0, or a map index kind).
    pub fn lddw(&mut self, dst: Reg, imm: u64, src: Reg) {
        self.raw(LDDW, dst, src, 0, imm as u32 as i32);
        self.raw(0, 0, 0, 0, (imm >> 32) as u32 as i32);
    }

    /// `dst = &subprogram` (`BPF_PSEUDO_FUNC`): the callback placed at
    /// `to` by [`Asm::subprog`].
    pub fn ld_func(&mut self, dst: Reg, to: Label) {
        if !self.dead {
            self.func_fixups.push((self.insns.len(), to));
        }
        self.lddw(dst, 0, BPF_PSEUDO_FUNC);
    }

    /// A finished subprogram to append after the code, at `at` (a label
    /// only [`Asm::ld_func`] refers to), with the starts of the
    /// subprograms inside it (relative to its own start).
    pub fn subprog(&mut self, at: Label, (insns, inner): (Vec<RawInsn>, Vec<usize>)) {
        self.subprogs.push((at, insns, inner));
    }

    /// `dst = bswapBITS(dst)` (16, 32 or 64; the upper bits cleared).
    pub fn bswap(&mut self, dst: Reg, bits: i32) {
        self.raw(BPF_ALU | BPF_END | BPF_TO_BE, dst, 0, 0, bits);
    }

    /// `dst = map N` (an index into the object's maps).
    pub fn ld_map(&mut self, dst: Reg, map: usize) {
        self.lddw(dst, map as u64, BPF_PSEUDO_MAP_IDX);
    }

    /// `dst = &map N's value + off` (a one-entry array, global data).
    pub fn ld_map_value(&mut self, dst: Reg, map: usize, off: u32) {
        self.lddw(
            dst,
            map as u64 | (u64::from(off) << 32),
            BPF_PSEUDO_MAP_IDX_VALUE,
        );
    }

    pub fn call(&mut self, helper: i32) {
        self.raw(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
    }

    pub fn exit(&mut self) {
        self.raw(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        self.dead = true;
    }

    pub fn ja(&mut self, to: Label) {
        self.jump(JA, 0, 0, 0, to);
        self.dead = true;
    }

    fn jump(&mut self, code: u8, dst: Reg, src: Reg, imm: i32, to: Label) {
        if !self.dead {
            self.fixups.push((self.insns.len(), to));
            self.raw(code, dst, src, 0, imm);
        }
    }

    /// `if dst OP imm goto to` (`op` a BPF_J* code).
    pub fn jmp_imm(&mut self, op: u8, dst: Reg, imm: i32, to: Label) {
        self.jump(BPF_JMP | op | BPF_K, dst, 0, imm, to);
    }

    pub fn jmp(&mut self, op: u8, dst: Reg, src: Reg, to: Label) {
        self.jump(BPF_JMP | op | BPF_X, dst, src, 0, to);
    }

    /// Resolves the jumps, appends the subprograms (returning where each
    /// starts) and resolves the loads of their addresses; every label must
    /// have been placed.
    pub fn finish(mut self) -> (Vec<RawInsn>, Vec<usize>) {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].expect("every label is placed");
            self.insns[at].off = (target as i64 - at as i64 - 1) as i16;
        }
        let mut starts = Vec::new();
        for (l, code, inner) in std::mem::take(&mut self.subprogs) {
            let base = self.insns.len();
            self.labels[l.0] = Some(base);
            starts.push(base);
            starts.extend(inner.into_iter().map(|i| base + i));
            self.insns.extend(code);
        }
        for (at, l) in std::mem::take(&mut self.func_fixups) {
            let target = self.labels[l.0].expect("every subprogram is appended");
            self.insns[at].imm = (target as i64 - at as i64 - 1) as i32;
        }
        (self.insns, starts)
    }

    /// Removes moves the code does not need, before the jumps are
    /// resolved; returns the positions removed, in the order removed (each
    /// in the code as it was at that removal), for the caller's
    /// per-instruction records.
    ///
    /// - `rX = r0` whose only use is one store `*(rY + off) = rX` before
    ///   r0 changes, with rX dead after it: the store takes r0 itself.
    /// - `rX = imm` used the same way: the store stores the immediate.
    /// - A `goto` to the next instruction.
    /// - The prologue's `r6 = r1`: reads of r6 before anything changes r1
    ///   (a call, a jump, a jump target, a write) read r1 instead, so that
    ///   a program reading its context only before its first call can do
    ///   without the copy (the caller drops it when r6 is then unused).
    pub fn peephole(&mut self) -> Vec<usize> {
        self.forward_context();
        let mut removed = Vec::new();
        while let Some(i) = self.forwardable_move() {
            self.remove(i);
            removed.push(i);
        }
        let mut i = 0;
        while i < self.insns.len() {
            let to_next = self.insns[i].code == JA
                && self
                    .fixups
                    .iter()
                    .any(|&(at, l)| at == i && self.labels[l.0] == Some(i + 1));
            if to_next {
                self.fixups.retain(|&(at, _)| at != i);
                self.remove(i);
                removed.push(i);
            } else {
                i += 1;
            }
        }
        removed
    }

    /// Whether a label is placed at `k`.
    fn targets(&self) -> Vec<bool> {
        let mut t = vec![false; self.insns.len() + 1];
        for &p in self.labels.iter().flatten() {
            if p < t.len() {
                t[p] = true;
            }
        }
        t
    }

    fn forward_context(&mut self) {
        let first = self.insns.first().copied();
        if !first.is_some_and(|i| i.code == MOV64_X && i.dst == 6 && i.src == 1) {
            return;
        }
        let targets = self.targets();
        let mut k = 1;
        while k < self.insns.len() && !targets[k] {
            let i = self.insns[k];
            let f = flow(&i);
            if f.branches || f.defs & (1 << 1 | 1 << 6) != 0 {
                break;
            }
            if f.uses & (1 << 6) != 0 {
                if i.src == 6 {
                    self.insns[k].src = 1;
                }
                if i.dst == 6 {
                    self.insns[k].dst = 1;
                }
            }
            k += if i.code == LDDW { 2 } else { 1 };
        }
    }

    /// The first `rX = r0` that [`Asm::peephole`] can remove (rewriting
    /// its store).
    fn forwardable_move(&mut self) -> Option<usize> {
        let live = self.live_out();
        let targets = self.targets();
        let n = self.insns.len();
        let mut i = 0;
        while i < n {
            let m = self.insns[i];
            let step = if m.code == LDDW { 2 } else { 1 };
            let from_r0 = m.code == MOV64_X && m.src == 0;
            if (from_r0 || m.code == MOV64_K) && m.dst != 0 && m.dst != 10 {
                let x = m.dst;
                let mut k = i + 1;
                while k < n && !targets[k] {
                    let s = self.insns[k];
                    let f = flow(&s);
                    if f.branches {
                        break;
                    }
                    if f.uses & (1 << x) != 0 {
                        let store = s.code & 0x07 == BPF_STX && s.code & 0xe0 == BPF_MEM;
                        if store && s.src == x && s.dst != x && live[k] & (1 << x) == 0 {
                            if from_r0 {
                                self.insns[k].src = 0;
                            } else {
                                // BPF_ST keeps the size; its immediate is
                                // sign-extended as the move's was.
                                self.insns[k].code = BPF_ST | BPF_MEM | (s.code & 0x18);
                                self.insns[k].src = 0;
                                self.insns[k].imm = m.imm;
                            }
                            return Some(i);
                        }
                        break;
                    }
                    let changes_source = from_r0 && f.defs & 1 != 0;
                    if changes_source || f.defs & (1 << x) != 0 {
                        break;
                    }
                    k += if s.code == LDDW { 2 } else { 1 };
                }
            }
            i += step;
        }
        None
    }

    /// The registers live after each instruction (bit r), over the code's
    /// jumps as they will be resolved.
    fn live_out(&self) -> Vec<u16> {
        let n = self.insns.len();
        let mut jump_to: Vec<Option<usize>> = vec![None; n];
        for &(at, l) in &self.fixups {
            jump_to[at] = self.labels[l.0];
        }
        let mut live_in = vec![0u16; n + 1];
        let mut out = vec![0u16; n];
        loop {
            let mut changed = false;
            for i in (0..n).rev() {
                let insn = self.insns[i];
                if i > 0 && self.insns[i - 1].code == LDDW {
                    continue; // an lddw's second half
                }
                let f = flow(&insn);
                let next = i + if insn.code == LDDW { 2 } else { 1 };
                let mut o = 0;
                if f.falls_through {
                    o |= live_in.get(next).copied().unwrap_or(0);
                }
                if let Some(t) = jump_to[i] {
                    o |= live_in.get(t).copied().unwrap_or(0);
                }
                let inn = f.uses | (o & !f.defs);
                if inn != live_in[i] || o != out[i] {
                    live_in[i] = inn;
                    out[i] = o;
                    changed = true;
                }
            }
            if !changed {
                return out;
            }
        }
    }

    /// Removes instruction `i` (no jump's own, and no lddw half).
    fn remove(&mut self, i: usize) {
        self.insns.remove(i);
        for p in self.labels.iter_mut().flatten() {
            if *p > i {
                *p -= 1;
            }
        }
        for (at, _) in self.fixups.iter_mut().chain(self.func_fixups.iter_mut()) {
            if *at > i {
                *at -= 1;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// A point to come back to with [`Asm::rollback`].
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint(
            self.insns.len(),
            self.labels.len(),
            self.fixups.len(),
            self.dead,
            self.func_fixups.len(),
        )
    }

    /// Drops everything emitted since `c` (labels made since included).
    pub fn rollback(&mut self, c: Checkpoint) {
        self.insns.truncate(c.0);
        self.labels.truncate(c.1);
        self.fixups.truncate(c.2);
        self.dead = c.3;
        self.func_fixups.truncate(c.4);
        for l in &mut self.labels {
            if l.is_some_and(|at| at > c.0) {
                *l = None;
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}

/// What an instruction does with registers and control, for
/// [`Asm::peephole`]: bit r of `uses`/`defs` for register r.
struct Flow {
    uses: u16,
    defs: u16,
    /// A jump, call or exit: the straight-line scans stop here.
    branches: bool,
    falls_through: bool,
}

fn flow(i: &RawInsn) -> Flow {
    let bit = |r: u8| 1u16 << (r & 0x0f);
    let class = i.code & 0x07;
    let x = i.code & 0x08 != 0;
    let op = i.code & 0xf0;
    let mut f = Flow {
        uses: 0,
        defs: 0,
        branches: false,
        falls_through: true,
    };
    match class {
        BPF_ALU | BPF_ALU64 => {
            if op == BPF_MOV {
                f.uses = if x { bit(i.src) } else { 0 };
            } else {
                f.uses = bit(i.dst) | if x { bit(i.src) } else { 0 };
            }
            f.defs = bit(i.dst);
        }
        BPF_LDX => {
            f.uses = bit(i.src);
            f.defs = bit(i.dst);
        }
        BPF_ST => f.uses = bit(i.dst),
        BPF_STX => {
            f.uses = bit(i.dst) | bit(i.src);
            if i.code & 0xe0 == BPF_ATOMIC {
                if i.imm & BPF_FETCH != 0 {
                    f.defs = bit(i.src);
                }
                if i.imm == BPF_CMPXCHG {
                    f.uses |= bit(0);
                    f.defs = bit(0);
                }
            }
        }
        BPF_LD => {
            if i.code == LDDW {
                f.defs = bit(i.dst);
            } else {
                // Legacy packet loads: r6 in, r0 and the scratch registers
                // out.
                f.uses = bit(6)
                    | if i.code & 0xe0 == BPF_IND {
                        bit(i.src)
                    } else {
                        0
                    };
                f.defs = 0x3f;
                f.branches = true;
            }
        }
        _ => {
            // BPF_JMP, BPF_JMP32
            f.branches = true;
            match op {
                BPF_CALL => {
                    f.uses = 0x3e;
                    f.defs = 0x3f;
                }
                BPF_EXIT => {
                    f.uses = bit(0);
                    f.falls_through = false;
                }
                BPF_JA => f.falls_through = false,
                _ => f.uses = bit(i.dst) | if x { bit(i.src) } else { 0 },
            }
        }
    }
    f
}
