//! Control flow: conditional and unconditional jumps (with block
//! duplication and aligned small loop heads), the summing-loop idiom
//! vectorized, helper calls, local calls and `callx`.

#![allow(clippy::useless_conversion)]

use super::*;

pub(super) fn is_jump(code: u8) -> bool {
    matches!(code & 7, BPF_JMP | BPF_JMP32) && !matches!(code, CALL | CALLX | EXIT)
}

/// Loops of at most this many instructions start at a 16-byte boundary.
pub(super) const SMALL_LOOP: usize = 16;

/// A summing loop found by `Emitter::sum_loop`: host registers of the
/// base, index and accumulator, the load's offset and size, the end value
/// of the index and the pc the loop exits to.
#[derive(Clone, Copy)]
pub(super) struct SumLoop {
    b: u8,
    i: u8,
    a: u8,
    disp: i32,
    size: i32,
    end: i32,
    exit: usize,
}

impl Emitter<'_> {
    pub(super) fn jcc(&mut self, cc: Cc, l: DynamicLabel) {
        match cc {
            Cc::E => dynasm!(self.a ; je =>l),
            Cc::Ne => dynasm!(self.a ; jne =>l),
            Cc::A => dynasm!(self.a ; ja =>l),
            Cc::Ae => dynasm!(self.a ; jae =>l),
            Cc::B => dynasm!(self.a ; jb =>l),
            Cc::Be => dynasm!(self.a ; jbe =>l),
            Cc::G => dynasm!(self.a ; jg =>l),
            Cc::Ge => dynasm!(self.a ; jge =>l),
            Cc::L => dynasm!(self.a ; jl =>l),
            Cc::Le => dynasm!(self.a ; jle =>l),
        }
    }

    /// Whether `pc` is entered only by falling through from `pc - 1`.
    pub(super) fn plain_next(&self, pc: usize) -> bool {
        // Entry thunks may enter any instruction, so no pairs then.
        !self.mode.budget && self.thunks.is_none() && pc < self.ops.len() - 1 && !self.leader[pc]
    }

    /// A loop that sums consecutive elements of memory into a register,
    /// as clang writes `for (i = ..; i != N; i += S) acc += *(uS *)(p + i)`:
    /// `t = b; t += i; t = *(uS *)(t + k); a += t; i += S;
    /// if i == N goto X; goto h` (or `if i != N goto h`), with `t` dead
    /// when the loop ends. Trusted, uncounted code on a CPU with AVX2.
    pub(super) fn sum_loop(&self, h: usize) -> Option<SumLoop> {
        let m = self.mode;
        if m.checked || m.count || m.budget || m.blind || !self.cpu.avx2 || self.thunks.is_some() {
            return None;
        }
        let o = self.ops.get(h..h + 7)?;
        let (mv, add, load, acc, step, test) = (o[0], o[1], o[2], o[3], o[4], o[5]);
        let size: i32 = match load.code {
            0x71 => 1,
            0x69 => 2,
            0x61 => 4,
            0x79 => 8,
            _ => return None,
        };
        // t = x; t += y, where one of x, y is the index (the register the
        // step advances) and the other the base.
        let (t, i) = (mv.dst, step.dst);
        let b = match (mv.src, add.src) {
            (x, y) if y == i => x,
            (x, y) if x == i => y,
            _ => return None,
        };
        let a = acc.dst;
        let shape = mv.code == MOV64_X
            && mv.off == 0
            && add.code == ADD64_X
            && add.dst == t
            && load.dst == t
            && load.src == t
            && acc.code == ADD64_X
            && acc.src == t
            && step.code == ADD64_K
            && step.imm == size as i64;
        let regs = [t, b, i, a];
        let distinct =
            regs.iter().all(|&r| r < 10) && (0..4).all(|x| (x + 1..4).all(|y| regs[x] != regs[y]));
        if !shape || !distinct {
            return None;
        }
        let j = h + 5;
        let exit = match test.code {
            // if i == N goto X; goto h
            JEQ_K if test.dst == i && o[6].code == JA && o[6].off as usize == h => {
                test.off as usize
            }
            // if i != N goto h (falling through to X)
            0x55 if test.dst == i && test.off as usize == h => j + 1,
            _ => return None,
        };
        // Nothing else may enter the body, and `t` must be dead after it.
        if (h + 1..=j).any(|p| self.target[p]) || !self.dead_after(t, j) {
            return None;
        }
        Some(SumLoop {
            b: REG[b as usize],
            i: REG[i as usize],
            a: REG[a as usize],
            disp: load.off,
            size,
            end: test.imm as i32,
            exit,
        })
    }

    /// Runs the first iterations of a summing loop 16 elements at a time
    /// (four 256-bit accumulators of 64-bit lanes), placed before the loop
    /// so that only entries from above take it: while the remaining
    /// distance `N - i` is a multiple of the element size and at least 16
    /// elements, none of those iterations can meet the exit test (wrapping
    /// sums do not depend on order); then either `i == N` (leave by the
    /// loop's exit) or the loop itself runs the rest. The same addresses
    /// are read as by the loop's own iterations.
    pub(super) fn sum_loop_vectors(&mut self, s: SumLoop) {
        let SumLoop {
            b,
            i,
            a,
            disp,
            size,
            end,
            exit,
        } = s;
        let group = 16 * size;
        let skip = self.a.new_dynamic_label();
        let exit = self.labels[exit];
        dynasm!(self.a
            ; mov r10, end
            ; sub r10, Rq(i)
        );
        if size > 1 {
            dynasm!(self.a
                ; test r10, size - 1
                ; jnz =>skip
            );
        }
        dynasm!(self.a
            ; cmp r10, group
            ; jb =>skip
        );
        self.lea(S1, b, Some(i), disp);
        dynasm!(self.a
            ; vpxor ymm0, ymm0, ymm0
            ; vpxor ymm1, ymm1, ymm1
            ; vpxor ymm2, ymm2, ymm2
            ; vpxor ymm3, ymm3, ymm3
            ; vectors:
        );
        // Four elements into each of ymm4..ymm7, zero-extended to 64-bit
        // lanes (loaded, then widened register to register), added to the
        // accumulators ymm0..ymm3.
        for k in 0..4u8 {
            let (v, at) = (4 + k, i32::from(k) * 4 * size);
            match size {
                1 => dynasm!(self.a
                    ; vmovd Rx(v), DWORD [r11 + at]
                    ; vpmovzxbq Ry(v), Rx(v)
                ),
                2 => dynasm!(self.a
                    ; vmovq Rx(v), QWORD [r11 + at]
                    ; vpmovzxwq Ry(v), Rx(v)
                ),
                4 => dynasm!(self.a
                    ; vmovdqu Rx(v), OWORD [r11 + at]
                    ; vpmovzxdq Ry(v), Rx(v)
                ),
                _ => dynasm!(self.a ; vmovdqu Ry(v), [r11 + at]),
            }
            dynasm!(self.a ; vpaddq Ry(k), Ry(k), Ry(v));
        }
        dynasm!(self.a
            ; add r11, group
            ; sub r10, group
            ; cmp r10, group
            ; jae <vectors
            // i = N - remaining; a += the sum of all lanes.
            ; mov Rq(i), end
            ; sub Rq(i), r10
            ; vpaddq ymm0, ymm0, ymm1
            ; vpaddq ymm2, ymm2, ymm3
            ; vpaddq ymm0, ymm0, ymm2
            ; vextracti128 xmm1, ymm0, 1
            ; vpaddq xmm0, xmm0, xmm1
            ; vpshufd xmm1, xmm0, 0x4e
            ; vpaddq xmm0, xmm0, xmm1
            ; vmovq r11, xmm0
            ; add Rq(a), r11
            ; vzeroupper
            ; test r10, r10
            ; jz =>exit
            ; =>skip
        );
    }

    /// Pads with no-ops to the next 16-byte boundary (heads of small
    /// loops: their bodies then span fewer fetch blocks). Measured on the
    /// benchmark programs: the sieve's loops ran 10% faster, while aligning
    /// every loop head shifted the switch's dense branches and slowed it.
    /// Code is placed at 64-byte boundaries, so offsets keep alignment.
    pub(super) fn align_loop(&mut self) {
        let mut pad = (16 - self.a.offset().0 % 16) % 16;
        while pad > 0 {
            let n = pad.min(encode::NOPS.len());
            self.a.extend(encode::NOPS[n - 1]);
            pad -= n;
        }
    }

    pub(super) fn jmp(
        &mut self,
        o: Op,
        d: u8,
        s: u8,
        imm: i32,
        w: bool,
        pc: usize,
    ) -> Result<usize, JitError> {
        let reg = o.code & BPF_X != 0;
        match o.code {
            0x05 | 0x06 => {
                let target = o.off as usize;
                if target != pc + 1 && !self.duplicate_block(target, pc + 1)? {
                    let t = self.labels[target];
                    dynasm!(self.a ; jmp =>t);
                }
                return Ok(pc + 1);
            }
            CALL => {
                self.call(o, pc);
                return Ok(pc + 1);
            }
            CALLX => {
                self.callx(d, pc);
                return Ok(pc + 1);
            }
            EXIT => {
                dynasm!(self.a ; ret);
                return Ok(pc + 1);
            }
            _ => {}
        }
        let cc = match o.code & 0xf0 {
            BPF_JEQ => Cc::E,
            BPF_JNE => Cc::Ne,
            BPF_JGT => Cc::A,
            BPF_JGE => Cc::Ae,
            BPF_JLT => Cc::B,
            BPF_JLE => Cc::Be,
            BPF_JSGT => Cc::G,
            BPF_JSGE => Cc::Ge,
            BPF_JSLT => Cc::L,
            BPF_JSLE => Cc::Le,
            BPF_JSET => Cc::Ne,
            _ => return Err(bad(pc, o)),
        };
        let set = o.code & 0xf0 == BPF_JSET;
        let (reg, s) = if self.mode.blind && !reg {
            self.blinded_imm(imm, w);
            (true, 10)
        } else {
            (reg, s)
        };
        match (set, w, reg) {
            (false, true, true) => dynasm!(self.a ; cmp Rq(d), Rq(s)),
            (false, false, true) => dynasm!(self.a ; cmp Rd(d), Rd(s)),
            (false, true, false) if imm == 0 => dynasm!(self.a ; test Rq(d), Rq(d)),
            (false, false, false) if imm == 0 => dynasm!(self.a ; test Rd(d), Rd(d)),
            (false, true, false) => dynasm!(self.a ; cmp Rq(d), imm),
            (false, false, false) => dynasm!(self.a ; cmp Rd(d), imm),
            (true, true, true) => dynasm!(self.a ; test Rq(d), Rq(s)),
            (true, false, true) => dynasm!(self.a ; test Rd(d), Rd(s)),
            (true, true, false) => dynasm!(self.a ; test Rq(d), imm),
            (true, false, false) => dynasm!(self.a ; test Rd(d), imm),
        }
        let t = self.labels[o.off as usize];
        if let Some((end, next)) = self.invert_at
            && end == pc
        {
            // The end of a duplicated block: stay in the loop with one
            // branch to the fall-through successor, leave with a jump.
            self.invert_at = None;
            // A plain `goto` after the branch was folded into the branch
            // where the block was first emitted: go to its target.
            let n = self.ops[pc + 1];
            let f_pc = if n.code == JA && pc + 1 < self.ops.len() - 1 && !self.target[pc + 1] {
                n.off as usize
            } else {
                pc + 1
            };
            if f_pc == next {
                // The successor comes right after the copy.
                self.jcc(cc, t);
            } else {
                let f = self.labels[f_pc];
                self.jcc(cc.negate(), f);
                dynasm!(self.a ; jmp =>t);
            }
            return Ok(usize::MAX);
        }
        // `if c goto T; goto L` (nothing else entering the goto): one
        // branch `if !c goto L`, then T — the loop back-edge of clang's
        // rotated loops becomes a single taken branch. Only without
        // counting: the goto is a block of its own.
        let n = self.ops[pc + 1];
        if !self.mode.count
            && self.thunks.is_none()
            && n.code == JA
            && pc + 1 < self.ops.len() - 1
            && !self.target[pc + 1]
        {
            let l = self.labels[n.off as usize];
            self.jcc(cc.negate(), l);
            if o.off as usize != pc + 2 {
                dynasm!(self.a ; jmp =>t);
            }
            return Ok(pc + 2);
        }
        self.jcc(cc, t);
        Ok(pc + 1)
    }

    /// Tail duplication: a `goto` to a short straight block that ends in a
    /// conditional branch (a loop's latch, typically) gets a copy of that
    /// block instead of the jump, then a jump to where the block falls
    /// through. Saves a taken jump per iteration. Only in uncounted code
    /// (a copy has no block count) without entry thunks, and never inside
    /// a copy.
    pub(super) fn duplicate_block(&mut self, t: usize, next: usize) -> Result<bool, JitError> {
        const MAX: usize = 6;
        if self.mode.count || self.thunks.is_some() || self.in_copy {
            return Ok(false);
        }
        let len = self.ops.len() - 1;
        let mut end = None;
        let mut i = t;
        while i < len && i < t + MAX {
            let o = self.ops[i];
            if i > t && self.target[i] {
                return Ok(false);
            }
            let class = o.code & 7;
            if matches!(class, BPF_JMP | BPF_JMP32) {
                if is_jump(o.code) && o.code & 0xf0 != BPF_JA {
                    end = Some(i);
                }
                break;
            }
            if !matches!(class, BPF_ALU | BPF_ALU64) {
                return Ok(false);
            }
            i += 1;
        }
        let Some(end) = end else {
            return Ok(false);
        };
        self.in_copy = true;
        self.invert_at = Some((end, next));
        let mut pc = t;
        let mut result = Ok(());
        while pc <= end {
            match self.insn_body(pc) {
                Ok(next) => pc = next,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.in_copy = false;
        self.invert_at = None;
        result?;
        if pc != usize::MAX {
            // Continue where the original block falls through.
            let l = self.labels[pc.min(len)];
            dynasm!(self.a ; jmp =>l);
        }
        Ok(true)
    }

    pub(super) fn call(&mut self, o: Op, pc: usize) {
        match o.src {
            0 => {
                let info = pc as u64 | (self.rem[pc] as u64) << 32;
                let helper = self.helper;
                dynasm!(self.a
                    ; mov r10, QWORD info as i64
                    ; mov r11d, o.imm as i32
                    ; call =>helper
                );
            }
            BPF_PSEUDO_CALL => {
                let t = self.labels[o.off as usize];
                self.local_call(pc, |e| dynasm!(e.a ; call =>t));
            }
            _ => self.error_jump(err::KFUNC, pc),
        }
    }

    /// A bpf-to-bpf call: depth check, save r6..r9 and r10, new frame.
    pub(super) fn local_call(&mut self, pc: usize, call: impl FnOnce(&mut Self)) {
        let depth = self.cold_error(err::DEPTH, pc);
        dynasm!(self.a
            ; sub QWORD [r12 + off::DEPTH_LEFT], 1
            ; jb =>depth
            ; push rbx
            ; push r13
            ; push r14
            ; push r15
            ; push rbp
            ; sub rbp, 512
            ; sub QWORD [r12 + off::STACK_LO], 512
            ; mov r10, [r12 + off::STACK_LO]
            ; cmp r10, [r12 + off::MIN_LO]
            ; jae >deeper
            ; mov [r12 + off::MIN_LO], r10
            ; deeper:
        );
        call(self);
        dynasm!(self.a
            ; add QWORD [r12 + off::STACK_LO], 512
            ; pop rbp
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop rbx
            ; add QWORD [r12 + off::DEPTH_LEFT], 1
        );
    }

    /// `callx rD`: a function address calls the subprogram through its
    /// entry thunk; any other value is a helper id.
    pub(super) fn callx(&mut self, d: u8, pc: usize) {
        let len = (self.ops.len() - 1) as i32;
        let as_helper = self.a.new_dynamic_label();
        let done = self.a.new_dynamic_label();
        let thunks = self.thunks.expect("thunks exist when callx is present");
        dynasm!(self.a
            ; mov r11, Rq(d)
            ; mov r10, r11
            ; shr r10, 32
            ; cmp r10d, (FUNC_ADDR_TAG >> 32) as i32
            ; jne =>as_helper
            ; mov r11d, r11d
            ; cmp r11, len
            ; jae =>as_helper
            ; shl r11, 4
            ; lea r10, [=>thunks]
            ; add r11, r10
        );
        self.local_call(pc, |e| dynasm!(e.a ; call r11));
        let info = (pc as u64 | (self.rem[pc] as u64) << 32 | CALLX_FLAG) as i64;
        let helper = self.helper;
        dynasm!(self.a
            ; jmp =>done
            ; =>as_helper
            ; mov r11, Rq(d)
            ; mov r10, QWORD info
            ; call =>helper
            ; =>done
        );
    }
}
