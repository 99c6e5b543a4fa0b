//! Classic to eBPF, as the kernel translates a socket filter before it
//! runs it (`bpf_convert_filter`, net/core/filter.c): A in r0, X in r7,
//! the context (`struct __sk_buff`) in r6, scratch memory `M[k]` in the
//! stack at `fp - 4 * (16 - k)`, packet loads as the legacy `LD_ABS`/
//! `LD_IND` instructions (out of bounds: the filter returns 0), ancillary
//! loads as context reads or helper calls, division by X == 0 returning 0.
//! The result runs in every oxbpf engine as a socket filter.

use oxbpf_isa::{
    AluOp, CallTarget, EndianOp, Instruction as I, JmpCond, PacketAddr, Reg, Size, Source, Width,
};

use crate::{Insn, MEMWORDS, class, misc, mode, op, rval, size, skf, src};

const A: Reg = Reg::R0;
const CTX: Reg = Reg::R6;
fn x() -> Reg {
    Reg::new(7).expect("r7")
}
fn tmp() -> Reg {
    Reg::new(8).expect("r8")
}

/// Why a classic program has no eBPF translation here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {pc}: {msg}")]
pub struct TranslateError {
    pub pc: usize,
    pub msg: String,
}

/// `struct __sk_buff` fields the ancillary loads read.
mod skb {
    pub const LEN: i16 = 0;
    pub const PKT_TYPE: i16 = 4;
    pub const MARK: i16 = 8;
    pub const QUEUE_MAPPING: i16 = 12;
    pub const PROTOCOL: i16 = 16;
    pub const VLAN_PRESENT: i16 = 20;
    pub const VLAN_TCI: i16 = 24;
    pub const VLAN_PROTO: i16 = 28;
    pub const IFINDEX: i16 = 40;
    pub const HASH: i16 = 68;
}

fn alu(o: AluOp, dst: Reg, s: Source) -> I {
    I::Alu {
        width: Width::W32,
        op: o,
        dst,
        src: s,
    }
}

fn ctx_load(dst: Reg, off: i16) -> I {
    I::Load {
        size: Size::W,
        sign_extend: false,
        dst,
        src: CTX,
        offset: off,
    }
}

fn mem_off(k: u32) -> i16 {
    -(4 * (MEMWORDS - k) as i16)
}

/// The eBPF for one classic instruction at `pc`, its jumps as
/// `Target`s to patch once every instruction's position is known.
enum Out {
    Insn(I),
    /// A conditional jump (32-bit) to classic instruction `to`.
    Jmp(JmpCond, Source, usize),
    /// An unconditional jump to classic instruction `to`.
    Ja(usize),
}

fn one(i: Insn, pc: usize) -> Result<Vec<Out>, TranslateError> {
    use Out::Insn as E;
    let bad = |msg: String| Err(TranslateError { pc, msg });
    let c = i.class();
    let k = i.k;
    let sz = |code: u16| match code & 0x18 {
        size::W => Size::W,
        size::H => Size::H,
        _ => Size::B,
    };
    let mut v = Vec::new();
    match c {
        class::LD | class::LDX => {
            let dst = if c == class::LD { A } else { x() };
            match i.code & 0xe0 {
                mode::ABS if c == class::LD && k >= skf::AD_OFF => {
                    let Some(name) = skf::ancillary(k) else {
                        return bad(format!(
                            "unknown ancillary load SKF_AD_OFF+{}",
                            k - skf::AD_OFF
                        ));
                    };
                    let field = |off| vec![E(ctx_load(A, off))];
                    let be16 = |off| {
                        vec![
                            E(ctx_load(A, off)),
                            E(I::Endian {
                                op: EndianOp::ToBe,
                                bits: 16,
                                dst: A,
                            }),
                        ]
                    };
                    v = match name {
                        "proto" => be16(skb::PROTOCOL),
                        "type" => field(skb::PKT_TYPE),
                        "ifidx" => field(skb::IFINDEX),
                        "mark" => field(skb::MARK),
                        "queue" => field(skb::QUEUE_MAPPING),
                        "rxhash" => field(skb::HASH),
                        "vlan_tci" => field(skb::VLAN_TCI),
                        "vlanp" => field(skb::VLAN_PRESENT),
                        "vlan_tpid" => be16(skb::VLAN_PROTO),
                        "xor_x" => vec![E(alu(AluOp::Xor, A, Source::Reg(x())))],
                        "cpu" => vec![E(I::Call(CallTarget::Helper(
                            oxbpf_isa_helper::GET_SMP_PROCESSOR_ID,
                        )))],
                        "rand" => vec![E(I::Call(CallTarget::Helper(
                            oxbpf_isa_helper::GET_PRANDOM_U32,
                        )))],
                        other => {
                            return bad(format!(
                                "ancillary load {other} (SKF_AD_OFF+{}) reads kernel state a socket filter's context does not show",
                                k - skf::AD_OFF
                            ));
                        }
                    };
                }
                mode::ABS | mode::IND if c == class::LD => {
                    if (skf::LL_OFF..skf::AD_OFF).contains(&k) {
                        return bad(
                            "SKF_NET_OFF/SKF_LL_OFF relative loads are not translated".into()
                        );
                    }
                    let addr = if i.code & 0xe0 == mode::ABS {
                        PacketAddr::Abs(k as i32)
                    } else {
                        PacketAddr::Ind {
                            src: x(),
                            imm: k as i32,
                        }
                    };
                    v.push(E(I::LoadPacket {
                        size: sz(i.code),
                        addr,
                    }));
                }
                mode::LEN => v.push(E(ctx_load(dst, skb::LEN))),
                mode::IMM => v.push(E(alu(AluOp::Mov, dst, Source::Imm(k as i32)))),
                mode::MEM => v.push(E(I::Load {
                    size: Size::W,
                    sign_extend: false,
                    dst,
                    src: Reg::FP,
                    offset: mem_off(k),
                })),
                mode::MSH if c == class::LDX => {
                    // X = 4 * (pkt[k] & 0xf), A kept.
                    v.push(E(alu(AluOp::Mov, tmp(), Source::Reg(A))));
                    v.push(E(I::LoadPacket {
                        size: Size::B,
                        addr: PacketAddr::Abs(k as i32),
                    }));
                    v.push(E(alu(AluOp::And, A, Source::Imm(0xf))));
                    v.push(E(alu(AluOp::Lsh, A, Source::Imm(2))));
                    v.push(E(alu(AluOp::Mov, x(), Source::Reg(A))));
                    v.push(E(alu(AluOp::Mov, A, Source::Reg(tmp()))));
                }
                _ => return bad(format!("unknown opcode 0x{:02x}", i.code)),
            }
        }
        class::ST | class::STX => v.push(E(I::Store {
            size: Size::W,
            dst: Reg::FP,
            offset: mem_off(k),
            src: Source::Reg(if c == class::ST { A } else { x() }),
        })),
        class::ALU => {
            let o = match i.code & 0xf0 {
                op::ADD => AluOp::Add,
                op::SUB => AluOp::Sub,
                op::MUL => AluOp::Mul,
                op::DIV => AluOp::Div,
                op::MOD => AluOp::Mod,
                op::AND => AluOp::And,
                op::OR => AluOp::Or,
                op::XOR => AluOp::Xor,
                op::LSH => AluOp::Lsh,
                op::RSH => AluOp::Rsh,
                op::NEG => {
                    v.push(E(I::Neg {
                        width: Width::W32,
                        dst: A,
                    }));
                    return Ok(v);
                }
                _ => return bad(format!("unknown opcode 0x{:02x}", i.code)),
            };
            let s = if i.code & 0x08 == src::X {
                if matches!(o, AluOp::Div | AluOp::Mod) {
                    // Division by X == 0: the filter returns 0.
                    v.push(E(I::Jmp {
                        width: Width::W64,
                        cond: JmpCond::Ne,
                        dst: x(),
                        src: Source::Imm(0),
                        offset: 2,
                    }));
                    v.push(E(alu(AluOp::Mov, A, Source::Imm(0))));
                    v.push(E(I::Exit));
                }
                Source::Reg(x())
            } else {
                Source::Imm(k as i32)
            };
            v.push(E(alu(o, A, s)));
        }
        class::JMP => {
            if i.code & 0xf0 == op::JA {
                v.push(Out::Ja(pc + 1 + k as usize));
                return Ok(v);
            }
            let cond = match i.code & 0xf0 {
                op::JEQ => JmpCond::Eq,
                op::JGT => JmpCond::Gt,
                op::JGE => JmpCond::Ge,
                op::JSET => JmpCond::Set,
                _ => return bad(format!("unknown opcode 0x{:02x}", i.code)),
            };
            let s = if i.code & 0x08 == src::X {
                Source::Reg(x())
            } else {
                Source::Imm(k as i32)
            };
            let (t, f) = (pc + 1 + i.jt as usize, pc + 1 + i.jf as usize);
            if t == f {
                v.push(Out::Ja(t));
            } else if f == pc + 1 {
                v.push(Out::Jmp(cond, s, t));
            } else if t == pc + 1 && cond != JmpCond::Set {
                let inv = match cond {
                    JmpCond::Eq => JmpCond::Ne,
                    JmpCond::Gt => JmpCond::Le,
                    _ => JmpCond::Lt,
                };
                v.push(Out::Jmp(inv, s, f));
            } else {
                v.push(Out::Jmp(cond, s, t));
                v.push(Out::Ja(f));
            }
        }
        class::RET => {
            match i.code & 0x18 {
                rval::K => v.push(E(alu(AluOp::Mov, A, Source::Imm(k as i32)))),
                rval::A => {}
                _ => return bad(format!("unknown opcode 0x{:02x}", i.code)),
            }
            v.push(E(I::Exit));
        }
        class::MISC => match i.code & 0xf8 {
            misc::TAX => v.push(E(alu(AluOp::Mov, x(), Source::Reg(A)))),
            misc::TXA => v.push(E(alu(AluOp::Mov, A, Source::Reg(x())))),
            _ => return bad(format!("unknown opcode 0x{:02x}", i.code)),
        },
        _ => return bad(format!("unknown opcode 0x{:02x}", i.code)),
    }
    Ok(v)
}

/// Helper ids the translation calls.
mod oxbpf_isa_helper {
    pub const GET_PRANDOM_U32: i32 = 7;
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
}

/// Translates a classic program (which must pass [`crate::validate`]) to
/// eBPF for a socket filter (`r1` = `struct __sk_buff *`); `r0` at exit is
/// the classic return value.
pub fn to_ebpf(insns: &[Insn]) -> Result<Vec<I>, TranslateError> {
    crate::validate(insns).map_err(|e| TranslateError {
        pc: match &e {
            crate::ValidateError::Opcode { pc, .. } | crate::ValidateError::Rule { pc, .. } => *pc,
            crate::ValidateError::Length(_) => 0,
        },
        msg: e.to_string(),
    })?;
    let prologue = [
        I::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: CTX,
            src: Source::Reg(Reg::R1),
        },
        alu(AluOp::Mov, A, Source::Imm(0)),
        alu(AluOp::Mov, x(), Source::Imm(0)),
    ];
    let parts: Vec<Vec<Out>> = insns
        .iter()
        .enumerate()
        .map(|(pc, i)| one(*i, pc))
        .collect::<Result<_, _>>()?;
    // Where each classic instruction starts in the eBPF.
    let mut start = Vec::with_capacity(parts.len() + 1);
    let mut at = prologue.len();
    for p in &parts {
        start.push(at);
        at += p.len();
    }
    start.push(at);
    let mut out: Vec<I> = prologue.to_vec();
    for p in parts {
        for o in p {
            let here = out.len() as i64;
            let rel = |to: usize| (start[to] as i64 - here - 1) as i16;
            out.push(match o {
                Out::Insn(i) => i,
                Out::Ja(to) => I::Ja {
                    offset: rel(to) as i32,
                    long: false,
                },
                Out::Jmp(cond, s, to) => I::Jmp {
                    width: Width::W32,
                    cond,
                    dst: A,
                    src: s,
                    offset: rel(to),
                },
            });
        }
    }
    Ok(out)
}
