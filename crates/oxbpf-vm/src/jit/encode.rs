//! Hand encoding of instructions with a memory operand.
//!
//! dynasm-rs cannot know at build time which register a dynamic base
//! (`[Rq(b) + disp]`) will be, so it always emits a SIB byte and a 32-bit
//! displacement: `movzx edx, byte [r8 - 5]` takes 9 bytes instead of 5.
//! Loads and stores are most of an eBPF program, so the code generator
//! encodes them here in their shortest form (no SIB byte unless the base is
//! rsp/r12 or there is an index; no displacement, or 8 bits, when it fits),
//! which keeps hot loops smaller for the decoders and the op cache.

/// The recommended multi-byte no-ops, by length (1 to 9 bytes).
pub(crate) const NOPS: [&[u8]; 9] = [
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/// A memory operand `[base + index + disp]` (scale 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mem {
    pub base: u8,
    pub index: Option<u8>,
    pub disp: i32,
}

/// Operand-size and prefix choices of one instruction.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Form {
    /// 0x66 operand-size prefix (16-bit operation).
    pub p66: bool,
    /// REX.W (64-bit operation).
    pub w: bool,
    /// The register field names a byte register: spl, bpl, sil and dil
    /// need a REX prefix to be told apart from ah, ch, dh and bh.
    pub byte_reg: bool,
}

/// Longest encoding produced: prefix, REX, 2 opcode bytes, ModRM, SIB,
/// disp32 and a 4-byte immediate.
const MAX: usize = 15;

/// The bytes of one instruction.
pub(crate) struct Bytes {
    buf: [u8; MAX],
    len: usize,
}

impl Bytes {
    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends an immediate operand (little-endian, `n` bytes of `v`).
    pub(crate) fn imm(mut self, v: i64, n: usize) -> Bytes {
        for b in &v.to_le_bytes()[..n] {
            self.push(*b);
        }
        self
    }
}

/// Encodes `opcode` with ModRM field `reg` (a register, or an opcode
/// extension) and memory operand `m`.
pub(crate) fn mem_insn(form: Form, opcode: &[u8], reg: u8, m: Mem) -> Bytes {
    debug_assert!(m.index != Some(4), "rsp cannot be an index");
    let mut out = Bytes {
        buf: [0; MAX],
        len: 0,
    };
    if form.p66 {
        out.push(0x66);
    }
    let index = m.index.unwrap_or(0);
    let rex = (form.w as u8) << 3 | (reg >> 3) << 2 | (index >> 3) << 1 | (m.base >> 3);
    if rex != 0 || (form.byte_reg && (4..8).contains(&reg)) {
        out.push(0x40 | rex);
    }
    for &b in opcode {
        out.push(b);
    }
    // rbp and r13 as a base have no displacement-free form.
    let md: u8 = if m.disp == 0 && m.base & 7 != 5 {
        0
    } else if m.disp as i8 as i32 == m.disp {
        1
    } else {
        2
    };
    let sib = m.index.is_some() || m.base & 7 == 4;
    let rm = if sib { 4 } else { m.base & 7 };
    out.push(md << 6 | (reg & 7) << 3 | rm);
    if sib {
        // Index 100 without REX.X means "no index".
        let i = m.index.map_or(4, |i| i & 7);
        out.push(i << 3 | (m.base & 7));
    }
    match md {
        1 => out.push(m.disp as u8),
        2 => {
            for b in m.disp.to_le_bytes() {
                out.push(b);
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Register};

    const GPR: [Register; 16] = [
        Register::RAX,
        Register::RCX,
        Register::RDX,
        Register::RBX,
        Register::RSP,
        Register::RBP,
        Register::RSI,
        Register::RDI,
        Register::R8,
        Register::R9,
        Register::R10,
        Register::R11,
        Register::R12,
        Register::R13,
        Register::R14,
        Register::R15,
    ];

    /// Every base, index and displacement class decodes to the operand it
    /// was meant to be, in the expected length.
    #[test]
    fn memory_operands_decode_as_intended() {
        let disps = [0, 1, -1, 127, -128, 128, -129, 0x7fff_ffff, i32::MIN];
        for reg in 0..16u8 {
            for base in 0..16u8 {
                for index in [None, Some(0), Some(5), Some(8), Some(13), Some(15)] {
                    for &disp in &disps {
                        let m = Mem { base, index, disp };
                        // mov r64, [m]
                        let form = Form {
                            w: true,
                            ..Form::default()
                        };
                        let b = mem_insn(form, &[0x8b], reg, m);
                        let mut d = Decoder::new(64, b.as_slice(), DecoderOptions::NONE);
                        let insn = d.decode();
                        assert_eq!(insn.len(), b.as_slice().len(), "{m:?}");
                        assert_eq!(insn.op0_register(), GPR[reg as usize], "{m:?}");
                        assert_eq!(insn.memory_base(), GPR[base as usize], "{m:?}");
                        let want_index = index.map_or(Register::None, |i| GPR[i as usize]);
                        assert_eq!(insn.memory_index(), want_index, "{m:?}");
                        assert_eq!(insn.memory_displacement64(), disp as i64 as u64, "{m:?}");
                        // Shortest: no SIB unless needed, disp by size.
                        let sib = index.is_some() || base & 7 == 4;
                        let disp_len = if disp == 0 && base & 7 != 5 {
                            0
                        } else if disp as i8 as i32 == disp {
                            1
                        } else {
                            4
                        };
                        assert_eq!(b.as_slice().len(), 1 + 1 + 1 + sib as usize + disp_len);
                    }
                }
            }
        }
    }

    #[test]
    fn byte_registers_get_a_rex_prefix_when_needed() {
        let m = Mem {
            base: 0,
            index: None,
            disp: 0,
        };
        let form = Form {
            byte_reg: true,
            ..Form::default()
        };
        // mov [rax], sil needs REX (without it: dh).
        assert_eq!(mem_insn(form, &[0x88], 6, m).as_slice(), [0x40, 0x88, 0x30]);
        assert_eq!(mem_insn(form, &[0x88], 2, m).as_slice(), [0x88, 0x10]);
        let p = Form {
            p66: true,
            ..Form::default()
        };
        assert_eq!(
            mem_insn(p, &[0xc7], 0, m).imm(0x1234, 2).as_slice(),
            [0x66, 0xc7, 0x00, 0x34, 0x12]
        );
    }
}
