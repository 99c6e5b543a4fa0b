//! An assembler for libpcap's listing (`tcpdump -d`): what the
//! disassembler prints, it reads back to the same instructions. Jump
//! targets are instruction indices (`jt 7 jf 9`, `ja 12`), as listed; the
//! `(NNN)` index at the start of a line is optional but, when given, must
//! be the line's instruction index.

use crate::{Insn, class, misc, mode, op, rval, size, src};

/// An error at a line and column (1-based) of the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}:{col}: {msg}")]
pub struct AsmError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

struct Line<'a> {
    no: usize,
    text: &'a str,
    /// Byte offset of `rest` in the original line.
    at: usize,
    rest: &'a str,
}

impl<'a> Line<'a> {
    fn err<T>(&self, at: usize, msg: impl Into<String>) -> Result<T, AsmError> {
        Err(AsmError {
            line: self.no,
            col: at + 1,
            msg: msg.into(),
        })
    }

    /// The next whitespace-separated word and its column.
    fn word(&mut self) -> Option<(usize, &'a str)> {
        let t = self.rest.trim_start();
        if t.is_empty() {
            return None;
        }
        let skip = self.rest.len() - t.len();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let at = self.at + skip;
        let (w, r) = t.split_at(end);
        self.at = at + end;
        self.rest = r;
        let text: &'a str = self.text;
        Some((at, &text[at..at + w.len()]))
    }
}

fn number(s: &str) -> Option<u32> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let v: u64 = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else {
        t.parse().ok()?
    };
    if neg {
        (v <= 1 << 31).then(|| (v as u32).wrapping_neg())
    } else {
        u32::try_from(v).ok()
    }
}

/// Assembles a listing into instructions.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let code_part = raw.split(';').next().unwrap_or("");
        if code_part.trim().is_empty() {
            continue;
        }
        let n = out.len();
        let mut l = Line {
            no: i + 1,
            text: code_part,
            at: 0,
            rest: code_part,
        };
        let Some((mut at, mut w)) = l.word() else {
            continue;
        };
        if let Some(idx) = w.strip_prefix('(').and_then(|x| x.strip_suffix(')')) {
            if idx.parse::<usize>().ok() != Some(n) {
                return l.err(at, format!("this is instruction {n}, not {idx}"));
            }
            match l.word() {
                Some(x) => (at, w) = x,
                None => return l.err(code_part.len(), "expected an instruction after the index"),
            }
        }
        let mnem = w.to_string();
        let mnem_at = at;
        // The operand runs up to ` jt ` for conditional jumps.
        let rest = l.rest;
        let (operand_text, jumps) = match rest.find(" jt ") {
            Some(p) => (&rest[..p], Some(&rest[p..])),
            None => (rest, None),
        };
        let op_at = l.at + (operand_text.len() - operand_text.trim_start().len());
        let operand = operand_text.trim();
        let insn = parse_insn(&l, n, &mnem, mnem_at, operand, op_at)?;
        let mut insn = insn;
        let conditional = insn.class() == class::JMP && insn.code & 0xf0 != op::JA;
        match (conditional, jumps) {
            (true, Some(j)) => {
                let base = l.at + operand_text.len();
                let parts: Vec<&str> = j.split_whitespace().collect();
                if parts.len() != 4 || parts[0] != "jt" || parts[2] != "jf" {
                    return l.err(base + 1, "expected `jt N jf M` (instruction indices)");
                }
                let target = |s: &str, what: &str| -> Result<u8, AsmError> {
                    let t: usize = s.parse().map_err(|_| AsmError {
                        line: l.no,
                        col: base + j.find(s).unwrap_or(0) + 1,
                        msg: format!("{what} target {s:?} is not an instruction index"),
                    })?;
                    let rel = t.checked_sub(n + 1).filter(|r| *r <= 255);
                    rel.map(|r| r as u8).ok_or_else(|| AsmError {
                        line: l.no,
                        col: base + j.find(s).unwrap_or(0) + 1,
                        msg: format!(
                            "{what} target {t} is not 1 to 256 instructions after {n} (classic jumps go forward only)"
                        ),
                    })
                };
                insn.jt = target(parts[1], "jt")?;
                insn.jf = target(parts[3], "jf")?;
            }
            (true, None) => {
                return l.err(
                    code_part.trim_end().len(),
                    format!("{mnem} needs `jt N jf M`"),
                );
            }
            (false, Some(j)) => {
                return l.err(
                    l.at + operand_text.len() + 1,
                    format!("{mnem} takes no jt/jf ({j:?})"),
                );
            }
            (false, None) => {}
        }
        out.push(insn);
    }
    Ok(out)
}

fn parse_insn(
    l: &Line,
    n: usize,
    mnem: &str,
    mnem_at: usize,
    operand: &str,
    op_at: usize,
) -> Result<Insn, AsmError> {
    let bad = |what: &str| -> Result<Insn, AsmError> {
        l.err(op_at, format!("{mnem}: {what}, found {operand:?}"))
    };
    let num = |s: &str| number(s.trim());
    let ins = |code: u16, k: u32| Ok(Insn::new(code, 0, 0, k));
    let mem = |s: &str| {
        s.strip_prefix("M[")
            .and_then(|x| x.strip_suffix(']'))
            .and_then(num)
    };
    let imm = |s: &str| s.strip_prefix('#').and_then(num);
    match mnem {
        "ld" | "ldh" | "ldb" => {
            let sz = match mnem {
                "ld" => size::W,
                "ldh" => size::H,
                _ => size::B,
            };
            if let Some(x) = operand
                .strip_prefix("[x + ")
                .and_then(|x| x.strip_suffix(']'))
            {
                return match num(x) {
                    Some(k) => ins(class::LD | sz | mode::IND, k),
                    None => bad("expected [x + N]"),
                };
            }
            if let Some(x) = operand.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
                return match num(x) {
                    Some(k) => ins(class::LD | sz | mode::ABS, k),
                    None => bad("expected [N]"),
                };
            }
            if mnem == "ld" {
                if operand == "#pktlen" || operand == "#len" {
                    return ins(class::LD | size::W | mode::LEN, 0);
                }
                if let Some(k) = mem(operand) {
                    return ins(class::LD | mode::MEM, k);
                }
                if let Some(k) = imm(operand) {
                    return ins(class::LD | mode::IMM, k);
                }
            }
            bad("expected [N], [x + N], M[N], #N or #pktlen")
        }
        "ldx" => {
            if operand == "#pktlen" || operand == "#len" {
                return ins(class::LDX | size::W | mode::LEN, 0);
            }
            if let Some(k) = mem(operand) {
                return ins(class::LDX | mode::MEM, k);
            }
            if let Some(k) = imm(operand) {
                return ins(class::LDX | mode::IMM, k);
            }
            bad("expected M[N] or #N")
        }
        "ldxb" => match operand
            .strip_prefix("4*([")
            .and_then(|x| x.strip_suffix("]&0xf)"))
            .and_then(num)
        {
            Some(k) => ins(class::LDX | mode::MSH | size::B, k),
            None => bad("expected 4*([N]&0xf)"),
        },
        "st" | "stx" => match mem(operand) {
            Some(k) => ins(if mnem == "st" { class::ST } else { class::STX }, k),
            None => bad("expected M[N]"),
        },
        "ret" => {
            if operand.is_empty() || operand == "a" || operand == "A" {
                return ins(class::RET | rval::A, 0);
            }
            if operand == "x" || operand == "X" {
                return ins(class::RET | rval::X, 0);
            }
            match imm(operand) {
                Some(k) => ins(class::RET | rval::K, k),
                None => bad("expected #N, a or nothing"),
            }
        }
        "tax" | "txa" | "neg" => {
            if !operand.is_empty() {
                return bad("takes no operand");
            }
            ins(
                match mnem {
                    "tax" => class::MISC | misc::TAX,
                    "txa" => class::MISC | misc::TXA,
                    _ => class::ALU | op::NEG,
                },
                0,
            )
        }
        "ja" => match operand.parse::<usize>() {
            Ok(t) if t > n => ins(class::JMP | op::JA, (t - n - 1) as u32),
            _ => bad(&format!("expected a target instruction after {n}")),
        },
        "jeq" | "jgt" | "jge" | "jset" => {
            let o = match mnem {
                "jeq" => op::JEQ,
                "jgt" => op::JGT,
                "jge" => op::JGE,
                _ => op::JSET,
            };
            if operand == "x" {
                return ins(class::JMP | o | src::X, 0);
            }
            match imm(operand) {
                Some(k) => ins(class::JMP | o | src::K, k),
                None => bad("expected #N or x"),
            }
        }
        "add" | "sub" | "mul" | "div" | "mod" | "and" | "or" | "xor" | "lsh" | "rsh" => {
            let o = match mnem {
                "add" => op::ADD,
                "sub" => op::SUB,
                "mul" => op::MUL,
                "div" => op::DIV,
                "mod" => op::MOD,
                "and" => op::AND,
                "or" => op::OR,
                "xor" => op::XOR,
                "lsh" => op::LSH,
                _ => op::RSH,
            };
            if operand == "x" {
                return ins(class::ALU | o | src::X, 0);
            }
            match imm(operand) {
                Some(k) => ins(class::ALU | o | src::K, k),
                None => bad("expected #N or x"),
            }
        }
        "unimp" => match operand
            .strip_prefix("0x")
            .and_then(|h| u16::from_str_radix(h, 16).ok())
        {
            Some(code) => ins(code, 0),
            None => bad("expected 0xCODE"),
        },
        _ => l.err(mnem_at, format!("unknown instruction {mnem:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_round_trips() {
        let text = "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 5\n(002) ldxb     4*([14]&0xf)\n(003) ldh      [x + 16]\n(004) ja       6\n(005) ret      #0\n(006) ret      #262144\n";
        let p = assemble(text).unwrap();
        assert_eq!(crate::listing(&p), text);
        assert_eq!(p[1], Insn::new(0x15, 0, 3, 0x800));
        assert_eq!(p[4], Insn::new(0x05, 0, 0, 1));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = assemble("ldh [12]\njeq #0x800 jt 0 jf 2\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 15));
        assert!(e.msg.contains("forward only"), "{e}");
        let e = assemble("ldh [12]\n  frob #1\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2:3: unknown instruction \"frob\"");
        let e = assemble("ld [zz]\n").unwrap_err();
        assert_eq!((e.line, e.col), (1, 4));
        let e = assemble("(001) ret #0\n").unwrap_err();
        assert!(e.msg.contains("instruction 0, not 001"), "{e}");
    }
}
