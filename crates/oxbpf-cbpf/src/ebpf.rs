//! Classic to eBPF, as the kernel translates a socket filter before it
//! runs it (`bpf_convert_filter`, net/core/filter.c): A in r0, X in r7,
//! the context (`struct __sk_buff`) in r6, scratch memory `M[k]` in the
//! stack at `fp - 4 * (16 - k)`, packet loads as the legacy `LD_ABS`/
//! `LD_IND` instructions (out of bounds: the filter returns 0), ancillary
//! loads as context reads or helper calls, division by X == 0 returning 0.
//! The result runs in every oxbpf engine as a socket filter.
//!
//! For tc and XDP ([`Hook`]) the same filter reads the packet directly
//! (`data`..`data_end`, a bounds check before every load: past the end is
//! the classic 0) and its verdict becomes the hook's: kept is `TC_ACT_OK`
//! or `XDP_PASS`, dropped `TC_ACT_SHOT` or `XDP_DROP`.

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
/// The packet's start (tc and XDP).
fn data() -> Reg {
    Reg::new(9).expect("r9")
}
fn r(n: u8) -> Reg {
    Reg::new(n).expect("a register")
}

/// Where a translated filter runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Hook {
    /// A socket filter (`SO_ATTACH_BPF`): `r0` is the classic return value
    /// (the bytes kept).
    #[default]
    SocketFilter,
    /// A tc classifier (`BPF_PROG_TYPE_SCHED_CLS`, direct action).
    Tc,
    /// XDP (no ancillary loads: an XDP context has no skb).
    Xdp,
}

impl Hook {
    /// (kept, dropped) return values.
    fn verdicts(self) -> (i32, i32) {
        match self {
            Hook::SocketFilter => (0, 0),
            // TC_ACT_OK, TC_ACT_SHOT
            Hook::Tc => (0, 2),
            // XDP_PASS, XDP_DROP
            Hook::Xdp => (2, 1),
        }
    }

    /// Offsets of `data` and `data_end` in the context.
    fn data_fields(self) -> (i16, i16) {
        match self {
            Hook::Xdp => (0, 4),
            _ => (76, 80),
        }
    }
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
    /// A 64-bit conditional jump to the end that drops (tc, XDP).
    Drop(JmpCond, Reg, Source),
}

/// A direct, bounds-checked packet load into `dst` (tc, XDP): the offset
/// is `k`, plus X when `ind`; past `data_end` the filter drops.
fn direct_load(hook: Hook, dst: Reg, sz: Size, k: u32, ind: bool) -> Vec<Out> {
    use Out::Insn as E;
    let (ptr, end, scratch) = (r(2), r(3), r(4));
    let width = match sz {
        Size::B => 1,
        Size::H => 2,
        _ => 4,
    };
    let mut v = Vec::new();
    if ind {
        // X + k as the classic machine computes it (32 bits, negative
        // ends the filter), bounded for the verifier.
        v.push(E(alu(AluOp::Mov, ptr, Source::Reg(x()))));
        v.push(E(alu(AluOp::Add, ptr, Source::Imm(k as i32))));
        v.push(Out::Drop(JmpCond::Gt, ptr, Source::Imm(0xffff)));
        v.push(E(I::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst: ptr,
            src: Source::Reg(data()),
        }));
    } else {
        if k > 0xffff {
            // No packet is that long.
            v.push(Out::Drop(JmpCond::Eq, r(0), Source::Reg(r(0))));
            return v;
        }
        v.push(E(I::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: ptr,
            src: Source::Reg(data()),
        }));
        v.push(E(I::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst: ptr,
            src: Source::Imm(k as i32),
        }));
    }
    v.push(E(I::Load {
        size: Size::W,
        sign_extend: false,
        dst: end,
        src: CTX,
        offset: hook.data_fields().1,
    }));
    v.push(E(I::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: scratch,
        src: Source::Reg(ptr),
    }));
    v.push(E(I::Alu {
        width: Width::W64,
        op: AluOp::Add,
        dst: scratch,
        src: Source::Imm(width),
    }));
    v.push(Out::Drop(JmpCond::Gt, scratch, Source::Reg(end)));
    v.push(E(I::Load {
        size: sz,
        sign_extend: false,
        dst,
        src: ptr,
        offset: 0,
    }));
    if width > 1 {
        v.push(E(I::Endian {
            op: EndianOp::ToBe,
            bits: 8 * width as u8,
            dst,
        }));
    }
    v
}

fn one(i: Insn, pc: usize, hook: Hook) -> Result<Vec<Out>, TranslateError> {
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
                    if hook == Hook::Xdp {
                        return bad(
                            "ancillary loads read the skb, which XDP programs have none of".into(),
                        );
                    }
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
                    if hook != Hook::SocketFilter {
                        return Ok(direct_load(
                            hook,
                            A,
                            sz(i.code),
                            k,
                            i.code & 0xe0 == mode::IND,
                        ));
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
                mode::LEN if hook == Hook::Xdp => {
                    // data_end - data.
                    v.push(E(ctx_load(dst, hook.data_fields().1)));
                    v.push(E(I::Alu {
                        width: Width::W64,
                        op: AluOp::Sub,
                        dst,
                        src: Source::Reg(data()),
                    }));
                    v.push(E(alu(AluOp::Mov, dst, Source::Reg(dst))));
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
                mode::MSH if c == class::LDX && hook != Hook::SocketFilter => {
                    v = direct_load(hook, x(), Size::B, k, false);
                    v.push(E(alu(AluOp::And, x(), Source::Imm(0xf))));
                    v.push(E(alu(AluOp::Lsh, x(), Source::Imm(2))));
                }
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
                    let (_, dropped) = hook.verdicts();
                    v.push(E(alu(AluOp::Mov, A, Source::Imm(dropped))));
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
        class::RET if hook != Hook::SocketFilter => {
            let (kept, dropped) = hook.verdicts();
            match i.code & 0x18 {
                rval::K => {
                    v.push(E(alu(
                        AluOp::Mov,
                        A,
                        Source::Imm(if k != 0 { kept } else { dropped }),
                    )));
                    v.push(E(I::Exit));
                }
                rval::A => {
                    // Kept when A is not 0.
                    v.push(E(I::Jmp {
                        width: Width::W32,
                        cond: JmpCond::Eq,
                        dst: A,
                        src: Source::Imm(0),
                        offset: 2,
                    }));
                    v.push(E(alu(AluOp::Mov, A, Source::Imm(kept))));
                    v.push(E(I::Exit));
                    v.push(E(alu(AluOp::Mov, A, Source::Imm(dropped))));
                    v.push(E(I::Exit));
                }
                _ => return bad(format!("unknown opcode 0x{:02x}", i.code)),
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
    pub const SKB_PULL_DATA: i32 = 39;
}

/// Translates a classic program (which must pass [`crate::validate`]) to
/// eBPF for a socket filter (`r1` = `struct __sk_buff *`); `r0` at exit is
/// the classic return value.
pub fn to_ebpf(insns: &[Insn]) -> Result<Vec<I>, TranslateError> {
    to_ebpf_for(insns, Hook::SocketFilter)
}

/// [`to_ebpf`] for a hook: a socket filter, or a tc or XDP program that
/// passes the packets the filter keeps and drops the others.
pub fn to_ebpf_for(insns: &[Insn], hook: Hook) -> Result<Vec<I>, TranslateError> {
    crate::validate(insns).map_err(|e| TranslateError {
        pc: match &e {
            crate::ValidateError::Opcode { pc, .. } | crate::ValidateError::Rule { pc, .. } => *pc,
            crate::ValidateError::Length(_) => 0,
        },
        msg: e.to_string(),
    })?;
    let mut prologue = vec![I::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst: CTX,
        src: Source::Reg(Reg::R1),
    }];
    if hook == Hook::Tc {
        // The whole packet in the linear part, where direct access reads
        // (bpf_skb_pull_data(skb, skb->len); a failure leaves it as it is).
        prologue.push(ctx_load(r(2), skb::LEN));
        prologue.push(I::Call(CallTarget::Helper(oxbpf_isa_helper::SKB_PULL_DATA)));
    }
    if hook != Hook::SocketFilter {
        prologue.push(I::Load {
            size: Size::W,
            sign_extend: false,
            dst: data(),
            src: CTX,
            offset: hook.data_fields().0,
        });
    }
    prologue.push(alu(AluOp::Mov, A, Source::Imm(0)));
    prologue.push(alu(AluOp::Mov, x(), Source::Imm(0)));
    let parts: Vec<Vec<Out>> = insns
        .iter()
        .enumerate()
        .map(|(pc, i)| one(*i, pc, hook))
        .collect::<Result<_, _>>()?;
    // Where each classic instruction starts in the eBPF.
    let mut start = Vec::with_capacity(parts.len() + 1);
    let mut at = prologue.len();
    for p in &parts {
        start.push(at);
        at += p.len();
    }
    start.push(at);
    // The drop block follows the last instruction, when anything jumps
    // there (the kernel refuses unreachable code).
    let drop_at = at;
    let drops = parts.iter().flatten().any(|o| matches!(o, Out::Drop(..)));
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
                Out::Drop(cond, dst, s) => I::Jmp {
                    width: Width::W64,
                    cond,
                    dst,
                    src: s,
                    offset: (drop_at as i64 - here - 1) as i16,
                },
            });
        }
    }
    if drops {
        out.push(alu(AluOp::Mov, A, Source::Imm(hook.verdicts().1)));
        out.push(I::Exit);
    }
    Ok(out)
}
