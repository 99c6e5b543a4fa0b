//! Decoding raw slots into [`Instruction`]s and encoding them back.
//!
//! Decoding is strict: every field that RFC 9669 reserves must be zero, so
//! that `encode(decode(x)) == x` holds for every accepted program and a
//! malformed encoding is reported at its instruction index instead of being
//! silently reinterpreted.

use crate::insn::*;
use crate::raw::*;

/// Why a byte sequence is not a valid program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("program length {len} is not a multiple of 8 ({extra} trailing bytes)")]
    TrailingBytes { len: usize, extra: usize },
    #[error("instruction {index}: unknown opcode {code:#04x}")]
    UnknownOpcode { index: usize, code: u8 },
    #[error("instruction {index} (opcode {code:#04x}): {field} must be {expected}, found {found}")]
    ReservedField {
        index: usize,
        code: u8,
        field: &'static str,
        expected: &'static str,
        found: i64,
    },
    #[error("instruction {index} (opcode {code:#04x}): invalid register r{reg} in {field}")]
    BadRegister {
        index: usize,
        code: u8,
        field: &'static str,
        reg: u8,
    },
    #[error("instruction {index}: lddw is missing its second slot")]
    TruncatedLddw { index: usize },
    #[error("instruction {index}: second slot of lddw must have opcode, registers and offset zero")]
    BadLddwSecondSlot { index: usize },
    #[error("instruction {index}: lddw with unknown pseudo source {src}")]
    BadPseudoSource { index: usize, src: u8 },
}

/// A decoded instruction together with its slot index in the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    pub index: usize,
    pub insn: Instruction,
}

/// Decodes a whole program from bytes.
pub fn decode_bytes(bytes: &[u8]) -> Result<Vec<Located>, DecodeError> {
    decode(&raw_slots(bytes)?)
}

/// Decodes a whole program from raw slots.
pub fn decode(slots: &[RawInsn]) -> Result<Vec<Located>, DecodeError> {
    let mut out = Vec::with_capacity(slots.len());
    let mut i = 0;
    while i < slots.len() {
        let insn = decode_at(slots, i)?;
        out.push(Located { index: i, insn });
        i += insn.slots();
    }
    Ok(out)
}

/// Decodes the instruction starting at slot `index` (reading a second slot for lddw).
pub fn decode_at(slots: &[RawInsn], index: usize) -> Result<Instruction, DecodeError> {
    let r = slots[index];
    let ctx = Ctx { index, r };
    match r.class() {
        BPF_ALU | BPF_ALU64 => ctx.alu(),
        BPF_JMP | BPF_JMP32 => ctx.jmp(),
        BPF_LDX => ctx.ldx(),
        BPF_ST | BPF_STX => ctx.store(),
        _ => ctx.ld(slots.get(index + 1).copied()),
    }
}

struct Ctx {
    index: usize,
    r: RawInsn,
}

impl Ctx {
    fn unknown(&self) -> DecodeError {
        DecodeError::UnknownOpcode {
            index: self.index,
            code: self.r.code,
        }
    }

    fn zero(&self, field: &'static str, value: i64) -> Result<(), DecodeError> {
        if value == 0 {
            Ok(())
        } else {
            Err(DecodeError::ReservedField {
                index: self.index,
                code: self.r.code,
                field,
                expected: "0",
                found: value,
            })
        }
    }

    fn reg(&self, field: &'static str, n: u8) -> Result<Reg, DecodeError> {
        Reg::new(n).ok_or(DecodeError::BadRegister {
            index: self.index,
            code: self.r.code,
            field,
            reg: n,
        })
    }

    fn dst(&self) -> Result<Reg, DecodeError> {
        self.reg("dst_reg", self.r.dst)
    }

    fn src(&self) -> Result<Reg, DecodeError> {
        self.reg("src_reg", self.r.src)
    }

    /// Source operand of ALU/JMP: register (checking imm is zero) or immediate
    /// (checking src_reg is zero).
    fn source(&self) -> Result<Source, DecodeError> {
        if self.r.code & BPF_X != 0 {
            self.zero("imm", self.r.imm as i64)?;
            Ok(Source::Reg(self.src()?))
        } else {
            self.zero("src_reg", self.r.src as i64)?;
            Ok(Source::Imm(self.r.imm))
        }
    }

    fn alu(&self) -> Result<Instruction, DecodeError> {
        let r = self.r;
        let width = if r.class() == BPF_ALU64 {
            Width::W64
        } else {
            Width::W32
        };
        let dst = self.dst()?;
        let op = r.code & 0xf0;
        let signed_variant = |plain: AluOp, signed: AluOp| -> Result<AluOp, DecodeError> {
            match r.off {
                0 => Ok(plain),
                1 => Ok(signed),
                other => Err(DecodeError::ReservedField {
                    index: self.index,
                    code: r.code,
                    field: "offset",
                    expected: "0 or 1",
                    found: other as i64,
                }),
            }
        };
        let op = match op {
            BPF_ADD => AluOp::Add,
            BPF_SUB => AluOp::Sub,
            BPF_MUL => AluOp::Mul,
            BPF_DIV => signed_variant(AluOp::Div, AluOp::Sdiv)?,
            BPF_OR => AluOp::Or,
            BPF_AND => AluOp::And,
            BPF_LSH => AluOp::Lsh,
            BPF_RSH => AluOp::Rsh,
            BPF_MOD => signed_variant(AluOp::Mod, AluOp::Smod)?,
            BPF_XOR => AluOp::Xor,
            BPF_ARSH => AluOp::Arsh,
            BPF_MOV => {
                if r.code & BPF_X != 0 && r.off != 0 {
                    let bits = match (r.off, width) {
                        (8, _) | (16, _) => r.off as u8,
                        (32, Width::W64) => 32,
                        _ => {
                            return Err(DecodeError::ReservedField {
                                index: self.index,
                                code: r.code,
                                field: "offset",
                                expected: "0, 8, 16 (or 32 for 64-bit movsx)",
                                found: r.off as i64,
                            });
                        }
                    };
                    self.zero("imm", r.imm as i64)?;
                    return Ok(Instruction::MovSx {
                        width,
                        bits,
                        dst,
                        src: self.src()?,
                    });
                }
                AluOp::Mov
            }
            BPF_NEG => {
                if r.code & BPF_X != 0 {
                    return Err(self.unknown());
                }
                self.zero("src_reg", r.src as i64)?;
                self.zero("offset", r.off as i64)?;
                self.zero("imm", r.imm as i64)?;
                return Ok(Instruction::Neg { width, dst });
            }
            BPF_END => {
                let op = match (width, r.code & BPF_X) {
                    (Width::W32, BPF_TO_LE) => EndianOp::ToLe,
                    (Width::W32, _) => EndianOp::ToBe,
                    (Width::W64, BPF_TO_LE) => EndianOp::Swap,
                    (Width::W64, _) => return Err(self.unknown()),
                };
                self.zero("src_reg", r.src as i64)?;
                self.zero("offset", r.off as i64)?;
                if !matches!(r.imm, 16 | 32 | 64) {
                    return Err(DecodeError::ReservedField {
                        index: self.index,
                        code: r.code,
                        field: "imm",
                        expected: "16, 32 or 64",
                        found: r.imm as i64,
                    });
                }
                return Ok(Instruction::Endian {
                    op,
                    bits: r.imm as u8,
                    dst,
                });
            }
            _ => return Err(self.unknown()),
        };
        if !matches!(op, AluOp::Sdiv | AluOp::Smod) {
            self.zero("offset", r.off as i64)?;
        }
        Ok(Instruction::Alu {
            width,
            op,
            dst,
            src: self.source()?,
        })
    }

    fn jmp(&self) -> Result<Instruction, DecodeError> {
        let r = self.r;
        let width = if r.class() == BPF_JMP {
            Width::W64
        } else {
            Width::W32
        };
        let cond = match r.code & 0xf0 {
            BPF_JA => {
                if r.code & BPF_X != 0 {
                    return Err(self.unknown());
                }
                self.zero("dst_reg", r.dst as i64)?;
                self.zero("src_reg", r.src as i64)?;
                return Ok(match width {
                    Width::W64 => {
                        self.zero("imm", r.imm as i64)?;
                        Instruction::Ja {
                            offset: r.off as i32,
                            long: false,
                        }
                    }
                    Width::W32 => {
                        self.zero("offset", r.off as i64)?;
                        Instruction::Ja {
                            offset: r.imm,
                            long: true,
                        }
                    }
                });
            }
            BPF_CALL if width == Width::W64 => {
                if r.code & BPF_X != 0 {
                    self.zero("src_reg", r.src as i64)?;
                    self.zero("offset", r.off as i64)?;
                    self.zero("imm", r.imm as i64)?;
                    return Ok(Instruction::Callx { reg: self.dst()? });
                }
                self.zero("dst_reg", r.dst as i64)?;
                let target = match r.src {
                    0 => CallTarget::Helper(r.imm),
                    BPF_PSEUDO_CALL => CallTarget::Local(r.imm),
                    BPF_PSEUDO_KFUNC_CALL => {
                        return Ok(Instruction::Call(CallTarget::Kfunc {
                            btf_id: r.imm,
                            module: r.off,
                        }));
                    }
                    other => {
                        return Err(DecodeError::ReservedField {
                            index: self.index,
                            code: r.code,
                            field: "src_reg",
                            expected: "0 (helper), 1 (local) or 2 (kfunc)",
                            found: other as i64,
                        });
                    }
                };
                self.zero("offset", r.off as i64)?;
                return Ok(Instruction::Call(target));
            }
            BPF_EXIT if width == Width::W64 => {
                if r.code & BPF_X != 0 {
                    return Err(self.unknown());
                }
                self.zero("dst_reg", r.dst as i64)?;
                self.zero("src_reg", r.src as i64)?;
                self.zero("offset", r.off as i64)?;
                self.zero("imm", r.imm as i64)?;
                return Ok(Instruction::Exit);
            }
            BPF_JEQ => JmpCond::Eq,
            BPF_JGT => JmpCond::Gt,
            BPF_JGE => JmpCond::Ge,
            BPF_JSET => JmpCond::Set,
            BPF_JNE => JmpCond::Ne,
            BPF_JSGT => JmpCond::Sgt,
            BPF_JSGE => JmpCond::Sge,
            BPF_JLT => JmpCond::Lt,
            BPF_JLE => JmpCond::Le,
            BPF_JSLT => JmpCond::Slt,
            BPF_JSLE => JmpCond::Sle,
            _ => return Err(self.unknown()),
        };
        Ok(Instruction::Jmp {
            width,
            cond,
            dst: self.dst()?,
            src: self.source()?,
            offset: r.off,
        })
    }

    fn size(&self) -> Size {
        match self.r.code & 0x18 {
            BPF_W => Size::W,
            BPF_H => Size::H,
            BPF_B => Size::B,
            _ => Size::DW,
        }
    }

    fn ldx(&self) -> Result<Instruction, DecodeError> {
        let r = self.r;
        let sign_extend = match r.code & 0xe0 {
            BPF_MEM => false,
            BPF_MEMSX if self.size() != Size::DW => true,
            _ => return Err(self.unknown()),
        };
        self.zero("imm", r.imm as i64)?;
        Ok(Instruction::Load {
            size: self.size(),
            sign_extend,
            dst: self.dst()?,
            src: self.src()?,
            offset: r.off,
        })
    }

    fn store(&self) -> Result<Instruction, DecodeError> {
        let r = self.r;
        let dst = self.dst()?;
        match (r.class(), r.code & 0xe0) {
            (BPF_ST, BPF_MEM) => {
                self.zero("src_reg", r.src as i64)?;
                Ok(Instruction::Store {
                    size: self.size(),
                    dst,
                    offset: r.off,
                    src: Source::Imm(r.imm),
                })
            }
            (BPF_STX, BPF_MEM) => {
                self.zero("imm", r.imm as i64)?;
                Ok(Instruction::Store {
                    size: self.size(),
                    dst,
                    offset: r.off,
                    src: Source::Reg(self.src()?),
                })
            }
            (BPF_STX, BPF_ATOMIC) if matches!(self.size(), Size::W | Size::DW) => {
                let op = match r.imm {
                    x if x == BPF_XCHG => AtomicOp::Xchg,
                    x if x == BPF_CMPXCHG => AtomicOp::Cmpxchg,
                    x => {
                        let fetch = x & BPF_FETCH != 0;
                        match x & !BPF_FETCH {
                            0x00 => AtomicOp::Add { fetch },
                            0x40 => AtomicOp::Or { fetch },
                            0x50 => AtomicOp::And { fetch },
                            0xa0 => AtomicOp::Xor { fetch },
                            _ => {
                                return Err(DecodeError::ReservedField {
                                    index: self.index,
                                    code: r.code,
                                    field: "imm (atomic operation)",
                                    expected: "add/or/and/xor[|fetch], xchg or cmpxchg",
                                    found: x as i64,
                                });
                            }
                        }
                    }
                };
                Ok(Instruction::Atomic {
                    size: self.size(),
                    op,
                    dst,
                    src: self.src()?,
                    offset: r.off,
                })
            }
            _ => Err(self.unknown()),
        }
    }

    fn ld(&self, next: Option<RawInsn>) -> Result<Instruction, DecodeError> {
        let r = self.r;
        if r.code == LDDW {
            let Some(n) = next else {
                return Err(DecodeError::TruncatedLddw { index: self.index });
            };
            if n.code != 0 || n.dst != 0 || n.src != 0 || n.off != 0 {
                return Err(DecodeError::BadLddwSecondSlot { index: self.index });
            }
            self.zero("offset", r.off as i64)?;
            let dst = self.dst()?;
            let imm = match r.src {
                0 => Imm64::Value((r.imm as u32 as u64) | ((n.imm as u32 as u64) << 32)),
                BPF_PSEUDO_MAP_FD => {
                    self.zero_next(n)?;
                    Imm64::MapFd(r.imm)
                }
                BPF_PSEUDO_MAP_VALUE => Imm64::MapValue {
                    fd: r.imm,
                    offset: n.imm,
                },
                BPF_PSEUDO_BTF_ID => Imm64::BtfId {
                    btf_id: r.imm,
                    module: n.imm,
                },
                BPF_PSEUDO_FUNC => {
                    self.zero_next(n)?;
                    Imm64::Func(r.imm)
                }
                BPF_PSEUDO_MAP_IDX => {
                    self.zero_next(n)?;
                    Imm64::MapIdx(r.imm)
                }
                BPF_PSEUDO_MAP_IDX_VALUE => Imm64::MapIdxValue {
                    idx: r.imm,
                    offset: n.imm,
                },
                src => {
                    return Err(DecodeError::BadPseudoSource {
                        index: self.index,
                        src,
                    });
                }
            };
            return Ok(Instruction::LoadImm64 { dst, imm });
        }
        let size = self.size();
        if r.class() != BPF_LD || size == Size::DW {
            return Err(self.unknown());
        }
        let addr = match r.code & 0xe0 {
            BPF_ABS => {
                self.zero("src_reg", r.src as i64)?;
                PacketAddr::Abs(r.imm)
            }
            BPF_IND => PacketAddr::Ind {
                src: self.src()?,
                imm: r.imm,
            },
            _ => return Err(self.unknown()),
        };
        self.zero("dst_reg", r.dst as i64)?;
        self.zero("offset", r.off as i64)?;
        Ok(Instruction::LoadPacket { size, addr })
    }

    fn zero_next(&self, n: RawInsn) -> Result<(), DecodeError> {
        self.zero("imm of the second lddw slot", n.imm as i64)
    }
}

fn size_bits(size: Size) -> u8 {
    match size {
        Size::W => BPF_W,
        Size::H => BPF_H,
        Size::B => BPF_B,
        Size::DW => BPF_DW,
    }
}

fn alu_code(op: AluOp) -> (u8, i16) {
    match op {
        AluOp::Add => (BPF_ADD, 0),
        AluOp::Sub => (BPF_SUB, 0),
        AluOp::Mul => (BPF_MUL, 0),
        AluOp::Div => (BPF_DIV, 0),
        AluOp::Sdiv => (BPF_DIV, 1),
        AluOp::Or => (BPF_OR, 0),
        AluOp::And => (BPF_AND, 0),
        AluOp::Lsh => (BPF_LSH, 0),
        AluOp::Rsh => (BPF_RSH, 0),
        AluOp::Mod => (BPF_MOD, 0),
        AluOp::Smod => (BPF_MOD, 1),
        AluOp::Xor => (BPF_XOR, 0),
        AluOp::Mov => (BPF_MOV, 0),
        AluOp::Arsh => (BPF_ARSH, 0),
    }
}

fn cond_code(c: JmpCond) -> u8 {
    match c {
        JmpCond::Eq => BPF_JEQ,
        JmpCond::Gt => BPF_JGT,
        JmpCond::Ge => BPF_JGE,
        JmpCond::Set => BPF_JSET,
        JmpCond::Ne => BPF_JNE,
        JmpCond::Sgt => BPF_JSGT,
        JmpCond::Sge => BPF_JSGE,
        JmpCond::Lt => BPF_JLT,
        JmpCond::Le => BPF_JLE,
        JmpCond::Slt => BPF_JSLT,
        JmpCond::Sle => BPF_JSLE,
    }
}

fn alu_class(w: Width) -> u8 {
    match w {
        Width::W32 => BPF_ALU,
        Width::W64 => BPF_ALU64,
    }
}

fn with_source(code: u8, src: Source) -> (u8, u8, i32) {
    match src {
        Source::Reg(r) => (code | BPF_X, r.num(), 0),
        Source::Imm(i) => (code | BPF_K, 0, i),
    }
}

impl Instruction {
    /// Encodes into one or two raw slots (appended to `out`).
    pub fn encode_into(&self, out: &mut Vec<RawInsn>) {
        let one = |code, dst: u8, src: u8, off, imm| RawInsn::new(code, dst, src, off, imm);
        let insn = match *self {
            Instruction::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let (opc, off) = alu_code(op);
                let (code, s, imm) = with_source(alu_class(width) | opc, src);
                one(code, dst.num(), s, off, imm)
            }
            Instruction::MovSx {
                width,
                bits,
                dst,
                src,
            } => one(
                alu_class(width) | BPF_MOV | BPF_X,
                dst.num(),
                src.num(),
                bits as i16,
                0,
            ),
            Instruction::Neg { width, dst } => one(alu_class(width) | BPF_NEG, dst.num(), 0, 0, 0),
            Instruction::Endian { op, bits, dst } => {
                let code = match op {
                    EndianOp::ToLe => BPF_ALU | BPF_END | BPF_TO_LE,
                    EndianOp::ToBe => BPF_ALU | BPF_END | BPF_TO_BE,
                    EndianOp::Swap => BPF_ALU64 | BPF_END,
                };
                one(code, dst.num(), 0, 0, bits as i32)
            }
            Instruction::Ja { offset, long } => {
                if long {
                    one(BPF_JMP32 | BPF_JA, 0, 0, 0, offset)
                } else {
                    one(BPF_JMP | BPF_JA, 0, 0, offset as i16, 0)
                }
            }
            Instruction::Jmp {
                width,
                cond,
                dst,
                src,
                offset,
            } => {
                let class = match width {
                    Width::W32 => BPF_JMP32,
                    Width::W64 => BPF_JMP,
                };
                let (code, s, imm) = with_source(class | cond_code(cond), src);
                one(code, dst.num(), s, offset, imm)
            }
            Instruction::Call(t) => {
                let (src, off, imm) = match t {
                    CallTarget::Helper(id) => (0, 0, id),
                    CallTarget::Local(rel) => (BPF_PSEUDO_CALL, 0, rel),
                    CallTarget::Kfunc { btf_id, module } => (BPF_PSEUDO_KFUNC_CALL, module, btf_id),
                };
                one(BPF_JMP | BPF_CALL, 0, src, off, imm)
            }
            Instruction::Callx { reg } => one(BPF_JMP | BPF_CALL | BPF_X, reg.num(), 0, 0, 0),
            Instruction::Exit => one(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
            Instruction::LoadImm64 { dst, imm } => {
                let (src, lo, hi) = match imm {
                    Imm64::Value(v) => (0, v as u32 as i32, (v >> 32) as u32 as i32),
                    Imm64::MapFd(fd) => (BPF_PSEUDO_MAP_FD, fd, 0),
                    Imm64::MapValue { fd, offset } => (BPF_PSEUDO_MAP_VALUE, fd, offset),
                    Imm64::BtfId { btf_id, module } => (BPF_PSEUDO_BTF_ID, btf_id, module),
                    Imm64::Func(rel) => (BPF_PSEUDO_FUNC, rel, 0),
                    Imm64::MapIdx(idx) => (BPF_PSEUDO_MAP_IDX, idx, 0),
                    Imm64::MapIdxValue { idx, offset } => (BPF_PSEUDO_MAP_IDX_VALUE, idx, offset),
                };
                out.push(one(LDDW, dst.num(), src, 0, lo));
                one(0, 0, 0, 0, hi)
            }
            Instruction::Load {
                size,
                sign_extend,
                dst,
                src,
                offset,
            } => {
                let mode = if sign_extend { BPF_MEMSX } else { BPF_MEM };
                one(
                    BPF_LDX | mode | size_bits(size),
                    dst.num(),
                    src.num(),
                    offset,
                    0,
                )
            }
            Instruction::Store {
                size,
                dst,
                offset,
                src,
            } => match src {
                Source::Imm(imm) => one(
                    BPF_ST | BPF_MEM | size_bits(size),
                    dst.num(),
                    0,
                    offset,
                    imm,
                ),
                Source::Reg(r) => one(
                    BPF_STX | BPF_MEM | size_bits(size),
                    dst.num(),
                    r.num(),
                    offset,
                    0,
                ),
            },
            Instruction::Atomic {
                size,
                op,
                dst,
                src,
                offset,
            } => {
                let f = |fetch: bool| if fetch { BPF_FETCH } else { 0 };
                let imm = match op {
                    AtomicOp::Add { fetch } => f(fetch),
                    AtomicOp::Or { fetch } => 0x40 | f(fetch),
                    AtomicOp::And { fetch } => 0x50 | f(fetch),
                    AtomicOp::Xor { fetch } => 0xa0 | f(fetch),
                    AtomicOp::Xchg => BPF_XCHG,
                    AtomicOp::Cmpxchg => BPF_CMPXCHG,
                };
                one(
                    BPF_STX | BPF_ATOMIC | size_bits(size),
                    dst.num(),
                    src.num(),
                    offset,
                    imm,
                )
            }
            Instruction::LoadPacket { size, addr } => match addr {
                PacketAddr::Abs(imm) => one(BPF_LD | BPF_ABS | size_bits(size), 0, 0, 0, imm),
                PacketAddr::Ind { src, imm } => {
                    one(BPF_LD | BPF_IND | size_bits(size), 0, src.num(), 0, imm)
                }
            },
        };
        out.push(insn);
    }

    /// Encodes into raw slots.
    pub fn encode(&self) -> Vec<RawInsn> {
        let mut v = Vec::with_capacity(2);
        self.encode_into(&mut v);
        v
    }
}

/// Encodes a sequence of instructions into raw slots.
pub fn encode_all<'a>(insns: impl IntoIterator<Item = &'a Instruction>) -> Vec<RawInsn> {
    let mut out = Vec::new();
    for i in insns {
        i.encode_into(&mut out);
    }
    out
}
