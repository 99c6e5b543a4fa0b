//! Arithmetic: scalars through their tnums and ranges, and the pointer
//! arithmetic the kernel allows (constant and bounded variable offsets).

use super::*;

impl Verifier<'_> {
    pub(super) fn alu(
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
                // A 32-bit difference involving a pointer is a meaningless
                // scalar the kernel allows when pointer leaks are
                // (adjust_ptr_min_max_vals: BPF_SUB && allow_ptr_leaks,
                // which root has), as a 32-bit move of a pointer is.
                if op == A::Sub && self.opts.privileged {
                    // Unknown in all 64 bits, as the kernel marks it.
                    path.state.cur_mut().regs[d] = Reg::unknown();
                    return Ok(());
                }
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

    pub(super) fn ptr_alu(
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
                // A context pointer may move by a variable amount, as in the
                // kernel (`(void *)ctx + off` handed to bpf_probe_read): it
                // can then neither be dereferenced nor passed as the context
                // (memory and helper checks refuse a modified ctx).
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
}

pub(super) fn unreachable_mov() -> Scalar {
    // `Mov` is handled before the scalar table; keep the match exhaustive
    // without a panic path.
    Scalar::UNKNOWN
}
