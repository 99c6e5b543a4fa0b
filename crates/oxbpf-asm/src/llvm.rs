//! The kernel/LLVM dialect: `r0 += 1`, `if r1 s> 5 goto +2`, ...

use oxbpf_isa::*;

use crate::lex::Kind;
use crate::{Cur, PResult, Stmt, Target, parse_reg_name};

/// Whether a line starts like an LLVM-dialect statement.
pub(crate) fn looks_like_llvm(c: &Cur) -> bool {
    match c.peek() {
        Some(Kind::Ident(s)) => {
            parse_reg_name(s).is_some()
                || matches!(s.as_str(), "if" | "goto" | "gotol" | "callx" | "ld_pseudo")
                || (s == "lock" && matches!(c.peek_at(1), Some(Kind::Punct("*"))))
                || (s == "call"
                    && !matches!(c.peek_at(1), Some(Kind::PctReg(_)))
                    && !matches!(c.peek_at(1), Some(Kind::Ident(n))
                        if matches!(n.as_str(), "local" | "helper" | "runtime" | "kfunc")))
        }
        Some(Kind::Punct("*")) => true,
        _ => false,
    }
}

fn reg(c: &mut Cur) -> PResult<(bool, Reg)> {
    if let Some(Kind::Ident(s)) = c.peek()
        && let Some(r) = parse_reg_name(s)
    {
        c.pos += 1;
        return Ok(r);
    }
    c.err(format!("expected a register{}", c.found()))
}

fn reg64(c: &mut Cur) -> PResult<Reg> {
    let col = c.col();
    let (w, r) = reg(c)?;
    if w {
        return Err((
            col,
            format!(
                "expected a 64-bit register r{}, found w{}",
                r.num(),
                r.num()
            ),
        ));
    }
    Ok(r)
}

fn is_reg(c: &Cur) -> bool {
    matches!(c.peek(), Some(Kind::Ident(s)) if parse_reg_name(s).is_some())
}

fn width(w: bool) -> Width {
    if w { Width::W32 } else { Width::W64 }
}

/// `(u32 *)` — returns the size and whether it is signed (`s32`).
fn mem_type(c: &mut Cur) -> PResult<(Size, bool)> {
    c.expect_punct("(")?;
    let col = c.col();
    let name = match c.next() {
        Some(Kind::Ident(s)) => s.clone(),
        _ => return Err((col, "expected a type such as u32".into())),
    };
    let r = match name.as_str() {
        "u8" => (Size::B, false),
        "u16" => (Size::H, false),
        "u32" => (Size::W, false),
        "u64" => (Size::DW, false),
        "s8" => (Size::B, true),
        "s16" => (Size::H, true),
        "s32" => (Size::W, true),
        "s64" => (Size::DW, true),
        other => return Err((col, format!("unknown memory type `{other}`"))),
    };
    c.expect_punct("*")?;
    c.expect_punct(")")?;
    Ok(r)
}

/// `r1 + 0x8` / `r1 - 8` / `r1` — register and offset.
fn addr(c: &mut Cur) -> PResult<(Reg, i16)> {
    let r = reg64(c)?;
    let col = c.col();
    let off = if c.eat_punct("+") {
        c.signed()?
    } else if c.eat_punct("-") {
        -c.signed()?
    } else {
        0
    };
    let off =
        i16::try_from(off).map_err(|_| (col, format!("offset {off} does not fit in 16 bits")))?;
    Ok((r, off))
}

/// `(r1 + 0x8)`
fn paren_addr(c: &mut Cur) -> PResult<(Reg, i16)> {
    c.expect_punct("(")?;
    let a = addr(c)?;
    c.expect_punct(")")?;
    Ok(a)
}

/// `*(u32 *)(r1 + 8)`
fn deref(c: &mut Cur) -> PResult<(Size, bool, Reg, i16)> {
    c.expect_punct("*")?;
    let (size, signed) = mem_type(c)?;
    let (r, off) = paren_addr(c)?;
    Ok((size, signed, r, off))
}

fn jump_target(c: &mut Cur) -> PResult<Target> {
    c.target()
}

fn alu_op(p: &str) -> Option<AluOp> {
    Some(match p {
        "+=" => AluOp::Add,
        "-=" => AluOp::Sub,
        "*=" => AluOp::Mul,
        "/=" => AluOp::Div,
        "s/=" => AluOp::Sdiv,
        "|=" => AluOp::Or,
        "&=" => AluOp::And,
        "<<=" => AluOp::Lsh,
        ">>=" => AluOp::Rsh,
        "%=" => AluOp::Mod,
        "s%=" => AluOp::Smod,
        "^=" => AluOp::Xor,
        "s>>=" => AluOp::Arsh,
        "=" => AluOp::Mov,
        _ => return None,
    })
}

fn cond_op(p: &str) -> Option<JmpCond> {
    Some(match p {
        "==" => JmpCond::Eq,
        ">" => JmpCond::Gt,
        ">=" => JmpCond::Ge,
        "&" => JmpCond::Set,
        "!=" => JmpCond::Ne,
        "s>" => JmpCond::Sgt,
        "s>=" => JmpCond::Sge,
        "<" => JmpCond::Lt,
        "<=" => JmpCond::Le,
        "s<" => JmpCond::Slt,
        "s<=" => JmpCond::Sle,
        _ => return None,
    })
}

fn with_target(insn: Instruction, t: Target) -> Stmt {
    match t {
        Target::Rel(r) => match crate::patch(insn, r) {
            Ok(i) => Stmt::Insn(i),
            Err(_) => Stmt::Fixup(insn, Target::Rel(r)),
        },
        l => Stmt::Fixup(insn, l),
    }
}

pub(crate) fn statement(c: &mut Cur, annotation: Option<&str>) -> PResult<Stmt> {
    let stmt = statement_inner(c, annotation)?;
    c.expect_end()?;
    // A relative offset that does not fit is an error now, not at fixup.
    if let Stmt::Fixup(i, Target::Rel(r)) = &stmt {
        return crate::patch(*i, *r)
            .map(Stmt::Insn)
            .map_err(|(_, m)| (1, m));
    }
    Ok(stmt)
}

fn statement_inner(c: &mut Cur, annotation: Option<&str>) -> PResult<Stmt> {
    let head_col = c.col();
    let head = match c.peek() {
        Some(Kind::Ident(s)) => s.clone(),
        Some(Kind::Punct("*")) => {
            // *(u32 *)(r1 + 8) = r2 | imm
            let (size, signed, dst, offset) = deref(c)?;
            if signed {
                return Err((head_col, "stores take an unsigned type (u8..u64)".into()));
            }
            c.expect_punct("=")?;
            let src = if is_reg(c) {
                Source::Reg(reg64(c)?)
            } else {
                Source::Imm(c.imm32()?)
            };
            return Ok(Stmt::Insn(Instruction::Store {
                size,
                dst,
                offset,
                src,
            }));
        }
        _ => return c.err("expected an instruction"),
    };
    match head.as_str() {
        "exit" => {
            c.pos += 1;
            Ok(Stmt::Insn(Instruction::Exit))
        }
        "goto" | "gotol" => {
            c.pos += 1;
            let t = jump_target(c)?;
            Ok(with_target(
                Instruction::Ja {
                    offset: 0,
                    long: head == "gotol",
                },
                t,
            ))
        }
        "callx" => {
            c.pos += 1;
            Ok(Stmt::Insn(Instruction::Callx { reg: reg64(c)? }))
        }
        "call" => {
            c.pos += 1;
            call(c, annotation)
        }
        "if" => {
            c.pos += 1;
            let (w, dst) = reg(c)?;
            let col = c.col();
            let cond = match c.next() {
                Some(Kind::Punct(p)) => cond_op(p),
                _ => None,
            }
            .ok_or((
                col,
                "expected a comparison (==, !=, >, s<, &, ...)".to_string(),
            ))?;
            let src = if is_reg(c) {
                let col = c.col();
                let (sw, s) = reg(c)?;
                if sw != w {
                    return Err((col, "both operands must be rN or both wN".into()));
                }
                Source::Reg(s)
            } else {
                Source::Imm(c.imm32()?)
            };
            c.expect_ident("goto")?;
            let t = jump_target(c)?;
            Ok(with_target(
                Instruction::Jmp {
                    width: width(w),
                    cond,
                    dst,
                    src,
                    offset: 0,
                },
                t,
            ))
        }
        "lock" => {
            c.pos += 1;
            let (size, signed, dst, offset) = deref(c)?;
            if signed || !matches!(size, Size::W | Size::DW) {
                return Err((head_col, "atomic operations take u32 or u64".into()));
            }
            let col = c.col();
            let op = match c.next() {
                Some(Kind::Punct("+=")) => AtomicOp::Add { fetch: false },
                Some(Kind::Punct("|=")) => AtomicOp::Or { fetch: false },
                Some(Kind::Punct("&=")) => AtomicOp::And { fetch: false },
                Some(Kind::Punct("^=")) => AtomicOp::Xor { fetch: false },
                _ => return Err((col, "expected +=, |=, &= or ^=".into())),
            };
            let (_, src) = reg(c)?;
            Ok(Stmt::Insn(Instruction::Atomic {
                size,
                op,
                dst,
                src,
                offset,
            }))
        }
        "ld_pseudo" => {
            c.pos += 1;
            let dst = reg64(c)?;
            c.expect_punct(",")?;
            let col = c.col();
            let kind = c.signed()?;
            c.expect_punct(",")?;
            let lo = c.imm32()?;
            let hi = if c.eat_punct(",") { c.imm32()? } else { 0 };
            let imm = match kind {
                1 if hi == 0 => Imm64::MapFd(lo),
                2 => Imm64::MapValue { fd: lo, offset: hi },
                3 => Imm64::BtfId {
                    btf_id: lo,
                    module: hi,
                },
                4 if hi == 0 => Imm64::Func(lo),
                5 if hi == 0 => Imm64::MapIdx(lo),
                6 => Imm64::MapIdxValue {
                    idx: lo,
                    offset: hi,
                },
                _ => {
                    return Err((
                        col,
                        format!(
                            "invalid ld_pseudo kind {kind} (1..6; 1, 4, 5 take no third value)"
                        ),
                    ));
                }
            };
            Ok(Stmt::Insn(Instruction::LoadImm64 { dst, imm }))
        }
        _ if parse_reg_name(&head).is_some() => assignment(c),
        other => Err((head_col, format!("unknown instruction `{other}`"))),
    }
}

fn call(c: &mut Cur, annotation: Option<&str>) -> PResult<Stmt> {
    // call pc+N / call pc-N (kernel verifier log form of a local call)
    if c.eat_ident("pc") {
        let col = c.col();
        let v = c.signed()?;
        let rel = i32::try_from(v).map_err(|_| (col, format!("call offset {v} out of range")))?;
        return Ok(Stmt::Insn(Instruction::Call(CallTarget::Local(rel))));
    }
    if let Some(Kind::Ident(name)) = c.peek() {
        // call label: a local call.
        let col = c.col();
        c.pos += 1;
        return Ok(Stmt::Fixup(
            Instruction::Call(CallTarget::Local(0)),
            Target::Label(name.clone(), col),
        ));
    }
    let id = c.imm32()?;
    let target = match annotation {
        None => CallTarget::Helper(id),
        Some("kfunc") => CallTarget::Kfunc {
            btf_id: id,
            module: 0,
        },
        Some(a) if a.starts_with("kfunc module ") => {
            let m = a["kfunc module ".len()..]
                .trim()
                .parse::<i16>()
                .map_err(|_| (1, format!("bad kfunc module in annotation <{a}>")))?;
            CallTarget::Kfunc {
                btf_id: id,
                module: m,
            }
        }
        // Any other annotation marks a pc-relative (local) call, as llvm-objdump
        // only annotates pc-relative transfers.
        Some(_) => CallTarget::Local(id),
    };
    Ok(Stmt::Insn(Instruction::Call(target)))
}

/// Statements starting with a register: `rD op= src`, `rD = ...`.
fn assignment(c: &mut Cur) -> PResult<Stmt> {
    let dcol = c.col();
    let (w, dst) = reg(c)?;
    let opcol = c.col();
    let op = match c.next() {
        Some(Kind::Punct(p)) => alu_op(p),
        _ => None,
    }
    .ok_or((
        opcol,
        "expected an assignment operator (=, +=, s>>=, ...)".to_string(),
    ))?;

    if op != AluOp::Mov {
        return Ok(Stmt::Insn(binary(c, w, op, dst)?));
    }
    // dst = ...
    match c.peek() {
        // r0 = -r0 | r0 = -5
        Some(Kind::Punct("-")) if matches!(c.peek_at(1), Some(Kind::Ident(_))) => {
            c.pos += 1;
            let col = c.col();
            let (sw, s) = reg(c)?;
            if sw != w || s != dst {
                return Err((col, "negation must be `rX = -rX` (or `wX = -wX`)".into()));
            }
            Ok(Stmt::Insn(Instruction::Neg {
                width: width(w),
                dst,
            }))
        }
        // r0 = *(u32 *)(r1 + 8) | r0 = *(u32 *)skb[...]
        Some(Kind::Punct("*")) => {
            c.pos += 1;
            let (size, signed) = mem_type(c)?;
            if c.eat_ident("skb") {
                if w || dst != Reg::R0 || signed || size == Size::DW {
                    return Err((
                        dcol,
                        "legacy packet loads are `r0 = *(u8|u16|u32 *)skb[...]`".into(),
                    ));
                }
                c.expect_punct("[")?;
                let addr = if is_reg(c) {
                    let src = reg64(c)?;
                    let imm = if c.eat_punct("+") {
                        c.imm32()?
                    } else if c.eat_punct("-") {
                        c.imm32()?.wrapping_neg()
                    } else {
                        0
                    };
                    PacketAddr::Ind { src, imm }
                } else {
                    PacketAddr::Abs(c.imm32()?)
                };
                c.expect_punct("]")?;
                return Ok(Stmt::Insn(Instruction::LoadPacket { size, addr }));
            }
            if w {
                return Err((dcol, "loads write a 64-bit register".into()));
            }
            if signed && size == Size::DW {
                return Err((dcol, "there is no sign-extending 64-bit load".into()));
            }
            let (src, offset) = paren_addr(c)?;
            Ok(Stmt::Insn(Instruction::Load {
                size,
                sign_extend: signed,
                dst,
                src,
                offset,
            }))
        }
        // r0 = (s8)r1
        Some(Kind::Punct("(")) => {
            c.pos += 1;
            let col = c.col();
            let bits = match c.next() {
                Some(Kind::Ident(s)) if s == "s8" => 8,
                Some(Kind::Ident(s)) if s == "s16" => 16,
                Some(Kind::Ident(s)) if s == "s32" && !w => 32,
                _ => return Err((col, "expected s8, s16 or s32 (64-bit only)".into())),
            };
            c.expect_punct(")")?;
            let col = c.col();
            let (sw, src) = reg(c)?;
            if sw != w {
                return Err((col, "both operands must be rN or both wN".into()));
            }
            Ok(Stmt::Insn(Instruction::MovSx {
                width: width(w),
                bits,
                dst,
                src,
            }))
        }
        Some(Kind::Ident(name)) if parse_reg_name(name).is_none() => {
            let name = name.clone();
            let col = c.col();
            c.pos += 1;
            special(c, w, dst, &name, col)
        }
        _ => {
            // r1 = imm64 ll
            if !is_reg(c) {
                let save = c.pos;
                let col = c.col();
                let v = c.signed()?;
                if c.eat_ident("ll") {
                    if w {
                        return Err((dcol, "lddw writes a 64-bit register".into()));
                    }
                    if !(i64::MIN as i128..=u64::MAX as i128).contains(&v) {
                        return Err((col, format!("immediate {v} does not fit in 64 bits")));
                    }
                    return Ok(Stmt::Insn(Instruction::LoadImm64 {
                        dst,
                        imm: Imm64::Value(v as u64),
                    }));
                }
                c.pos = save;
            }
            Ok(Stmt::Insn(binary(c, w, AluOp::Mov, dst)?))
        }
    }
}

/// `dst op= src` where src is a register or a 32-bit immediate.
fn binary(c: &mut Cur, w: bool, op: AluOp, dst: Reg) -> PResult<Instruction> {
    let src = if is_reg(c) {
        let col = c.col();
        let (sw, s) = reg(c)?;
        if sw != w {
            return Err((col, "both operands must be rN or both wN".into()));
        }
        Source::Reg(s)
    } else {
        Source::Imm(c.imm32()?)
    };
    Ok(Instruction::Alu {
        width: width(w),
        op,
        dst,
        src,
    })
}

/// `dst = name ...` forms: byte swaps and atomic calls.
fn special(c: &mut Cur, w: bool, dst: Reg, name: &str, col: usize) -> PResult<Stmt> {
    let endian =
        |op, bits| -> PResult<Stmt> { Ok(Stmt::Insn(Instruction::Endian { op, bits, dst })) };
    let swap = match name {
        "le16" => Some((EndianOp::ToLe, 16)),
        "le32" => Some((EndianOp::ToLe, 32)),
        "le64" => Some((EndianOp::ToLe, 64)),
        "be16" => Some((EndianOp::ToBe, 16)),
        "be32" => Some((EndianOp::ToBe, 32)),
        "be64" => Some((EndianOp::ToBe, 64)),
        "bswap16" => Some((EndianOp::Swap, 16)),
        "bswap32" => Some((EndianOp::Swap, 32)),
        "bswap64" => Some((EndianOp::Swap, 64)),
        _ => None,
    };
    if let Some((op, bits)) = swap {
        let rcol = c.col();
        let (_, r) = reg(c)?;
        if r != dst {
            return Err((
                rcol,
                format!(
                    "`{name}` works in place: write `r{0} = {name} r{0}`",
                    dst.num()
                ),
            ));
        }
        return endian(op, bits);
    }
    let mut atomic = |fetch_op: AtomicOp| -> PResult<Stmt> {
        c.expect_punct("(")?;
        let (size, signed) = mem_type(c)?;
        if signed || !matches!(size, Size::W | Size::DW) {
            return Err((col, "atomic operations take u32 or u64".into()));
        }
        let (mr, off) = paren_addr(c)?;
        c.expect_punct(",")?;
        let scol = c.col();
        let (_, src) = reg(c)?;
        c.expect_punct(")")?;
        if src != dst {
            return Err((scol, "the fetched value goes to the source register: write `rS = atomic_fetch_add((u64 *)(rD + off), rS)`".into()));
        }
        Ok(Stmt::Insn(Instruction::Atomic {
            size,
            op: fetch_op,
            dst: mr,
            src,
            offset: off,
        }))
    };
    match name {
        "atomic_fetch_add" => return atomic(AtomicOp::Add { fetch: true }),
        "atomic_fetch_or" => return atomic(AtomicOp::Or { fetch: true }),
        "atomic_fetch_and" => return atomic(AtomicOp::And { fetch: true }),
        "atomic_fetch_xor" => return atomic(AtomicOp::Xor { fetch: true }),
        _ => {}
    }
    let (size, is_cmpxchg) = match name {
        "xchg_64" => (Size::DW, false),
        "xchg32_32" => (Size::W, false),
        "cmpxchg_64" => (Size::DW, true),
        "cmpxchg32_32" => (Size::W, true),
        _ => return Err((col, format!("unknown operation `{name}`"))),
    };
    let _ = w;
    c.expect_punct("(")?;
    let (mr, off) = addr(c)?;
    c.expect_punct(",")?;
    if is_cmpxchg {
        let rcol = c.col();
        let (_, r0) = reg(c)?;
        if r0 != Reg::R0 || dst != Reg::R0 {
            return Err((rcol, "cmpxchg compares with and returns in r0".into()));
        }
        c.expect_punct(",")?;
    }
    let scol = c.col();
    let (_, src) = reg(c)?;
    c.expect_punct(")")?;
    if !is_cmpxchg && src != dst {
        return Err((
            scol,
            "xchg returns the old value in its source register".into(),
        ));
    }
    Ok(Stmt::Insn(Instruction::Atomic {
        size,
        op: if is_cmpxchg {
            AtomicOp::Cmpxchg
        } else {
            AtomicOp::Xchg
        },
        dst: mr,
        src,
        offset: off,
    }))
}
