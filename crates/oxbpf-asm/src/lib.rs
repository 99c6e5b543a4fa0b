//! # oxbpf-asm: text assembler for eBPF
//!
//! Reads both dialects that users meet, line by line, and may mix them in one
//! file:
//!
//! * the kernel/LLVM dialect, as printed by `llvm-objdump` and the kernel's
//!   verifier log (`r0 += 1`, `if w1 s> 5 goto +2`, `*(u32 *)(r10 - 4) = r1`,
//!   `r1 = 0x1234 ll`, `lock *(u64 *)(r10 - 8) += r1`, ...);
//! * the bpf_conformance/ubpf dialect (`add32 %r0, 1`, `ldxw %r0, [%r1+4]`,
//!   `lock fetch add [%r10-8], %r1`, `call local f`, ...).
//!
//! A line is LLVM dialect when it starts like an LLVM statement (a register,
//! `*(`, `if`, `goto`, `lock *`, ...); anything else is read as a mnemonic.
//! Labels (`name:`) work in both. Every diagnostic carries `line:column`.
//!
//! The assembler reads back everything [`oxbpf_isa::listing`] prints, including
//! its `<...>` annotations, so `assemble(disassemble(x)) == x`.
#![forbid(unsafe_code)]

mod lex;
mod llvm;
mod ubpf;

use std::collections::HashMap;
use std::fmt;

use lex::{Kind, Tok};
use oxbpf_isa::{Instruction, RawInsn, Reg, encode_all};

/// One assembly error with its position (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct AsmError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// All errors found in a source text (assembly continues past a bad line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsmErrors(pub Vec<AsmError>);

impl fmt::Display for AsmErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AsmErrors {}

/// A jump or call target as written: a number (relative to the next
/// instruction) or a label to resolve.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Target {
    Rel(i64),
    Label(String, usize),
}

/// A parsed statement before label resolution.
pub(crate) enum Stmt {
    Insn(Instruction),
    /// An instruction whose pc-relative field still names a label.
    Fixup(Instruction, Target),
}

pub(crate) type PResult<T> = Result<T, (usize, String)>;

/// Cursor over one line's tokens.
pub(crate) struct Cur<'a> {
    pub toks: &'a [Tok],
    pub pos: usize,
    pub end_col: usize,
}

impl<'a> Cur<'a> {
    pub fn peek(&self) -> Option<&'a Kind> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }
    pub fn peek_at(&self, n: usize) -> Option<&'a Kind> {
        self.toks.get(self.pos + n).map(|t| &t.kind)
    }
    pub fn col(&self) -> usize {
        self.toks
            .get(self.pos)
            .map(|t| t.col)
            .unwrap_or(self.end_col)
    }
    pub fn next(&mut self) -> Option<&'a Kind> {
        let t = self.toks.get(self.pos).map(|t| &t.kind);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }
    pub fn err<T>(&self, msg: impl Into<String>) -> PResult<T> {
        Err((self.col(), msg.into()))
    }
    pub fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Kind::Punct(q)) if *q == p)
    }
    pub fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub fn expect_punct(&mut self, p: &str) -> PResult<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            self.err(format!("expected `{p}`{}", self.found()))
        }
    }
    pub fn is_ident(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Kind::Ident(q)) if q == s)
    }
    pub fn eat_ident(&mut self, s: &str) -> bool {
        if self.is_ident(s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    pub fn expect_ident(&mut self, s: &str) -> PResult<()> {
        if self.eat_ident(s) {
            Ok(())
        } else {
            self.err(format!("expected `{s}`{}", self.found()))
        }
    }
    pub fn found(&self) -> String {
        match self.peek() {
            None => ", found end of line".into(),
            Some(k) => format!(", found {}", describe(k)),
        }
    }
    pub fn at_end(&self) -> bool {
        self.pos >= self.toks.len()
    }
    pub fn expect_end(&self) -> PResult<()> {
        if self.at_end() {
            Ok(())
        } else {
            self.err(format!(
                "unexpected {}",
                describe(self.peek().expect("not at end"))
            ))
        }
    }

    /// An optionally signed integer, range-checked by the caller.
    pub fn signed(&mut self) -> PResult<i128> {
        let neg = if self.eat_punct("-") {
            true
        } else {
            self.eat_punct("+");
            false
        };
        match self.next() {
            Some(Kind::Num(v)) => {
                let v = *v as i128;
                Ok(if neg { -v } else { v })
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                if let Some(Kind::Ident(s)) = self.peek() {
                    let b = s.as_bytes();
                    if b.len() > 1
                        && matches!(b[0], b'r' | b'w')
                        && b[1..].iter().all(u8::is_ascii_digit)
                    {
                        return self.err(format!("invalid register `{s}` (registers are r0..r10)"));
                    }
                }
                self.err(format!("expected a number{}", self.found()))
            }
        }
    }

    /// A 32-bit immediate: accepts -2^31..2^32-1 (values above i32::MAX wrap,
    /// so `0xffffffff` means -1 as in every BPF assembler).
    pub fn imm32(&mut self) -> PResult<i32> {
        let col = self.col();
        let v = self.signed()?;
        if (i32::MIN as i128..=u32::MAX as i128).contains(&v) {
            Ok(v as u32 as i32)
        } else {
            Err((col, format!("immediate {v} does not fit in 32 bits")))
        }
    }

    /// A 16-bit offset (-32768..65535, wrapping like imm32).
    pub fn off16(&mut self) -> PResult<i16> {
        let col = self.col();
        let v = self.signed()?;
        if (i16::MIN as i128..=u16::MAX as i128).contains(&v) {
            Ok(v as u16 as i16)
        } else {
            Err((col, format!("offset {v} does not fit in 16 bits")))
        }
    }

    /// A 64-bit immediate (-2^63..2^64-1).
    pub fn imm64(&mut self) -> PResult<u64> {
        let col = self.col();
        let v = self.signed()?;
        if (i64::MIN as i128..=u64::MAX as i128).contains(&v) {
            Ok(v as u64)
        } else {
            Err((col, format!("immediate {v} does not fit in 64 bits")))
        }
    }

    /// A jump target: `+N`, `-N`, `N` or a label.
    pub fn target(&mut self) -> PResult<Target> {
        if let Some(Kind::Ident(name)) = self.peek() {
            let col = self.col();
            self.pos += 1;
            return Ok(Target::Label(name.clone(), col));
        }
        let col = self.col();
        let v = self.signed()?;
        if (i32::MIN as i128..=i32::MAX as i128).contains(&v) {
            Ok(Target::Rel(v as i64))
        } else {
            Err((col, format!("jump offset {v} out of range")))
        }
    }
}

pub(crate) fn describe(k: &Kind) -> String {
    match k {
        Kind::Ident(s) => format!("`{s}`"),
        Kind::PctReg(s) => format!("`%{s}`"),
        Kind::Num(n) => format!("number {n}"),
        Kind::Punct(p) => format!("`{p}`"),
    }
}

/// Parses `r0`..`r10` / `w0`..`w10` names; returns (is_w, reg).
pub(crate) fn parse_reg_name(s: &str) -> Option<(bool, Reg)> {
    let (w, num) = if let Some(n) = s.strip_prefix('r') {
        (false, n)
    } else if let Some(n) = s.strip_prefix('w') {
        (true, n)
    } else {
        return None;
    };
    if num.is_empty() || num.len() > 2 || !num.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if num.len() == 2 && num.starts_with('0') {
        return None;
    }
    Reg::new(num.parse().ok()?).map(|r| (w, r))
}

/// Removes a comment (`#`, `;` or `//`) from a line.
fn strip_comment(line: &str) -> &str {
    let mut end = line.len();
    for pat in ["#", ";", "//"] {
        if let Some(i) = line.find(pat) {
            end = end.min(i);
        }
    }
    &line[..end]
}

/// Splits off a trailing LLVM-style `<...>` annotation.
fn split_annotation(line: &str) -> (&str, Option<&str>) {
    let t = line.trim_end();
    if t.ends_with('>')
        && let Some(open) = t.rfind(" <")
    {
        let inner = &t[open + 2..t.len() - 1];
        if !inner.contains('>') && !inner.contains('<') {
            return (&t[..open], Some(inner));
        }
    }
    (line, None)
}

struct Pending {
    line: usize,
    slot: usize,
    stmt: Stmt,
}

/// Assembles source text into instructions.
pub fn assemble(source: &str) -> Result<Vec<Instruction>, AsmErrors> {
    let mut errors = Vec::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    let mut first_exit: Option<usize> = None;
    let mut pending: Vec<Pending> = Vec::new();
    let mut slot = 0usize;

    for (lineno, raw_line) in source.lines().enumerate() {
        let lineno = lineno + 1;
        let (code, annotation) = split_annotation(strip_comment(raw_line));
        let toks = match lex::lex(code) {
            Ok(t) => t,
            Err((col, message)) => {
                errors.push(AsmError {
                    line: lineno,
                    column: col,
                    message,
                });
                continue;
            }
        };
        let mut toks = &toks[..];
        // Leading labels: `name:`.
        while let [
            Tok {
                kind: Kind::Ident(name),
                col,
            },
            Tok {
                kind: Kind::Punct(":"),
                ..
            },
            rest @ ..,
        ] = toks
        {
            if labels.insert(name.clone(), slot).is_some() {
                errors.push(AsmError {
                    line: lineno,
                    column: *col,
                    message: format!("label `{name}` is defined twice"),
                });
            }
            toks = rest;
        }
        if toks.is_empty() {
            continue;
        }
        let mut cur = Cur {
            toks,
            pos: 0,
            end_col: code.trim_end().len() + 1,
        };
        let parsed = if llvm::looks_like_llvm(&cur) {
            llvm::statement(&mut cur, annotation)
        } else {
            ubpf::statement(&mut cur)
        };
        match parsed {
            Ok(stmt) => {
                let insn = match &stmt {
                    Stmt::Insn(i) | Stmt::Fixup(i, _) => *i,
                };
                if insn == Instruction::Exit && first_exit.is_none() {
                    first_exit = Some(slot);
                }
                let n = insn.slots();
                pending.push(Pending {
                    line: lineno,
                    slot,
                    stmt,
                });
                slot += n;
            }
            Err((column, message)) => errors.push(AsmError {
                line: lineno,
                column,
                message,
            }),
        }
    }

    let mut out = Vec::with_capacity(pending.len());
    for p in pending {
        match p.stmt {
            Stmt::Insn(i) => out.push(i),
            Stmt::Fixup(insn, target) => {
                let resolved = match target {
                    Target::Rel(r) => Ok(r),
                    Target::Label(name, col) => {
                        // bpf_conformance convention: `exit` names the first exit.
                        let at = labels.get(&name).copied().or(if name == "exit" {
                            first_exit
                        } else {
                            None
                        });
                        match at {
                            Some(at) => Ok(at as i64 - p.slot as i64 - 1),
                            None => Err((col, format!("undefined label `{name}`"))),
                        }
                    }
                };
                match resolved.and_then(|rel| patch(insn, rel)) {
                    Ok(i) => out.push(i),
                    Err((column, message)) => errors.push(AsmError {
                        line: p.line,
                        column,
                        message,
                    }),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AsmErrors(errors))
    }
}

/// Stores a resolved relative offset into a pc-relative instruction.
fn patch(insn: Instruction, rel: i64) -> PResult<Instruction> {
    use oxbpf_isa::{CallTarget, Imm64};
    let too_far = || (1, format!("jump offset {rel} does not fit the instruction"));
    Ok(match insn {
        Instruction::Ja { long: false, .. } => Instruction::Ja {
            offset: i16::try_from(rel).map_err(|_| too_far())? as i32,
            long: false,
        },
        Instruction::Ja { long: true, .. } => Instruction::Ja {
            offset: i32::try_from(rel).map_err(|_| too_far())?,
            long: true,
        },
        Instruction::Jmp {
            width,
            cond,
            dst,
            src,
            ..
        } => Instruction::Jmp {
            width,
            cond,
            dst,
            src,
            offset: i16::try_from(rel).map_err(|_| too_far())?,
        },
        Instruction::Call(CallTarget::Local(_)) => Instruction::Call(CallTarget::Local(
            i32::try_from(rel).map_err(|_| too_far())?,
        )),
        Instruction::LoadImm64 {
            dst,
            imm: Imm64::Func(_),
        } => Instruction::LoadImm64 {
            dst,
            imm: Imm64::Func(i32::try_from(rel).map_err(|_| too_far())?),
        },
        other => other,
    })
}

/// Assembles to raw slots.
pub fn assemble_raw(source: &str) -> Result<Vec<RawInsn>, AsmErrors> {
    Ok(encode_all(&assemble(source)?))
}

/// Assembles to bytes (8 per slot, little-endian).
pub fn assemble_bytes(source: &str) -> Result<Vec<u8>, AsmErrors> {
    Ok(oxbpf_isa::slots_to_bytes(&assemble_raw(source)?))
}

#[cfg(test)]
mod tests;
