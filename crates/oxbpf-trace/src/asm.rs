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
