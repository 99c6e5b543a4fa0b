//! What a conditional jump teaches on each of its two arms: scalar bounds,
//! null checks, and packet ranges proven against `data_end`.

use oxbpf_isa::JmpCond;

use crate::scalar::Scalar;
use crate::state::{Kind, Reg, State};

/// Refines `taken` and `not` (copies of the state before the jump) for
/// `dst cond src`; returns whether each arm is feasible.
#[allow(clippy::too_many_arguments)]
pub fn refine(
    taken: &mut State,
    not: &mut State,
    wide: bool,
    cond: JmpCond,
    d: usize,
    dreg: Reg,
    sidx: Option<usize>,
    sreg: Reg,
    privileged: bool,
    maps: &[crate::MapInfo],
) -> Result<(bool, bool), String> {
    let dk = dreg.kind;
    let sk = sreg.kind;
    if dk == Kind::Scalar && sk == Kind::Scalar {
        return Ok(scalars(taken, not, wide, cond, d, dreg, sidx, sreg));
    }
    if !wide {
        return Err(format!("R{d} 32-bit pointer comparison prohibited"));
    }
    // Null checks: ptr_or_null ==/!= 0.
    let zero = |r: &Reg| r.kind == Kind::Scalar && r.var.konst() == Some(0);
    if (dk.is_or_null() && zero(&sreg)) || (sk.is_or_null() && zero(&dreg)) {
        let p = if dk.is_or_null() { dreg } else { sreg };
        let (null_st, nonnull_st) = match cond {
            JmpCond::Eq => (taken, not),
            JmpCond::Ne => (not, taken),
            _ => return Ok((true, true)),
        };
        // A NULL result holds no reference: nothing to release on that arm.
        // (Only the acquired pointer itself: a NULL view of a socket, such
        // as `bpf_tcp_sock`'s result, leaves the socket's reference held.)
        if p.ref_obj_id != 0 && p.ref_obj_id == p.id {
            null_st.refs.retain(|r| r.id != p.ref_obj_id);
        }
        mark_null(null_st, p.id, true, maps);
        mark_null(nonnull_st, p.id, false, maps);
        return Ok((true, true));
    }
    // A valid pointer is never NULL — except a typed kernel pointer read
    // out of a struct, which may be (its reads are fault-tolerant): only
    // a trusted one is known not to be (the kernel's `reg_not_null`).
    let not_null = |k: Kind| {
        k.is_pointer()
            && !k.is_or_null()
            && match k {
                Kind::Btf { flags, .. } => {
                    flags & crate::state::btf_flag::TRUSTED != 0
                        && flags & crate::state::btf_flag::UNTRUSTED == 0
                }
                _ => true,
            }
    };
    if (not_null(dk) && zero(&sreg)) || (not_null(sk) && zero(&dreg)) {
        return Ok(match cond {
            JmpCond::Eq => (false, true),
            JmpCond::Ne => (true, false),
            _ => (true, true),
        });
    }
    // Packet bounds: pkt vs pkt_end, pkt_meta vs pkt.
    let is_data_end = |p: Kind, e: &Reg| match p {
        Kind::Packet => e.kind == Kind::PacketEnd,
        Kind::PacketMeta => e.kind == Kind::Packet && e.off == 0 && e.var.konst() == Some(0),
        _ => false,
    };
    let (p, swapped) = if matches!(dk, Kind::Packet | Kind::PacketMeta) && is_data_end(dk, &sreg) {
        (dreg, false)
    } else if matches!(sk, Kind::Packet | Kind::PacketMeta) && is_data_end(sk, &dreg) {
        (sreg, true)
    } else {
        if !privileged && dk.is_pointer() && sk.is_pointer() && dk != sk {
            return Err(format!("R{d} pointer comparison prohibited"));
        }
        return Ok((true, true));
    };
    // Normalize to `P op E`.
    let op = if swapped {
        match cond {
            JmpCond::Gt => JmpCond::Lt,
            JmpCond::Ge => JmpCond::Le,
            JmpCond::Lt => JmpCond::Gt,
            JmpCond::Le => JmpCond::Ge,
            c => c,
        }
    } else {
        cond
    };
    // Which arm learns P <= E (range = off) or P < E (range = off + 1).
    let (arm, extra) = match op {
        JmpCond::Gt => (Some(false), 0), // not taken: P <= E
        JmpCond::Ge => (Some(false), 1), // not taken: P < E
        JmpCond::Lt => (Some(true), 1),  // taken: P < E
        JmpCond::Le => (Some(true), 0),  // taken: P <= E
        _ => (None, 0),
    };
    if p.var.smin < 0 {
        return Ok((true, true));
    }
    if let Some(on_taken) = arm {
        let st = if on_taken { taken } else { not };
        let new_range = p.off + extra;
        let (kind, id) = (p.kind, p.id);
        st.for_each_reg(|r| {
            if r.kind == kind && r.id == id {
                r.range = r.range.max(new_range);
            }
        });
    }
    Ok((true, true))
}

fn mark_null(st: &mut State, id: u32, null: bool, maps: &[crate::MapInfo]) {
    // A map value keeps its id where the value holds a spin lock: unlock
    // must go through the same lookup's pointer as lock (as the kernel).
    let keep_id = |k: Kind| match k {
        Kind::MapValueOrNull { map } => maps
            .get(map as usize)
            .is_some_and(|m| m.spin_lock.is_some()),
        _ => false,
    };
    st.for_each_reg(|r| {
        if r.kind.is_or_null() && r.id == id {
            *r = if null {
                Reg::konst(0)
            } else {
                Reg {
                    kind: match r.kind {
                        Kind::MapValueOrNull { map } => Kind::MapValue { map },
                        Kind::MapPtrOrNull { map } => Kind::MapPtr { map },
                        Kind::MemOrNull {
                            size,
                            writable,
                            pkt,
                        } => Kind::Mem {
                            size,
                            writable,
                            pkt,
                        },
                        Kind::SockOrNull(k) => Kind::Sock(k),
                        Kind::BtfOrNull { id, flags } => Kind::Btf { id, flags },
                        k => k,
                    },
                    id: if keep_id(r.kind) { r.id } else { 0 },
                    ..*r
                }
            };
        }
    });
}

/// Scalar comparisons: bounds on both arms, for both operands.
#[allow(clippy::too_many_arguments)]
fn scalars(
    taken: &mut State,
    not: &mut State,
    wide: bool,
    cond: JmpCond,
    d: usize,
    dreg: Reg,
    sidx: Option<usize>,
    sreg: Reg,
) -> (bool, bool) {
    let mut feasible = [true, true];
    for (arm, st) in [(true, &mut *taken), (false, &mut *not)] {
        let c = if arm { cond } else { negate(cond) };
        let (mut a, mut b) = (dreg.var, sreg.var);
        let ok = if wide {
            cmp64(&mut a, &mut b, c)
        } else {
            cmp32(&mut a, &mut b, c)
        };
        if !ok || a.is_empty() || b.is_empty() {
            feasible[arm as usize ^ 1] = false;
            continue;
        }
        set_scalar(st, d, dreg.id, a);
        if let Some(s) = sidx {
            set_scalar(st, s, sreg.id, b);
        }
        // A lower bound on `pkt_end - pkt` is a proven packet range.
        for (r, v) in [(dreg, a), (sreg, b)] {
            if let Some((pid, poff)) = r.plen
                && v.umin > 0
                && v.umin < 1 << 16
            {
                let new_range = poff + v.umin as i64;
                st.for_each_reg(|x| {
                    if x.kind == Kind::Packet && x.id == pid {
                        x.range = x.range.max(new_range);
                    }
                });
            }
        }
    }
    (feasible[0], feasible[1])
}

/// Writes a refined scalar to register `r` and every linked copy.
fn set_scalar(st: &mut State, r: usize, id: u32, v: Scalar) {
    if id != 0 {
        st.for_each_reg(|x| {
            if x.kind == Kind::Scalar && x.id == id {
                x.var = v;
            }
        });
    }
    st.cur_mut().regs[r].var = v;
}

fn negate(c: JmpCond) -> JmpCond {
    use JmpCond::*;
    match c {
        Eq => Ne,
        Ne => Eq,
        Gt => Le,
        Ge => Lt,
        Lt => Ge,
        Le => Gt,
        Sgt => Sle,
        Sge => Slt,
        Slt => Sge,
        Sle => Sgt,
        // `Set` negated is "no common bit", handled as its own case.
        Set => Set,
    }
}

/// Refines `a cond b` in 64 bits; false when it cannot hold.
fn cmp64(a: &mut Scalar, b: &mut Scalar, c: JmpCond) -> bool {
    use JmpCond::*;
    match c {
        Eq => {
            let lo = a.umin.max(b.umin);
            let hi = a.umax.min(b.umax);
            let slo = a.smin.max(b.smin);
            let shi = a.smax.min(b.smax);
            if lo > hi || slo > shi {
                return false;
            }
            let t = a.t.intersect(b.t);
            if (a.t.value ^ b.t.value) & !a.t.mask & !b.t.mask != 0 {
                return false;
            }
            for x in [&mut *a, &mut *b] {
                x.umin = lo;
                x.umax = hi;
                x.smin = slo;
                x.smax = shi;
                x.t = t;
                x.sync();
            }
            true
        }
        Ne => {
            if let (Some(x), Some(y)) = (a.konst(), b.konst()) {
                return x != y;
            }
            if let Some(y) = b.konst() {
                if a.umin == y {
                    a.umin += 1;
                }
                if a.umax == y && y > 0 {
                    a.umax -= 1;
                }
                a.sync();
            }
            true
        }
        Gt => {
            if a.umax <= b.umin {
                return false;
            }
            a.umin = a.umin.max(b.umin.saturating_add(1));
            b.umax = b.umax.min(a.umax.saturating_sub(1));
            a.sync();
            b.sync();
            true
        }
        Ge => {
            if a.umax < b.umin {
                return false;
            }
            a.umin = a.umin.max(b.umin);
            b.umax = b.umax.min(a.umax);
            a.sync();
            b.sync();
            true
        }
        Lt => cmp64(b, a, Gt),
        Le => cmp64(b, a, Ge),
        Sgt => {
            if a.smax <= b.smin {
                return false;
            }
            a.smin = a.smin.max(b.smin.saturating_add(1));
            b.smax = b.smax.min(a.smax.saturating_sub(1));
            a.sync();
            b.sync();
            true
        }
        Sge => {
            if a.smax < b.smin {
                return false;
            }
            a.smin = a.smin.max(b.smin);
            b.smax = b.smax.min(a.smax);
            a.sync();
            b.sync();
            true
        }
        Slt => cmp64(b, a, Sgt),
        Sle => cmp64(b, a, Sge),
        Set => true,
    }
}

/// 32-bit comparisons refine the 32-bit views only.
fn cmp32(a: &mut Scalar, b: &mut Scalar, c: JmpCond) -> bool {
    use JmpCond::*;
    let (au, bu) = ((a.u32min, a.u32max), (b.u32min, b.u32max));
    let (as_, bs) = ((a.s32min, a.s32max), (b.s32min, b.s32max));
    let ok = match c {
        Eq => {
            let lo = au.0.max(bu.0);
            let hi = au.1.min(bu.1);
            if lo > hi {
                return false;
            }
            a.u32min = lo;
            a.u32max = hi;
            b.u32min = lo;
            b.u32max = hi;
            true
        }
        Ne => match (a.konst(), b.konst()) {
            (Some(x), Some(y)) => x as u32 != y as u32,
            _ => true,
        },
        Gt => {
            if au.1 <= bu.0 {
                return false;
            }
            a.u32min = au.0.max(bu.0.saturating_add(1));
            b.u32max = bu.1.min(au.1.saturating_sub(1));
            true
        }
        Ge => {
            if au.1 < bu.0 {
                return false;
            }
            a.u32min = au.0.max(bu.0);
            b.u32max = bu.1.min(au.1);
            true
        }
        Lt => return cmp32(b, a, Gt),
        Le => return cmp32(b, a, Ge),
        Sgt => {
            if as_.1 <= bs.0 {
                return false;
            }
            a.s32min = as_.0.max(bs.0.saturating_add(1));
            b.s32max = bs.1.min(as_.1.saturating_sub(1));
            true
        }
        Sge => {
            if as_.1 < bs.0 {
                return false;
            }
            a.s32min = as_.0.max(bs.0);
            b.s32max = bs.1.min(as_.1);
            true
        }
        Slt => return cmp32(b, a, Sgt),
        Sle => return cmp32(b, a, Sge),
        Set => true,
    };
    a.sync();
    b.sync();
    ok
}
