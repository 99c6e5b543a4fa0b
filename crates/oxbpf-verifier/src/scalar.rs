// The abstract operations are named after the instructions they model
// (add, sub, mul); they are over-approximations, not the std operators.
#![allow(clippy::should_implement_trait)]

//! Abstract scalars: known bits (tnum) plus signed and unsigned 64- and
//! 32-bit ranges, kept consistent with each other, as the kernel tracks
//! them (kernel/bpf/tnum.c and the `__reg_*_bounds` functions).
//!
//! Soundness rule: every operation returns a value that contains every
//! concrete result of the operation on concrete members of its inputs.

use std::fmt;

/// Known bits: bit i is known when `mask` bit i is 0, and then equals `value` bit i.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

impl Tnum {
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    pub const fn konst(v: u64) -> Tnum {
        Tnum { value: v, mask: 0 }
    }

    /// The tnum covering [min, max].
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum {
            value: min & !delta,
            mask: delta,
        }
    }

    pub fn is_const(self) -> bool {
        self.mask == 0
    }

    pub fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: sv & !mu,
            mask: mu,
        }
    }

    pub fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum {
            value: dv & !mu,
            mask: mu,
        }
    }

    pub fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum {
            value: v,
            mask: alpha & beta & !v,
        }
    }

    pub fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v,
            mask: mu & !v,
        }
    }

    pub fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum {
            value: v & !mu,
            mask: mu,
        }
    }

    pub fn lsh(self, s: u32) -> Tnum {
        Tnum {
            value: self.value << s,
            mask: self.mask << s,
        }
    }

    pub fn rsh(self, s: u32) -> Tnum {
        Tnum {
            value: self.value >> s,
            mask: self.mask >> s,
        }
    }

    pub fn arsh(self, s: u32, bits: u32) -> Tnum {
        if bits == 32 {
            Tnum {
                value: ((self.value as u32 as i32) >> s) as u32 as u64,
                mask: ((self.mask as u32 as i32) >> s) as u32 as u64,
            }
        } else {
            Tnum {
                value: ((self.value as i64) >> s) as u64,
                mask: ((self.mask as i64) >> s) as u64,
            }
        }
    }

    /// Multiplication, by long multiplication over the unknown bits.
    pub fn mul(self, b: Tnum) -> Tnum {
        let acc_v = self.value.wrapping_mul(b.value);
        let mut acc_m = Tnum::konst(0);
        let (mut a, mut bb) = (self, b);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc_m = acc_m.add(Tnum {
                    value: 0,
                    mask: bb.mask,
                });
            } else if a.mask & 1 != 0 {
                acc_m = acc_m.add(Tnum {
                    value: 0,
                    mask: bb.value | bb.mask,
                });
            }
            a = a.rsh(1);
            bb = bb.lsh(1);
        }
        Tnum::konst(acc_v).add(acc_m)
    }

    /// Low 32 bits, upper bits known zero.
    pub fn subreg(self) -> Tnum {
        Tnum {
            value: self.value as u32 as u64,
            mask: self.mask as u32 as u64,
        }
    }

    pub fn intersect(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Tnum {
            value: v & !mu,
            mask: mu,
        }
    }

    /// Whether every value of `b` is a value of `self`.
    pub fn contains(self, b: Tnum) -> bool {
        if b.mask & !self.mask != 0 {
            return false;
        }
        b.value & !self.mask == self.value
    }

    pub fn umin(self) -> u64 {
        self.value
    }
    pub fn umax(self) -> u64 {
        self.value | self.mask
    }
}

/// An abstract 64-bit scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scalar {
    pub t: Tnum,
    pub smin: i64,
    pub smax: i64,
    pub umin: u64,
    pub umax: u64,
    pub s32min: i32,
    pub s32max: i32,
    pub u32min: u32,
    pub u32max: u32,
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = self.konst() {
            return write!(f, "{}", c as i64);
        }
        let mut parts = Vec::new();
        if self.smin != i64::MIN {
            parts.push(format!("smin={}", self.smin));
        }
        if self.smax != i64::MAX {
            parts.push(format!("smax={}", self.smax));
        }
        if self.umin != 0 {
            parts.push(format!("umin={}", self.umin));
        }
        if self.umax != u64::MAX {
            parts.push(format!("umax={}", self.umax));
        }
        if self.t.mask != u64::MAX {
            parts.push(format!("var_off=({:#x}; {:#x})", self.t.value, self.t.mask));
        }
        if parts.is_empty() {
            f.write_str("unknown")
        } else {
            write!(f, "{}", parts.join(","))
        }
    }
}

impl Scalar {
    pub const UNKNOWN: Scalar = Scalar {
        t: Tnum::UNKNOWN,
        smin: i64::MIN,
        smax: i64::MAX,
        umin: 0,
        umax: u64::MAX,
        s32min: i32::MIN,
        s32max: i32::MAX,
        u32min: 0,
        u32max: u32::MAX,
    };

    pub fn konst(&self) -> Option<u64> {
        self.t.is_const().then_some(self.t.value)
    }

    pub fn from_const(v: u64) -> Scalar {
        Scalar {
            t: Tnum::konst(v),
            smin: v as i64,
            smax: v as i64,
            umin: v,
            umax: v,
            s32min: v as i32,
            s32max: v as i32,
            u32min: v as u32,
            u32max: v as u32,
        }
    }

    /// Unsigned range [lo, hi].
    pub fn urange(lo: u64, hi: u64) -> Scalar {
        let mut s = Scalar::UNKNOWN;
        s.umin = lo;
        s.umax = hi;
        s.sync();
        s
    }

    /// Tightens all views from each other (the kernel's
    /// `reg_bounds_sync`); call after any change. Idempotent after two rounds.
    pub fn sync(&mut self) {
        for _ in 0..2 {
            // tnum -> ranges
            self.umin = self.umin.max(self.t.umin());
            self.umax = self.umax.min(self.t.umax());
            let t32 = self.t.subreg();
            self.u32min = self.u32min.max(t32.umin() as u32);
            self.u32max = self.u32max.min(t32.umax() as u32);
            // Signed bounds from the tnum when the sign bit is known: all
            // values then sit on one side of zero, in unsigned order.
            if self.t.mask & (1 << 63) == 0 {
                self.smin = self.smin.max(self.t.umin() as i64);
                self.smax = self.smax.min(self.t.umax() as i64);
            }
            // 32-bit: an unsigned range not crossing the sign boundary is
            // also the signed range, and vice versa.
            if (self.u32min as i32) <= (self.u32max as i32) {
                self.s32min = self.s32min.max(self.u32min as i32);
                self.s32max = self.s32max.min(self.u32max as i32);
            }
            if self.s32min >= 0 || self.s32max < 0 {
                self.u32min = self.u32min.max(self.s32min as u32);
                self.u32max = self.u32max.min(self.s32max as u32);
            }
            // 64-bit unsigned -> 32-bit when the upper half is fixed
            if self.umin >> 32 == self.umax >> 32 {
                self.u32min = self.u32min.max(self.umin as u32);
                self.u32max = self.u32max.min(self.umax as u32);
                if (self.umin as u32 as i32) <= (self.umax as u32 as i32) {
                    self.s32min = self.s32min.max(self.umin as u32 as i32);
                    self.s32max = self.s32max.min(self.umax as u32 as i32);
                }
            }
            // signed <-> unsigned 64
            if self.smin >= 0 || self.smax < 0 {
                self.umin = self.umin.max(self.smin as u64);
                self.umax = self.umax.min(self.smax as u64);
            }
            if (self.umin as i64) <= (self.umax as i64) {
                self.smin = self.smin.max(self.umin as i64);
                self.smax = self.smax.min(self.umax as i64);
            }
            // ranges -> tnum
            let r = Tnum::range(self.umin, self.umax);
            self.t = self.t.intersect(r);
            let r32 = Tnum::range(self.u32min as u64, self.u32max as u64);
            self.t = Tnum {
                value: (self.t.value & !0xffff_ffff) | (self.t.intersect(r32).value & 0xffff_ffff),
                mask: (self.t.mask & !0xffff_ffff) | (self.t.intersect(r32).mask & 0xffff_ffff),
            };
        }
    }

    /// Whether the ranges describe no value (a dead branch).
    pub fn is_empty(&self) -> bool {
        self.umin > self.umax
            || self.smin > self.smax
            || self.u32min > self.u32max
            || self.s32min > self.s32max
            || (self.t.value & self.t.mask) != 0
    }

    /// Zero-extends the low 32 bits (result of a 32-bit ALU op).
    pub fn zext32(&self) -> Scalar {
        let mut s = Scalar::UNKNOWN;
        s.t = self.t.subreg();
        s.u32min = self.u32min;
        s.u32max = self.u32max;
        s.s32min = self.s32min;
        s.s32max = self.s32max;
        s.umin = self.u32min as u64;
        s.umax = self.u32max as u64;
        s.smin = s.umin as i64;
        s.smax = s.umax as i64;
        s.sync();
        s
    }

    /// Only the tnum is kept (ranges recomputed from it): a sound fallback.
    pub fn from_tnum(t: Tnum) -> Scalar {
        let mut s = Scalar::UNKNOWN;
        s.t = t;
        s.sync();
        s
    }

    pub fn add(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.add(b.t));
        // unsigned: no wrap -> precise
        if let (Some(lo), Some(hi)) = (self.umin.checked_add(b.umin), self.umax.checked_add(b.umax))
        {
            r.umin = r.umin.max(lo);
            r.umax = r.umax.min(hi);
        }
        if let (Some(lo), Some(hi)) = (self.smin.checked_add(b.smin), self.smax.checked_add(b.smax))
        {
            r.smin = r.smin.max(lo);
            r.smax = r.smax.min(hi);
        }
        r.sync();
        r
    }

    pub fn sub(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.sub(b.t));
        if self.umin >= b.umax {
            r.umin = r.umin.max(self.umin - b.umax);
            r.umax = r.umax.min(self.umax - b.umin);
        }
        if let (Some(lo), Some(hi)) = (self.smin.checked_sub(b.smax), self.smax.checked_sub(b.smin))
        {
            r.smin = r.smin.max(lo);
            r.smax = r.smax.min(hi);
        }
        r.sync();
        r
    }

    pub fn mul(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.mul(b.t));
        if let Some(hi) = self.umax.checked_mul(b.umax) {
            r.umin = r.umin.max(self.umin.saturating_mul(b.umin));
            r.umax = r.umax.min(hi);
        }
        r.sync();
        r
    }

    pub fn and(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.and(b.t));
        r.umax = r.umax.min(self.umax.min(b.umax));
        r.sync();
        r
    }

    pub fn or(&self, b: &Scalar) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.or(b.t));
        r.umin = r.umin.max(self.umin.max(b.umin));
        r.sync();
        r
    }

    pub fn xor(&self, b: &Scalar) -> Scalar {
        Scalar::from_tnum(self.t.xor(b.t))
    }

    /// Shifts by a constant amount (already masked to the width).
    pub fn lsh(&self, s: u32) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.lsh(s));
        if s < 64 && self.umax.leading_zeros() >= s {
            r.umin = r.umin.max(self.umin << s);
            r.umax = r.umax.min(self.umax << s);
        }
        r.sync();
        r
    }

    pub fn rsh(&self, s: u32) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.rsh(s));
        r.umin = r.umin.max(self.umin >> s);
        r.umax = r.umax.min(self.umax >> s);
        r.sync();
        r
    }

    pub fn arsh(&self, s: u32) -> Scalar {
        let mut r = Scalar::from_tnum(self.t.arsh(s, 64));
        r.smin = r.smin.max(self.smin >> s);
        r.smax = r.smax.min(self.smax >> s);
        r.sync();
        r
    }

    /// The smallest scalar holding every value of both (interval hulls,
    /// known bits both agree on).
    pub fn join(&self, b: &Scalar) -> Scalar {
        let mask = self.t.mask | b.t.mask | (self.t.value ^ b.t.value);
        let mut r = Scalar {
            t: Tnum {
                value: self.t.value & !mask,
                mask,
            },
            smin: self.smin.min(b.smin),
            smax: self.smax.max(b.smax),
            umin: self.umin.min(b.umin),
            umax: self.umax.max(b.umax),
            s32min: self.s32min.min(b.s32min),
            s32max: self.s32max.max(b.s32max),
            u32min: self.u32min.min(b.u32min),
            u32max: self.u32max.max(b.u32max),
        };
        r.sync();
        r
    }

    /// Widening at a loop head: `self` (the head's earlier state) joined
    /// with `b`, every bound that moved sent to its extreme, so that a
    /// chain of loop iterations reaches a fixpoint in a few steps.
    pub fn widen(&self, b: &Scalar, thresholds: &[i64]) -> Scalar {
        let j = self.join(b);
        // Widening with thresholds: a bound that moved goes to the next
        // constant the program compares with (a loop's own test), and only
        // past all of them to the extreme.
        let up_s = |v: i64| {
            thresholds
                .iter()
                .copied()
                .find(|&t| t >= v)
                .unwrap_or(i64::MAX)
        };
        let down_s = |v: i64| {
            thresholds
                .iter()
                .rev()
                .copied()
                .find(|&t| t <= v)
                .unwrap_or(i64::MIN)
        };
        let up_u = |v: u64| {
            thresholds
                .iter()
                .copied()
                .filter(|&t| t >= 0)
                .map(|t| t as u64)
                .find(|&t| t >= v)
                .unwrap_or(u64::MAX)
        };
        let mut r = Scalar {
            t: j.t,
            smin: if j.smin < self.smin {
                down_s(j.smin)
            } else {
                j.smin
            },
            smax: if j.smax > self.smax {
                up_s(j.smax)
            } else {
                j.smax
            },
            umin: if j.umin < self.umin { 0 } else { j.umin },
            umax: if j.umax > self.umax {
                up_u(j.umax)
            } else {
                j.umax
            },
            s32min: if j.s32min < self.s32min {
                i32::MIN
            } else {
                j.s32min
            },
            s32max: if j.s32max > self.s32max {
                i32::MAX
            } else {
                j.s32max
            },
            u32min: if j.u32min < self.u32min { 0 } else { j.u32min },
            u32max: if j.u32max > self.u32max {
                u32::MAX
            } else {
                j.u32max
            },
        };
        if r.t != self.t {
            r.t = Tnum::UNKNOWN;
        }
        r.sync();
        r
    }

    /// Whether every value of `b` is within `self` (state pruning).
    pub fn contains(&self, b: &Scalar) -> bool {
        self.umin <= b.umin
            && self.umax >= b.umax
            && self.smin <= b.smin
            && self.smax >= b.smax
            && self.u32min <= b.u32min
            && self.u32max >= b.u32max
            && self.s32min <= b.s32min
            && self.s32max >= b.s32max
            && self.t.contains(b.t)
    }

    /// Whether concrete value `v` is a member (for tests).
    #[cfg(test)]
    pub fn admits(&self, v: u64) -> bool {
        v >= self.umin
            && v <= self.umax
            && (v as i64) >= self.smin
            && (v as i64) <= self.smax
            && (v as u32) >= self.u32min
            && (v as u32) <= self.u32max
            && (v as u32 as i32) >= self.s32min
            && (v as u32 as i32) <= self.s32max
            && (v & !self.t.mask) == self.t.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An abstract value built from a few concrete members.
    fn abs(vals: &[u64]) -> Scalar {
        let (mut lo, mut hi) = (u64::MAX, 0u64);
        let mut t: Option<Tnum> = None;
        for &v in vals {
            lo = lo.min(v);
            hi = hi.max(v);
            t = Some(match t {
                None => Tnum::konst(v),
                Some(t) => Tnum {
                    value: t.value & v,
                    mask: t.mask | (t.value ^ v),
                },
            });
        }
        let t = t.unwrap_or(Tnum::UNKNOWN);
        let t = Tnum {
            value: t.value & !t.mask,
            mask: t.mask,
        };
        let mut s = Scalar::urange(lo, hi);
        s.t = s.t.intersect(t);
        s.sync();
        s
    }

    proptest! {
        #[test]
        fn operations_are_sound(a in prop::collection::vec(any::<u64>(), 1..4), b in prop::collection::vec(any::<u64>(), 1..4), s in 0u32..64) {
            let (x, y) = (abs(&a), abs(&b));
            for &va in &a {
                prop_assert!(x.admits(va), "{x} misses {va:#x}");
                for &vb in &b {
                    prop_assert!(x.add(&y).admits(va.wrapping_add(vb)), "add");
                    prop_assert!(x.sub(&y).admits(va.wrapping_sub(vb)), "sub");
                    prop_assert!(x.mul(&y).admits(va.wrapping_mul(vb)), "mul");
                    prop_assert!(x.and(&y).admits(va & vb), "and");
                    prop_assert!(x.or(&y).admits(va | vb), "or");
                    prop_assert!(x.xor(&y).admits(va ^ vb), "xor");
                }
                prop_assert!(x.lsh(s).admits(va << s), "lsh");
                prop_assert!(x.rsh(s).admits(va >> s), "rsh");
                prop_assert!(x.arsh(s).admits(((va as i64) >> s) as u64), "arsh");
                prop_assert!(x.zext32().admits(va as u32 as u64), "zext");
            }
        }

        #[test]
        fn small_ranges_are_sound(a in prop::collection::vec(0u64..300, 1..4), b in prop::collection::vec(0u64..300, 1..4)) {
            let (x, y) = (abs(&a), abs(&b));
            for &va in &a {
                for &vb in &b {
                    prop_assert!(x.add(&y).admits(va + vb));
                    prop_assert!(x.mul(&y).admits(va * vb));
                    if va >= vb {
                        prop_assert!(x.sub(&y).admits(va - vb));
                    }
                }
            }
        }
    }
}
