//! Arithmetic: ALU operations, constant multiplication by shifts and `lea`,
//! division and modulo (by registers with the kernel's zero and overflow
//! rules, by constants through magic multipliers), and the magic numbers.

#![allow(clippy::useless_conversion)]

use super::*;

/// Magic number for unsigned 64-bit division by `d` (not a power of two,
/// 2 < d < 2^63): `(m, shift, add)` such that
/// q = (hi(n*m) [+ fix-up]) >> shift.
pub(crate) fn magic_u64(d: u64) -> (u64, u32, bool) {
    let l = 64 - (d - 1).leading_zeros(); // ceil(log2 d)
    // Try m = ceil(2^(64+s) / d) for s < l with the error bound.
    for s in 0..l {
        let p = 1u128 << (64 + s);
        let m = p.div_ceil(d as u128);
        if m < (1u128 << 64) {
            let e = m * d as u128 - p;
            if e <= 1u128 << s {
                return (m as u64, s, false);
            }
        }
    }
    // Fall back to the 65-bit multiplier with the add fix-up.
    let p = 1u128 << (64 + l);
    let m = (p / d as u128) + 1 - (1u128 << 64);
    (m as u64, l, true)
}

/// Magic number for unsigned 32-bit division by `d` (not a power of two)
/// with a multiplier below 2^32: `(m, shift)` such that for every 32-bit n,
/// n / d = (n * m) >> (32 + shift), computed in 64 bits. None when no such
/// multiplier exists (then the 64-bit method is used).
pub(crate) fn magic_u32(d: u32) -> Option<(u32, u32)> {
    if d < 3 || d.is_power_of_two() {
        return None;
    }
    let l = 32 - (d - 1).leading_zeros();
    (0..l).find_map(|s| {
        let p = 1u64 << (32 + s);
        let m = p.div_ceil(d as u64);
        (m < 1 << 32 && m * d as u64 - p <= 1 << s).then_some((m as u32, s))
    })
}

/// Unsigned 32-bit division by a constant `d` (at least 3, not a power of
/// two) with a 33-bit multiplier 2^32 + m (Granlund–Montgomery with N = 32
/// and l = ceil(log2 d)): for every 32-bit n,
/// n / d = (n + ((n * m) >> 32)) >> l, all in 64-bit arithmetic. Returns
/// `(m, l)`; covers the divisors `magic_u32` has no 32-bit multiplier for.
pub(crate) fn magic_u32_wide(d: u32) -> (u32, u32) {
    let l = 32 - (d - 1).leading_zeros();
    let m = (1u128 << (32 + l)) / d as u128 + 1;
    ((m - (1 << 32)) as u32, l)
}

impl Emitter<'_> {
    /// `d *= imm`: shifts, `lea` and shift-and-add/subtract for the
    /// constants they cover (1–2 cycles of latency instead of `imul`'s 3,
    /// which matters in a loop-carried chain such as a hash or `acc * 31`).
    pub(super) fn mul_imm(&mut self, d: u8, imm: i32, w: bool) {
        // `lea d, [d + d * scale]`: d * 3, 5 or 9.
        let lea = |e: &mut Self, m: i32| match (m, w) {
            (3, true) => dynasm!(e.a ; lea Rq(d), [Rq(d) + Rq(d) * 2]),
            (5, true) => dynasm!(e.a ; lea Rq(d), [Rq(d) + Rq(d) * 4]),
            (9, true) => dynasm!(e.a ; lea Rq(d), [Rq(d) + Rq(d) * 8]),
            (3, false) => dynasm!(e.a ; lea Rd(d), [Rq(d) + Rq(d) * 2]),
            (5, false) => dynasm!(e.a ; lea Rd(d), [Rq(d) + Rq(d) * 4]),
            _ => dynasm!(e.a ; lea Rd(d), [Rq(d) + Rq(d) * 8]),
        };
        let shl = |e: &mut Self, k: u32| {
            if w {
                dynasm!(e.a ; shl Rq(d), k as i8);
            } else {
                dynasm!(e.a ; shl Rd(d), k as i8);
            }
        };
        let c = imm as i64;
        if c > 0 && (c as u64).is_power_of_two() {
            match c.trailing_zeros() {
                0 if !w => dynasm!(self.a ; mov Rd(d), Rd(d)),
                0 => {}
                k => shl(self, k),
            }
            return;
        }
        if c > 0 {
            let k = c.trailing_zeros();
            let odd = (c >> k) as i32;
            if matches!(odd, 3 | 5 | 9) {
                lea(self, odd);
                if k > 0 {
                    shl(self, k);
                }
                return;
            }
            // 2^k ± 1: shift a copy and add or subtract the original.
            let (up, down) = ((c - 1) as u64, (c + 1) as u64);
            if up.is_power_of_two() || down.is_power_of_two() {
                let add = up.is_power_of_two();
                let k = if add { up } else { down }.trailing_zeros();
                dynasm!(self.a ; mov r11, Rq(d));
                shl(self, k);
                match (add, w) {
                    (true, true) => dynasm!(self.a ; add Rq(d), r11),
                    (true, false) => dynasm!(self.a ; add Rd(d), r11d),
                    (false, true) => dynasm!(self.a ; sub Rq(d), r11),
                    (false, false) => dynasm!(self.a ; sub Rd(d), r11d),
                }
                return;
            }
        }
        match (c, w) {
            (0, _) => dynasm!(self.a ; xor Rd(d), Rd(d)),
            (-1, true) => dynasm!(self.a ; neg Rq(d)),
            (-1, false) => dynasm!(self.a ; neg Rd(d)),
            (_, true) => dynasm!(self.a ; imul Rq(d), Rq(d), imm),
            (_, false) => dynasm!(self.a ; imul Rd(d), Rd(d), imm),
        }
    }

    pub(super) fn alu(
        &mut self,
        o: Op,
        d: u8,
        s: u8,
        imm: i32,
        w: bool,
        pc: usize,
    ) -> Result<(), JitError> {
        if self.mode.blind
            && o.code & BPF_X == 0
            && !matches!(
                o.code & 0xf0,
                BPF_LSH | BPF_RSH | BPF_ARSH | BPF_NEG | BPF_END
            )
        {
            // The same operation with the constant in a register.
            self.blinded_imm(imm, w);
            let o = Op {
                code: o.code | BPF_X,
                ..o
            };
            return self.alu(o, d, 10, 0, w, pc);
        }
        let reg = o.code & BPF_X != 0;
        // Immediates that fit a byte use the short (imm8) encodings.
        let short = imm as i8 as i32 == imm;
        macro_rules! bin {
            ($mn:ident) => {
                match (w, reg, short) {
                    (true, true, _) => dynasm!(self.a ; $mn Rq(d), Rq(s)),
                    (false, true, _) => dynasm!(self.a ; $mn Rd(d), Rd(s)),
                    (true, false, true) => dynasm!(self.a ; $mn Rq(d), BYTE imm as i8),
                    (false, false, true) => dynasm!(self.a ; $mn Rd(d), BYTE imm as i8),
                    (true, false, false) => dynasm!(self.a ; $mn Rq(d), imm),
                    (false, false, false) => dynasm!(self.a ; $mn Rd(d), imm),
                }
            };
        }
        macro_rules! shift {
            ($mn:ident, $mnx:ident) => {{
                let mask = if w { 63 } else { 31 };
                if !reg {
                    let n = (imm & mask) as i8;
                    if n != 0 {
                        if w {
                            dynasm!(self.a ; $mn Rq(d), n);
                        } else {
                            dynasm!(self.a ; $mn Rd(d), n);
                        }
                    } else if !w {
                        dynasm!(self.a ; mov Rd(d), Rd(d));
                    }
                } else if self.cpu.bmi2 {
                    if w {
                        dynasm!(self.a ; $mnx Rq(d), Rq(d), Rq(s));
                    } else {
                        dynasm!(self.a ; $mnx Rd(d), Rd(d), Rd(s));
                    }
                } else {
                    // The count must be in cl; rcx is BPF r4.
                    dynasm!(self.a ; mov r11, rcx ; mov rcx, Rq(s));
                    let t = if d == RCX { S1 } else { d };
                    if w {
                        dynasm!(self.a ; $mn Rq(t), cl);
                    } else {
                        dynasm!(self.a ; $mn Rd(t), cl);
                    }
                    dynasm!(self.a ; mov rcx, r11);
                }
            }};
        }
        match o.code & 0xf0 {
            BPF_ADD => {
                if !reg && imm == 1 {
                    if w {
                        dynasm!(self.a ; inc Rq(d));
                    } else {
                        dynasm!(self.a ; inc Rd(d));
                    }
                } else {
                    bin!(add)
                }
            }
            BPF_SUB => bin!(sub),
            BPF_MUL => match (w, reg) {
                (true, true) => dynasm!(self.a ; imul Rq(d), Rq(s)),
                (false, true) => dynasm!(self.a ; imul Rd(d), Rd(s)),
                (_, false) => self.mul_imm(d, imm, w),
            },
            BPF_DIV | BPF_MOD => self.div(o, d, s, imm, w, reg, pc),
            BPF_OR => bin!(or),
            // Masks of a byte, a half or a word are zero-extensions.
            BPF_AND if !reg && imm == 0xff => dynasm!(self.a ; movzx Rd(d), Rb(d)),
            BPF_AND if !reg && imm == 0xffff => dynasm!(self.a ; movzx Rd(d), Rw(d)),
            BPF_AND => bin!(and),
            BPF_XOR => {
                if reg && d == s {
                    dynasm!(self.a ; xor Rd(d), Rd(d));
                } else {
                    bin!(xor)
                }
            }
            BPF_LSH => shift!(shl, shlx),
            BPF_RSH => shift!(shr, shrx),
            BPF_ARSH => shift!(sar, sarx),
            BPF_NEG => {
                if w {
                    dynasm!(self.a ; neg Rq(d));
                } else {
                    dynasm!(self.a ; neg Rd(d));
                }
            }
            BPF_MOV => match (w, reg, o.off) {
                (true, true, 0) => {
                    if d != s {
                        dynasm!(self.a ; mov Rq(d), Rq(s));
                    }
                }
                (true, true, 8) => dynasm!(self.a ; movsx Rq(d), Rb(s)),
                (true, true, 16) => dynasm!(self.a ; movsx Rq(d), Rw(s)),
                (true, true, _) => dynasm!(self.a ; movsxd Rq(d), Rd(s)),
                (false, true, 0) => dynasm!(self.a ; mov Rd(d), Rd(s)),
                (false, true, 8) => dynasm!(self.a ; movsx Rd(d), Rb(s)),
                (false, true, _) => dynasm!(self.a ; movsx Rd(d), Rw(s)),
                (_, false, _) => {
                    if imm == 0 {
                        dynasm!(self.a ; xor Rd(d), Rd(d));
                    } else if w && imm < 0 {
                        dynasm!(self.a ; mov Rq(d), imm);
                    } else {
                        dynasm!(self.a ; mov Rd(d), imm);
                    }
                }
            },
            BPF_END => {
                // ALU (0xd4/0xdc): to-little (no swap) or to-big; ALU64
                // (0xd7): unconditional swap.
                let swap = o.code != 0xd4;
                match (imm, swap) {
                    (16, false) => dynasm!(self.a ; movzx Rd(d), Rw(d)),
                    (32, false) => dynasm!(self.a ; mov Rd(d), Rd(d)),
                    (_, false) => {}
                    (16, true) => dynasm!(self.a ; rol Rw(d), 8 ; movzx Rd(d), Rw(d)),
                    (32, true) => dynasm!(self.a ; bswap Rd(d)),
                    (_, true) => dynasm!(self.a ; bswap Rq(d)),
                }
            }
            _ => return Err(bad(pc, o)),
        }
        Ok(())
    }

    /// Division and modulo with kernel semantics (x/0 = 0, x%0 = x,
    /// INT_MIN/-1 = INT_MIN); constant divisors use shifts, masks or a
    /// multiplication by the reciprocal.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn div(&mut self, o: Op, d: u8, s: u8, imm: i32, w: bool, reg: bool, _pc: usize) {
        let modulo = o.code & 0xf0 == BPF_MOD;
        let signed = o.off == 1;
        if !reg {
            // Constant divisor.
            let c = if w {
                imm as i64 as u64
            } else {
                imm as u32 as u64
            };
            if c == 0 {
                match (modulo, w) {
                    (false, _) => dynasm!(self.a ; xor Rd(d), Rd(d)),
                    (true, true) => {}
                    (true, false) => dynasm!(self.a ; mov Rd(d), Rd(d)),
                }
                return;
            }
            if !signed && c.is_power_of_two() {
                let k = c.trailing_zeros() as i8;
                match (modulo, w) {
                    (false, true) if k > 0 => dynasm!(self.a ; shr Rq(d), k),
                    (false, false) if k > 0 => dynasm!(self.a ; shr Rd(d), k),
                    (false, true) => {}
                    (false, false) => dynasm!(self.a ; mov Rd(d), Rd(d)),
                    (true, true) => {
                        if c <= i32::MAX as u64 {
                            dynasm!(self.a ; and Rq(d), (c - 1) as i32);
                        } else {
                            dynasm!(self.a ; mov r11, QWORD (c - 1) as i64 ; and Rq(d), r11);
                        }
                    }
                    (true, false) => dynasm!(self.a ; and Rd(d), (c - 1) as i32),
                }
                return;
            }
            if !signed && c > 1 << 63 {
                // The quotient is 0 or 1.
                dynasm!(self.a
                    ; mov r11, QWORD c as i64
                    ; cmp Rq(d), r11
                );
                if modulo {
                    dynasm!(self.a
                        ; mov r10, Rq(d)
                        ; sub r10, r11
                        ; cmovae Rq(d), r10
                    );
                } else {
                    dynasm!(self.a
                        ; setae r10b
                        ; movzx Rd(d), r10b
                    );
                }
                return;
            }
            if !signed && !w {
                // n * m fits 64 bits: one multiply, no rdx.
                dynasm!(self.a ; mov r11d, Rd(d));
                if let Some((m, shift)) = magic_u32(c as u32) {
                    dynasm!(self.a
                        ; mov r10d, m as i32
                        ; imul r10, r11
                        ; shr r10, (32 + shift) as i8
                    );
                } else {
                    // A 33-bit multiplier 2^32 + m: n + (n * m >> 32).
                    let (m, shift) = magic_u32_wide(c as u32);
                    dynasm!(self.a
                        ; mov r10d, m as i32
                        ; imul r10, r11
                        ; shr r10, 32
                        ; add r10, r11
                        ; shr r10, shift as i8
                    );
                }
                if modulo {
                    dynasm!(self.a
                        ; imul r10d, r10d, c as i32
                        ; sub r11d, r10d
                        ; mov Rd(d), r11d
                    );
                } else {
                    dynasm!(self.a ; mov Rd(d), r10d);
                }
                return;
            }
            if !signed && self.cpu.bmi2 {
                self.div_magic(d, c, w, modulo);
                return;
            }
        }
        // General case: divisor in r11.
        if reg {
            if w {
                dynasm!(self.a ; mov r11, Rq(s));
            } else {
                dynasm!(self.a ; mov r11d, Rd(s));
            }
        } else if w {
            dynasm!(self.a ; mov r11, imm);
        } else {
            dynasm!(self.a ; mov r11d, imm);
        }
        let back = self.a.new_dynamic_label();
        let known_nonzero = !reg && imm != 0;
        if !known_nonzero {
            let at = self.a.new_dynamic_label();
            if w {
                dynasm!(self.a ; test r11, r11 ; jz =>at);
            } else {
                dynasm!(self.a ; test r11d, r11d ; jz =>at);
            }
            self.cold.push(Cold::DivSpecial {
                at,
                back,
                dst: d,
                wide: w,
                modulo,
                minus_one: false,
            });
        }
        if signed && (reg || imm == -1) {
            let at = self.a.new_dynamic_label();
            if w {
                dynasm!(self.a ; cmp r11, -1 ; je =>at);
            } else {
                dynasm!(self.a ; cmp r11d, -1 ; je =>at);
            }
            self.cold.push(Cold::DivSpecial {
                at,
                back,
                dst: d,
                wide: w,
                modulo,
                minus_one: true,
            });
        }
        // rdx (BPF r3) is kept in r9 when r9 counts nothing, else in memory.
        let free_r9 = !self.mode.count && !self.mode.budget;
        if d != RDX {
            if free_r9 {
                dynasm!(self.a ; mov r9, rdx);
            } else {
                dynasm!(self.a ; mov [r12 + off::SAVE_RDX], rdx);
            }
        }
        if d != RAX {
            dynasm!(self.a ; mov r10, rax ; mov rax, Rq(d));
        }
        match (w, signed) {
            (true, false) => dynasm!(self.a ; xor edx, edx ; div r11),
            (true, true) => dynasm!(self.a ; cqo ; idiv r11),
            (false, false) => dynasm!(self.a ; xor edx, edx ; div r11d),
            (false, true) => dynasm!(self.a ; cdq ; idiv r11d),
        }
        let res = if modulo { RDX } else { RAX };
        if w && d != res {
            dynasm!(self.a ; mov Rq(d), Rq(res));
        } else if !w {
            dynasm!(self.a ; mov Rd(d), Rd(res));
        }
        if d != RAX {
            dynasm!(self.a ; mov rax, r10);
        }
        if d != RDX {
            if free_r9 {
                dynasm!(self.a ; mov rdx, r9);
            } else {
                dynasm!(self.a ; mov rdx, [r12 + off::SAVE_RDX]);
            }
        }
        dynasm!(self.a ; =>back);
    }

    /// Unsigned division by a constant `c` (not 0, not a power of two) by
    /// multiplying with its reciprocal (Granlund–Montgomery).
    pub(super) fn div_magic(&mut self, d: u8, c: u64, w: bool, modulo: bool) {
        let (m, shift, add) = magic_u64(c);
        // n in r11 (zero-extended for the 32-bit form).
        if w {
            dynasm!(self.a ; mov r11, Rq(d));
        } else {
            dynasm!(self.a ; mov r11d, Rd(d));
        }
        if d != RDX {
            dynasm!(self.a ; mov [r12 + off::SAVE_RDX], rdx);
        }
        dynasm!(self.a
            ; mov rdx, QWORD m as i64
            ; mulx r10, r10, r11
        );
        // q in r10.
        if add {
            dynasm!(self.a
                ; mov rdx, r11
                ; sub rdx, r10
                ; shr rdx, 1
                ; add r10, rdx
            );
            if shift > 1 {
                dynasm!(self.a ; shr r10, (shift - 1) as i8);
            }
        } else if shift > 0 {
            dynasm!(self.a ; shr r10, shift as i8);
        }
        if modulo {
            if c <= i32::MAX as u64 {
                dynasm!(self.a ; imul r10, r10, c as i32);
            } else {
                dynasm!(self.a ; mov rdx, QWORD c as i64 ; imul r10, rdx);
            }
            dynasm!(self.a ; sub r11, r10 ; mov r10, r11);
        }
        if d != RDX {
            dynasm!(self.a ; mov rdx, [r12 + off::SAVE_RDX]);
        }
        if w {
            dynasm!(self.a ; mov Rq(d), r10);
        } else {
            dynasm!(self.a ; mov Rd(d), r10d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{magic_u32, magic_u32_wide, magic_u64};

    #[test]
    fn magic_division_32_wide_matches() {
        for d in (3u32..3000).filter(|d| !d.is_power_of_two()).chain([
            7,
            0xffff_fff1,
            0x8000_0001,
            0x7fff_ffff,
            1_000_000_007,
            u32::MAX,
        ]) {
            let (m, l) = magic_u32_wide(d);
            let check = |n: u32| {
                let n64 = n as u64;
                let q = (n64 + ((n64 * m as u64) >> 32)) >> l;
                assert_eq!(q, (n / d) as u64, "{n} / {d}");
            };
            for n in [0, 1, d - 1, d, d + 1, u32::MAX, u32::MAX - 1, 1 << 31] {
                check(n);
            }
            let mut x = d.wrapping_mul(2_654_435_761) | 1;
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                check(x);
            }
        }
        // Every n for one divisor that needs the wide form.
        assert!(magic_u32(7).is_none());
        let (m, l) = magic_u32_wide(7);
        for n in (0..=u32::MAX).step_by(97).chain([u32::MAX]) {
            let n64 = n as u64;
            assert_eq!((n64 + ((n64 * m as u64) >> 32)) >> l, (n / 7) as u64);
        }
    }

    #[test]
    fn magic_division_32_matches() {
        for d in (3u32..2000).chain([0xffff_fff1, 0x8000_0001, 641, 0x7fff_ffff, 1_000_000_007]) {
            let Some((m, s)) = magic_u32(d) else { continue };
            let check = |n: u32| {
                let q = (n as u64 * m as u64) >> (32 + s);
                assert_eq!(q, (n / d) as u64, "{n} / {d}");
            };
            for n in [
                0,
                1,
                d - 1,
                d,
                d + 1,
                u32::MAX,
                u32::MAX - 1,
                1 << 31,
                (1 << 31) - 1,
            ] {
                check(n);
            }
            let mut x = d.wrapping_mul(2_654_435_761) | 1;
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                check(x);
            }
        }
        assert!(magic_u32(13).is_some());
    }

    fn divide(n: u64, d: u64) -> u64 {
        let (m, s, add) = magic_u64(d);
        let hi = ((n as u128 * m as u128) >> 64) as u64;
        if add {
            let t = ((n - hi) >> 1) + hi;
            t >> (s - 1)
        } else {
            hi >> s
        }
    }

    #[test]
    fn magic_division_matches() {
        let ds = [
            3u64,
            5,
            6,
            7,
            10,
            13,
            25,
            100,
            641,
            1000,
            0xffff_ffff,
            0x8000_0001,
            (1 << 63) - 1,
            (1 << 62) + 1,
            12345678901234567,
        ];
        let ns = [
            0u64,
            1,
            2,
            12,
            13,
            14,
            99,
            1 << 32,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) - 1,
            0xdead_beef_cafe_f00d,
        ];
        for &d in &ds {
            for &n in &ns {
                assert_eq!(divide(n, d), n / d, "{n} / {d}");
            }
            let mut x = d.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                assert_eq!(divide(x, d), x / d, "{x} / {d}");
                let small = x >> 33;
                assert_eq!(divide(small, d), small / d);
            }
        }
    }
}
