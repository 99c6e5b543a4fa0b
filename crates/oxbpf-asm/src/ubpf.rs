//! The bpf_conformance/ubpf dialect: `mnemonic operand, operand, ...`.

use oxbpf_isa::*;

use crate::lex::Kind;
use crate::{Cur, PResult, Stmt, Target};

fn pct_reg(c: &mut Cur) -> PResult<Reg> {
    let col = c.col();
    match c.peek() {
        Some(Kind::PctReg(name)) => {
            let r = name
                .strip_prefix('r')
                .and_then(|n| n.parse::<u8>().ok())
                .and_then(Reg::new)
                .ok_or((col, format!("invalid register `%{name}` (use %r0..%r10)")))?;
            c.pos += 1;
            Ok(r)
        }
        _ => c.err(format!("expected a register such as %r1{}", c.found())),
    }
}

fn is_pct_reg(c: &Cur) -> bool {
    matches!(c.peek(), Some(Kind::PctReg(_)))
}

/// `[%r1+8]`, `[%r1-8]`, `[%r1]`
fn mem(c: &mut Cur) -> PResult<(Reg, i16)> {
    c.expect_punct("[")?;
    let r = pct_reg(c)?;
    let off = if c.is_punct("+") || c.is_punct("-") {
        c.off16()?
    } else {
        0
    };
    c.expect_punct("]")?;
    Ok((r, off))
}

fn comma(c: &mut Cur) -> PResult<()> {
    c.expect_punct(",")
}

fn source(c: &mut Cur) -> PResult<Source> {
    if is_pct_reg(c) {
        Ok(Source::Reg(pct_reg(c)?))
    } else {
        Ok(Source::Imm(c.imm32()?))
    }
}

fn with_target(insn: Instruction, t: Target) -> PResult<Stmt> {
    match t {
        Target::Rel(r) => crate::patch(insn, r).map(Stmt::Insn),
        l => Ok(Stmt::Fixup(insn, l)),
    }
}

fn split_width(m: &str) -> (&str, Width) {
    match m.strip_suffix("32") {
        Some(base) => (base, Width::W32),
        None => (m, Width::W64),
    }
}

fn alu_op(base: &str) -> Option<AluOp> {
    Some(match base {
        "add" => AluOp::Add,
        "sub" => AluOp::Sub,
        "mul" => AluOp::Mul,
        "div" => AluOp::Div,
        "sdiv" => AluOp::Sdiv,
        "or" => AluOp::Or,
        "and" => AluOp::And,
        "lsh" => AluOp::Lsh,
        "rsh" => AluOp::Rsh,
        "mod" => AluOp::Mod,
        "smod" => AluOp::Smod,
        "xor" => AluOp::Xor,
        "mov" => AluOp::Mov,
        "arsh" => AluOp::Arsh,
        _ => return None,
    })
}

fn jmp_cond(base: &str) -> Option<JmpCond> {
    Some(match base {
        "jeq" => JmpCond::Eq,
        "jgt" => JmpCond::Gt,
        "jge" => JmpCond::Ge,
        "jset" => JmpCond::Set,
        "jne" => JmpCond::Ne,
        "jsgt" => JmpCond::Sgt,
        "jsge" => JmpCond::Sge,
        "jlt" => JmpCond::Lt,
        "jle" => JmpCond::Le,
        "jslt" => JmpCond::Slt,
        "jsle" => JmpCond::Sle,
        _ => return None,
    })
}

fn size_suffix(s: &str) -> Option<Size> {
    Some(match s {
        "b" => Size::B,
        "h" => Size::H,
        "w" => Size::W,
        "dw" => Size::DW,
        _ => return None,
    })
}

pub(crate) fn statement(c: &mut Cur) -> PResult<Stmt> {
    let col = c.col();
    let m = match c.next() {
        Some(Kind::Ident(m)) => m.clone(),
        _ => return Err((col, "expected an instruction mnemonic".into())),
    };
    let stmt = mnemonic(c, &m, col)?;
    c.expect_end()?;
    Ok(stmt)
}

fn mnemonic(c: &mut Cur, m: &str, col: usize) -> PResult<Stmt> {
    let insn = |i| Ok(Stmt::Insn(i));
    match m {
        "exit" => return insn(Instruction::Exit),
        "ja" | "ja32" => {
            let t = c.target()?;
            return with_target(
                Instruction::Ja {
                    offset: 0,
                    long: m == "ja32",
                },
                t,
            );
        }
        "call" => return call(c),
        "lddw" => {
            let dst = pct_reg(c)?;
            comma(c)?;
            let v = c.imm64()?;
            return insn(Instruction::LoadImm64 {
                dst,
                imm: Imm64::Value(v),
            });
        }
        "lock" => return lock(c),
        _ => {}
    }
    // Endianness: le16 be32 bswap64 swap16
    for (prefix, op) in [
        ("le", EndianOp::ToLe),
        ("be", EndianOp::ToBe),
        ("bswap", EndianOp::Swap),
        ("swap", EndianOp::Swap),
    ] {
        if let Some(bits) = m.strip_prefix(prefix)
            && let Ok(bits @ (16 | 32 | 64)) = bits.parse::<u8>()
        {
            let dst = pct_reg(c)?;
            return insn(Instruction::Endian { op, bits, dst });
        }
    }
    // movsx832 movsx864 movsx1632 movsx1664 movsx3264
    if let Some(rest) = m.strip_prefix("movsx") {
        let (bits, width) = match rest {
            "832" => (8, Width::W32),
            "864" => (8, Width::W64),
            "1632" => (16, Width::W32),
            "1664" => (16, Width::W64),
            "3264" => (32, Width::W64),
            _ => return Err((col, format!("unknown mnemonic `{m}`"))),
        };
        let dst = pct_reg(c)?;
        comma(c)?;
        let src = pct_reg(c)?;
        return insn(Instruction::MovSx {
            width,
            bits,
            dst,
            src,
        });
    }
    // Loads: ldxw, ldxsb ...; legacy ldabsw / ldindw
    if let Some(rest) = m.strip_prefix("ldx") {
        let (signed, sz) = match rest.strip_prefix('s') {
            Some(s) if size_suffix(s).is_some_and(|z| z != Size::DW) => (true, s),
            _ => (false, rest),
        };
        if let Some(size) = size_suffix(sz) {
            let dst = pct_reg(c)?;
            comma(c)?;
            let (src, offset) = mem(c)?;
            return insn(Instruction::Load {
                size,
                sign_extend: signed,
                dst,
                src,
                offset,
            });
        }
    }
    if let Some(sz) = m.strip_prefix("ldabs")
        && let Some(size) = size_suffix(sz).filter(|s| *s != Size::DW)
    {
        return insn(Instruction::LoadPacket {
            size,
            addr: PacketAddr::Abs(c.imm32()?),
        });
    }
    if let Some(sz) = m.strip_prefix("ldind")
        && let Some(size) = size_suffix(sz).filter(|s| *s != Size::DW)
    {
        let src = pct_reg(c)?;
        comma(c)?;
        let imm = c.imm32()?;
        return insn(Instruction::LoadPacket {
            size,
            addr: PacketAddr::Ind { src, imm },
        });
    }
    // Stores: stxw [..], %r; stw [..], imm
    if let Some(sz) = m.strip_prefix("stx")
        && let Some(size) = size_suffix(sz)
    {
        let (dst, offset) = mem(c)?;
        comma(c)?;
        let src = pct_reg(c)?;
        return insn(Instruction::Store {
            size,
            dst,
            offset,
            src: Source::Reg(src),
        });
    }
    if let Some(sz) = m.strip_prefix("st")
        && let Some(size) = size_suffix(sz)
    {
        let (dst, offset) = mem(c)?;
        comma(c)?;
        let imm = c.imm32()?;
        return insn(Instruction::Store {
            size,
            dst,
            offset,
            src: Source::Imm(imm),
        });
    }
    let (base, width) = split_width(m);
    if base == "neg" {
        let dst = pct_reg(c)?;
        return insn(Instruction::Neg { width, dst });
    }
    if let Some(op) = alu_op(base) {
        let dst = pct_reg(c)?;
        comma(c)?;
        let src = source(c)?;
        return insn(Instruction::Alu {
            width,
            op,
            dst,
            src,
        });
    }
    if let Some(cond) = jmp_cond(base) {
        let dst = pct_reg(c)?;
        comma(c)?;
        let src = source(c)?;
        comma(c)?;
        let t = c.target()?;
        return with_target(
            Instruction::Jmp {
                width,
                cond,
                dst,
                src,
                offset: 0,
            },
            t,
        );
    }
    Err((col, format!("unknown mnemonic `{m}`")))
}

/// `call N`, `call helper N`, `call local label`, `call runtime N`, `call %rN`.
fn call(c: &mut Cur) -> PResult<Stmt> {
    if is_pct_reg(c) {
        return Ok(Stmt::Insn(Instruction::Callx { reg: pct_reg(c)? }));
    }
    if c.eat_ident("local") {
        let t = c.target()?;
        return with_target(Instruction::Call(CallTarget::Local(0)), t);
    }
    if c.eat_ident("runtime") || c.eat_ident("kfunc") {
        let id = c.imm32()?;
        return Ok(Stmt::Insn(Instruction::Call(CallTarget::Kfunc {
            btf_id: id,
            module: 0,
        })));
    }
    c.eat_ident("helper");
    Ok(Stmt::Insn(Instruction::Call(CallTarget::Helper(
        c.imm32()?,
    ))))
}

/// `lock [fetch] op[32] [%rD+off], %rS`, `lock xchg[32] ...`, `lock cmpxchg[32] ...`
fn lock(c: &mut Cur) -> PResult<Stmt> {
    let fetch = c.eat_ident("fetch");
    let col = c.col();
    let m = match c.next() {
        Some(Kind::Ident(m)) => m.clone(),
        _ => {
            return Err((
                col,
                "expected an atomic operation (add, or, and, xor, xchg, cmpxchg)".into(),
            ));
        }
    };
    let (base, width) = split_width(&m);
    let size = match width {
        Width::W32 => Size::W,
        Width::W64 => Size::DW,
    };
    let op = match base {
        "add" => AtomicOp::Add { fetch },
        "or" => AtomicOp::Or { fetch },
        "and" => AtomicOp::And { fetch },
        "xor" => AtomicOp::Xor { fetch },
        "xchg" => AtomicOp::Xchg,
        "cmpxchg" => AtomicOp::Cmpxchg,
        _ => return Err((col, format!("unknown atomic operation `{m}`"))),
    };
    let (dst, offset) = mem(c)?;
    comma(c)?;
    let src = pct_reg(c)?;
    Ok(Stmt::Insn(Instruction::Atomic {
        size,
        op,
        dst,
        src,
        offset,
    }))
}
