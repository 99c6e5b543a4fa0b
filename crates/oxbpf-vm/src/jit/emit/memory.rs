//! Memory: loads and stores (plain, checked against the run's regions or
//! stack frames, context operands), the addressing and joined-byte-load
//! idioms, `lea`, atomics and the legacy packet loads.

#![allow(clippy::useless_conversion)]

use super::*;

impl Emitter<'_> {
    /// Address operand for an access of `size` bytes at `base + off`: in
    /// checked mode the address is computed into r11 and checked first.
    pub(super) fn mem(
        &mut self,
        base: u8,
        disp: i32,
        size: u64,
        write: bool,
        pc: usize,
    ) -> (u8, i32) {
        if !self.mode.checked {
            return (REG[base as usize], disp);
        }
        self.checked_address(REG[base as usize], None, disp, size, write, pc, base == 10)
    }

    /// Checked code: the address `[b + index + disp]` into r11, checked
    /// for an access of `size` bytes by the instruction at `pc`; returns
    /// the operand `[r11]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn checked_address(
        &mut self,
        b: u8,
        index: Option<u8>,
        disp: i32,
        size: u64,
        write: bool,
        pc: usize,
        stack_first: bool,
    ) -> (u8, i32) {
        let slow = self.a.new_dynamic_label();
        let back = self.a.new_dynamic_label();
        // Accesses through r10 are checked against the stack first, others
        // against the region of the last access of their kind; the other
        // range and then the full region list are tried out of line.
        self.lea(S1, b, index, disp);
        if stack_first {
            self.stack_range(size, slow);
        } else {
            self.cached_range(size, write, slow);
        }
        dynasm!(self.a ; =>back);
        let info = (pc as u64) << 8 | size << 1 | write as u64;
        self.cold.push(Cold::Check {
            at: slow,
            back,
            info,
            stack_first,
        });
        (S1, 0)
    }

    /// Jumps to `miss` unless [r11, r11 + size) is in the current frames.
    pub(super) fn stack_range(&mut self, size: u64, miss: DynamicLabel) {
        // cmp r11, [r12 + STACK_LO]; mov r10, [r12 + STACK_HI] (short
        // displacements: the context's hot fields come first).
        self.ctx_op(&[0x3b], S1, off::STACK_LO);
        dynasm!(self.a ; jb =>miss);
        self.ctx_op(&[0x8b], 10, off::STACK_HI);
        dynasm!(self.a
            ; sub r10, r11
            ; jb =>miss
            ; cmp r10, size as i32
            ; jb =>miss
        );
    }

    /// `op reg, [r12 + off]` (64-bit) on a context field.
    pub(super) fn ctx_op(&mut self, opcode: &[u8], reg: u8, off: i32) {
        let w = Form {
            w: true,
            ..Form::default()
        };
        let m = Mem {
            base: 12,
            index: None,
            disp: off,
        };
        self.mem_insn(w, opcode, reg, m);
    }

    /// Jumps to `miss` unless [r11, r11 + size) is in the cached region
    /// for reads (or writes). Region starts are host addresses far above
    /// 0, so `addr - start + size` cannot wrap.
    pub(super) fn cached_range(&mut self, size: u64, write: bool, miss: DynamicLabel) {
        let (lo, len) = if write {
            (off::WCACHE_LO, off::WCACHE_LEN)
        } else {
            (off::RCACHE_LO, off::RCACHE_LEN)
        };
        // mov r10, r11; sub r10, [r12 + lo]; jb; add r10, size;
        // cmp r10, [r12 + len]; ja
        dynasm!(self.a ; mov r10, r11);
        self.ctx_op(&[0x2b], 10, lo);
        dynasm!(self.a
            ; jb =>miss
            ; add r10, BYTE size as i8
        );
        self.ctx_op(&[0x3b], 10, len);
        dynasm!(self.a ; ja =>miss);
    }

    /// `rD = rS; rD += rX` (or `+= K`) becomes one `lea`; when the next
    /// instruction loads or stores through `rD`, it addresses
    /// `[rS + rX + off]` directly (trusted code only), and a load into rD
    /// itself makes the `lea` unnecessary.
    pub(super) fn address_idiom(&mut self, pc: usize) -> Option<usize> {
        let (o, n) = (self.ops[pc], *self.ops.get(pc + 1)?);
        if o.code != 0xbf || o.off != 0 || n.dst != o.dst || !self.plain_next(pc + 1) {
            return None;
        }
        let (dv, sv) = (o.dst as usize % 11, o.src as usize % 11);
        let (d, s) = (REG[dv], REG[sv]);
        // The addend: a register (rD itself reads as rS) or a constant.
        let (index, disp) = match n.code {
            0x0f => {
                let x = n.src as usize % 11;
                (Some(if x == dv { s } else { REG[x] }), 0i64)
            }
            0x07 => (None, n.imm),
            _ => return None,
        };
        // Checked code takes only a load into rD itself (rD is then never
        // needed, even when the load faults: a fault ends the run).
        let checked = self.mode.checked;
        let m = self.ops.get(pc + 2).copied().filter(|m| {
            self.plain_next(pc + 2)
                && dv != sv
                && index != Some(d)
                && ((m.code & 7 == BPF_LDX && m.src == o.dst && (!checked || m.dst == o.dst))
                    || (!checked && matches!(m.code, 0x63 | 0x6b | 0x73 | 0x7b) && m.dst == o.dst))
                && (disp + m.off as i64) == (disp + m.off as i64) as i32 as i64
        });
        let loads_into_d = m.is_some_and(|m| m.code & 7 == BPF_LDX && m.dst == o.dst);
        // rD = rS; rD += rX; rD += K → lea rD, [rS + rX + K].
        if let (Some(i), None) = (index, m)
            && let Some(k) = self.ops.get(pc + 2).copied()
            && k.code == ADD64_K
            && k.dst == o.dst
            && self.plain_next(pc + 2)
        {
            self.lea(d, s, Some(i), k.imm as i32);
            return Some(pc + 3);
        }
        // The address register itself is only needed if read later (or
        // stored by the access itself).
        let unused = m.is_some_and(|m| {
            !(m.code & 7 == BPF_STX && m.src == o.dst) && self.dead_after(o.dst, pc + 2)
        });
        if !(loads_into_d || unused) {
            self.lea(d, s, index, disp as i32);
        }
        let Some(m) = m else {
            return Some(pc + 2);
        };
        let disp = (disp + m.off as i64) as i32;
        let r = REG[if m.code & 7 == BPF_LDX { m.dst } else { m.src } as usize % 11];
        if checked {
            let size = ldst_size(m.code);
            let (b, d0) = self.checked_address(s, index, disp, size, false, pc + 2, sv == 10);
            self.load_store(m.code, r, b, None, d0);
        } else {
            self.load_store(m.code, r, s, index, disp);
        }
        Some(pc + 3)
    }

    /// Two adjacent byte loads joined into a 16-bit value, as clang writes
    /// a big-endian field read through a byte pointer (`p[0] << 8 | p[1]`)
    /// or a little-endian one:
    /// `x = *(u8 *)(b + j); y = *(u8 *)(b + k); s <<= 8; s |= o` with
    /// {s, o} = {x, y} and the offsets adjacent. Becomes one 16-bit load
    /// (and `rol` for big-endian); the other byte is loaded too only if its
    /// register is read later. Trusted code only (in checked code each load
    /// must fault at its own pc).
    pub(super) fn byte_pair_idiom(&mut self, pc: usize) -> Option<usize> {
        if self.mode.checked || !(1..4).all(|i| self.plain_next(pc + i)) {
            return None;
        }
        let [l1, l2, sh, or] = *self.ops.get(pc..pc + 4)? else {
            return None;
        };
        let pair = l1.code == LDXB
            && l2.code == LDXB
            && l1.src == l2.src
            && l1.dst != l1.src
            && l1.dst != l2.dst
            && matches!(sh.code, 0x64 | 0x67)
            && sh.imm == 8
            && matches!(or.code, 0x4c | 0x4f)
            && or.dst == sh.dst
            && (sh.dst == l1.dst || sh.dst == l2.dst);
        if !pair {
            return None;
        }
        let (hi, lo) = if sh.dst == l1.dst { (l1, l2) } else { (l2, l1) };
        if or.src != lo.dst {
            return None;
        }
        let (hi_off, lo_off) = (hi.off as i64, lo.off as i64);
        let big_endian = lo_off == hi_off + 1;
        if !big_endian && hi_off != lo_off + 1 {
            return None;
        }
        let b = REG[l1.src as usize % 11];
        let (s, o) = (REG[hi.dst as usize % 11], REG[lo.dst as usize % 11]);
        let word = |e: &mut Self| {
            e.load_store(0x69, s, b, None, hi_off.min(lo_off) as i32);
            if big_endian {
                dynasm!(e.a ; rol Rw(s), 8);
            }
        };
        // The load that overwrites the base goes last.
        if self.dead_after(lo.dst, pc + 3) {
            word(self);
        } else if o == b {
            word(self);
            self.load_store(0x71, o, b, None, lo.off);
        } else {
            self.load_store(0x71, o, b, None, lo.off);
            word(self);
        }
        Some(pc + 4)
    }

    /// Emits an instruction with a memory operand in its shortest
    /// encoding (see [`super::encode`]).
    pub(super) fn mem_insn(&mut self, form: Form, opcode: &[u8], reg: u8, m: Mem) {
        self.a
            .extend(encode::mem_insn(form, opcode, reg, m).as_slice());
    }

    /// A register load (`LDX`, any width, zero- or sign-extending) or store
    /// (`STX`) of `r` at `[base + index + disp]`.
    /// Returns false for any other opcode.
    pub(super) fn load_store(
        &mut self,
        code: u8,
        r: u8,
        base: u8,
        index: Option<u8>,
        disp: i32,
    ) -> bool {
        let m = Mem { base, index, disp };
        let (d32, d64) = (
            Form::default(),
            Form {
                w: true,
                ..Form::default()
            },
        );
        let (form, opcode): (Form, &[u8]) = match code {
            0x61 => (d32, &[0x8b]),
            0x69 => (d32, &[0x0f, 0xb7]),
            0x71 => (d32, &[0x0f, 0xb6]),
            0x79 => (d64, &[0x8b]),
            0x81 => (d64, &[0x63]),
            0x89 => (d64, &[0x0f, 0xbf]),
            0x91 => (d64, &[0x0f, 0xbe]),
            0x63 => (d32, &[0x89]),
            0x6b => (Form { p66: true, ..d32 }, &[0x89]),
            0x73 => (
                Form {
                    byte_reg: true,
                    ..d32
                },
                &[0x88],
            ),
            0x7b => (d64, &[0x89]),
            _ => return false,
        };
        self.mem_insn(form, opcode, r, m);
        true
    }

    /// `lea d, [base + index + disp]` (64-bit).
    pub(super) fn lea(&mut self, d: u8, base: u8, index: Option<u8>, disp: i32) {
        let w = Form {
            w: true,
            ..Form::default()
        };
        self.mem_insn(w, &[0x8d], d, Mem { base, index, disp });
    }

    pub(super) fn atomic(&mut self, o: Op, _d: u8, s: u8, pc: usize) -> Result<(), JitError> {
        let w = o.code == ATOMIC_DW;
        let size = if w { 8 } else { 4 };
        let (b, disp) = self.mem(o.dst, o.off, size, true, pc);
        let code = o.imm as i32;
        let fetch = code & BPF_FETCH != 0;
        match (code & !BPF_FETCH, fetch) {
            (0x00, false) => match w {
                true => dynasm!(self.a ; lock add [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock add [Rq(b) + disp], Rd(s)),
            },
            (0x00, true) => match w {
                true => dynasm!(self.a ; lock xadd [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock xadd [Rq(b) + disp], Rd(s)),
            },
            (0x40, false) => match w {
                true => dynasm!(self.a ; lock or [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock or [Rq(b) + disp], Rd(s)),
            },
            (0x50, false) => match w {
                true => dynasm!(self.a ; lock and [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock and [Rq(b) + disp], Rd(s)),
            },
            (0xa0, false) => match w {
                true => dynasm!(self.a ; lock xor [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock xor [Rq(b) + disp], Rd(s)),
            },
            (0x40 | 0x50 | 0xa0, true) => {
                // Fetching or/and/xor: a compare-exchange loop on rax.
                let again = self.a.new_dynamic_label();
                dynasm!(self.a
                    ; lea r11, [Rq(b) + disp]
                    ; mov [r12 + off::SAVE_SRC], Rq(s)
                    ; mov [r12 + off::SAVE_RAX], rax
                );
                if w {
                    dynasm!(self.a ; mov rax, [r11] ; =>again ; mov r10, rax);
                    match code & !BPF_FETCH {
                        0x40 => dynasm!(self.a ; or r10, [r12 + off::SAVE_SRC]),
                        0x50 => dynasm!(self.a ; and r10, [r12 + off::SAVE_SRC]),
                        _ => dynasm!(self.a ; xor r10, [r12 + off::SAVE_SRC]),
                    }
                    dynasm!(self.a ; lock cmpxchg [r11], r10 ; jne =>again ; mov Rq(s), rax);
                } else {
                    dynasm!(self.a ; mov eax, [r11] ; =>again ; mov r10d, eax);
                    match code & !BPF_FETCH {
                        0x40 => dynasm!(self.a ; or r10d, [r12 + off::SAVE_SRC]),
                        0x50 => dynasm!(self.a ; and r10d, [r12 + off::SAVE_SRC]),
                        _ => dynasm!(self.a ; xor r10d, [r12 + off::SAVE_SRC]),
                    }
                    dynasm!(self.a ; lock cmpxchg [r11], r10d ; jne =>again ; mov Rd(s), eax);
                }
                if s != RAX {
                    dynasm!(self.a ; mov rax, [r12 + off::SAVE_RAX]);
                }
            }
            (0xe0, true) => match w {
                true => dynasm!(self.a ; xchg [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; xchg [Rq(b) + disp], Rd(s)),
            },
            (0xf0, true) => match w {
                true => dynasm!(self.a ; lock cmpxchg [Rq(b) + disp], Rq(s)),
                false => dynasm!(self.a ; lock cmpxchg [Rq(b) + disp], Rd(s) ; mov eax, eax),
            },
            _ => return Err(bad(pc, o)),
        }
        Ok(())
    }

    /// `LD_ABS`/`LD_IND`: big-endian load from the packet; out of bounds
    /// ends the program with r0 = 0.
    pub(super) fn legacy_load(&mut self, o: Op, s: u8, pc: usize) {
        let size: i32 = match o.code & 0x18 {
            BPF_W => 4,
            BPF_H => 2,
            _ => 1,
        };
        let nopkt = self.cold_error(err::NO_PACKET, pc);
        let end = self.a.new_dynamic_label();
        self.cold.push(Cold::PacketEnd {
            at: end,
            rem: self.rem[pc],
        });
        dynasm!(self.a
            ; cmp QWORD [r12 + off::HAS_PKT], 0
            ; je =>nopkt
        );
        if o.code & 0xe0 == BPF_IND {
            dynasm!(self.a
                ; mov r11d, Rd(s)
                ; add r11d, o.imm as i32
                ; movsxd r11, r11d
            );
        } else {
            dynasm!(self.a ; mov r11, o.imm as i32);
        }
        dynasm!(self.a
            ; test r11, r11
            ; js =>end
            ; lea r10, [r11 + size]
            ; cmp r10, [r12 + off::PKT_LEN]
            ; ja =>end
            ; add r11, [r12 + off::PKT_DATA]
        );
        match size {
            4 => dynasm!(self.a ; mov eax, [r11] ; bswap eax),
            2 => dynasm!(self.a ; movzx eax, WORD [r11] ; rol ax, 8),
            _ => dynasm!(self.a ; movzx eax, BYTE [r11]),
        }
    }
}
