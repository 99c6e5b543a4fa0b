//! Disassembly in the kernel/LLVM dialect.
//!
//! `Display` for [`Instruction`] prints exactly what `llvm-objdump-19 -d`
//! prints for the instruction (immediates and offsets as signed hex). Where
//! LLVM's text is lossy, the listing from [`listing`] adds an LLVM-style
//! `<...>` annotation that the assembler reads back:
//!
//! * a bpf-to-bpf call prints as `call -0x1` in LLVM, the same as a helper
//!   call; the listing adds `<pc-0x1>` (or `<name>` when a symbol is known);
//! * a kfunc call adds `<kfunc>` (or `<kfunc module N>`).

use std::fmt::{self, Write};

use crate::insn::*;

/// Formats a signed value the way LLVM's BPF printer does: `0x10`, `-0x10`.
pub struct Hex(pub i64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "-{:#x}", self.0.unsigned_abs())
        } else {
            write!(f, "{:#x}", self.0)
        }
    }
}

/// `+0x3` / `-0x2` for jump offsets.
struct Rel(i64);

impl fmt::Display for Rel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "-{:#x}", self.0.unsigned_abs())
        } else {
            write!(f, "+{:#x}", self.0)
        }
    }
}

/// `(r1 + 0x8)` / `(r1 - 0x8)`.
struct MemRef(Reg, i16);

impl fmt::Display for MemRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1 < 0 {
            write!(f, "{} - {:#x}", self.0, (self.1 as i32).unsigned_abs())
        } else {
            write!(f, "{} + {:#x}", self.0, self.1)
        }
    }
}

fn reg_name(width: Width, r: Reg) -> String {
    match width {
        Width::W32 => format!("w{}", r.num()),
        Width::W64 => format!("r{}", r.num()),
    }
}

fn size_name(s: Size) -> &'static str {
    match s {
        Size::B => "u8",
        Size::H => "u16",
        Size::W => "u32",
        Size::DW => "u64",
    }
}

pub(crate) fn alu_symbol(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::Sdiv => "s/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod => "%=",
        AluOp::Smod => "s%=",
        AluOp::Xor => "^=",
        AluOp::Mov => "=",
        AluOp::Arsh => "s>>=",
    }
}

pub(crate) fn cond_symbol(c: JmpCond) -> &'static str {
    match c {
        JmpCond::Eq => "==",
        JmpCond::Gt => ">",
        JmpCond::Ge => ">=",
        JmpCond::Set => "&",
        JmpCond::Ne => "!=",
        JmpCond::Sgt => "s>",
        JmpCond::Sge => "s>=",
        JmpCond::Lt => "<",
        JmpCond::Le => "<=",
        JmpCond::Slt => "s<",
        JmpCond::Sle => "s<=",
    }
}

fn atomic_name(op: AtomicOp) -> &'static str {
    match op {
        AtomicOp::Add { .. } => "add",
        AtomicOp::Or { .. } => "or",
        AtomicOp::And { .. } => "and",
        AtomicOp::Xor { .. } => "xor",
        AtomicOp::Xchg => "xchg",
        AtomicOp::Cmpxchg => "cmpxchg",
    }
}

impl fmt::Display for Instruction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Instruction::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let d = reg_name(width, dst);
                match src {
                    Source::Reg(s) => write!(f, "{d} {} {}", alu_symbol(op), reg_name(width, s)),
                    Source::Imm(i) => write!(f, "{d} {} {}", alu_symbol(op), Hex(i as i64)),
                }
            }
            Instruction::MovSx {
                width,
                bits,
                dst,
                src,
            } => write!(
                f,
                "{} = (s{bits}){}",
                reg_name(width, dst),
                reg_name(width, src)
            ),
            Instruction::Neg { width, dst } => {
                let d = reg_name(width, dst);
                write!(f, "{d} = -{d}")
            }
            Instruction::Endian { op, bits, dst } => {
                let name = match op {
                    EndianOp::ToLe => "le",
                    EndianOp::ToBe => "be",
                    EndianOp::Swap => "bswap",
                };
                write!(f, "{dst} = {name}{bits} {dst}")
            }
            Instruction::Ja { offset, long } => {
                let m = if long { "gotol" } else { "goto" };
                write!(f, "{m} {}", Rel(offset as i64))
            }
            Instruction::Jmp {
                width,
                cond,
                dst,
                src,
                offset,
            } => {
                let s = match src {
                    Source::Reg(s) => reg_name(width, s),
                    Source::Imm(i) => Hex(i as i64).to_string(),
                };
                write!(
                    f,
                    "if {} {} {s} goto {}",
                    reg_name(width, dst),
                    cond_symbol(cond),
                    Rel(offset as i64)
                )
            }
            Instruction::Call(t) => match t {
                CallTarget::Helper(id) | CallTarget::Local(id) => {
                    write!(f, "call {}", Hex(id as i64))
                }
                CallTarget::Kfunc { btf_id, .. } => write!(f, "call {}", Hex(btf_id as i64)),
            },
            Instruction::Callx { reg } => write!(f, "callx {reg}"),
            Instruction::Exit => f.write_str("exit"),
            Instruction::LoadImm64 { dst, imm } => {
                let (src, lo, hi) = match imm {
                    Imm64::Value(v) => return write!(f, "{dst} = {} ll", Hex(v as i64)),
                    Imm64::MapFd(fd) => (1, fd, 0),
                    Imm64::MapValue { fd, offset } => (2, fd, offset),
                    Imm64::BtfId { btf_id, module } => (3, btf_id, module),
                    Imm64::Func(rel) => (4, rel, 0),
                    Imm64::MapIdx(i) => (5, i, 0),
                    Imm64::MapIdxValue { idx, offset } => (6, idx, offset),
                };
                write!(f, "ld_pseudo {dst}, {:#x}, {}", src, Hex(lo as i64))?;
                if hi != 0 {
                    write!(f, ", {}", Hex(hi as i64))?;
                }
                Ok(())
            }
            Instruction::Load {
                size,
                sign_extend,
                dst,
                src,
                offset,
            } => {
                let ty = size_name(size);
                let ty = if sign_extend {
                    ty.replacen('u', "s", 1)
                } else {
                    ty.to_string()
                };
                write!(f, "{dst} = *({ty} *)({})", MemRef(src, offset))
            }
            Instruction::Store {
                size,
                dst,
                offset,
                src,
            } => {
                write!(f, "*({} *)({}) = ", size_name(size), MemRef(dst, offset))?;
                match src {
                    Source::Reg(r) => write!(f, "{r}"),
                    Source::Imm(i) => write!(f, "{}", Hex(i as i64)),
                }
            }
            Instruction::Atomic {
                size,
                op,
                dst,
                src,
                offset,
            } => {
                let width = if size == Size::DW {
                    Width::W64
                } else {
                    Width::W32
                };
                let m = MemRef(dst, offset);
                let ty = size_name(size);
                let s = reg_name(width, src);
                match op {
                    // llvm-objdump (default CPU) prints the 32-bit add with an r register.
                    AtomicOp::Add { fetch: false } => write!(f, "lock *({ty} *)({m}) += {src}"),
                    AtomicOp::Or { fetch: false } => write!(f, "lock *({ty} *)({m}) |= {s}"),
                    AtomicOp::And { fetch: false } => write!(f, "lock *({ty} *)({m}) &= {s}"),
                    AtomicOp::Xor { fetch: false } => write!(f, "lock *({ty} *)({m}) ^= {s}"),
                    AtomicOp::Add { .. }
                    | AtomicOp::Or { .. }
                    | AtomicOp::And { .. }
                    | AtomicOp::Xor { .. } => {
                        write!(
                            f,
                            "{s} = atomic_fetch_{}(({ty} *)({m}), {s})",
                            atomic_name(op)
                        )
                    }
                    AtomicOp::Xchg => match width {
                        Width::W64 => write!(f, "{s} = xchg_64({m}, {s})"),
                        Width::W32 => write!(f, "{s} = xchg32_32({m}, {s})"),
                    },
                    AtomicOp::Cmpxchg => {
                        let r0 = reg_name(width, Reg::R0);
                        match width {
                            Width::W64 => write!(f, "{r0} = cmpxchg_64({m}, {r0}, {s})"),
                            Width::W32 => write!(f, "{r0} = cmpxchg32_32({m}, {r0}, {s})"),
                        }
                    }
                }
            }
            Instruction::LoadPacket { size, addr } => {
                let ty = size_name(size);
                match addr {
                    PacketAddr::Abs(imm) => write!(f, "r0 = *({ty} *)skb[{}]", Hex(imm as i64)),
                    PacketAddr::Ind { src, imm: 0 } => write!(f, "r0 = *({ty} *)skb[{src}]"),
                    PacketAddr::Ind { src, imm } if imm < 0 => {
                        write!(f, "r0 = *({ty} *)skb[{src} - {:#x}]", imm.unsigned_abs())
                    }
                    PacketAddr::Ind { src, imm } => {
                        write!(f, "r0 = *({ty} *)skb[{src} + {imm:#x}]")
                    }
                }
            }
        }
    }
}

impl Instruction {
    /// The LLVM-style annotation that makes the text lossless, if any.
    pub fn annotation(&self) -> Option<String> {
        match *self {
            Instruction::Call(CallTarget::Local(rel)) => Some(format!("pc{}", Rel(rel as i64))),
            Instruction::Call(CallTarget::Kfunc { module: 0, .. }) => Some("kfunc".into()),
            Instruction::Call(CallTarget::Kfunc { module, .. }) => {
                Some(format!("kfunc module {module}"))
            }
            _ => None,
        }
    }

    /// Display text plus annotation: what one line of a listing says.
    pub fn text(&self) -> String {
        match self.annotation() {
            Some(a) => format!("{self} <{a}>"),
            None => self.to_string(),
        }
    }
}

/// A plain listing: one instruction per line, no addresses. The assembler
/// reads it back to the same bytes.
pub fn listing(insns: &[crate::Located]) -> String {
    let mut s = String::new();
    for l in insns {
        let _ = writeln!(s, "{}", l.insn.text());
    }
    s
}
