//! An assembler for the two texts classic programs are written in:
//!
//! - libpcap's listing (`tcpdump -d`): what the disassembler prints, it
//!   reads back to the same instructions. Jump targets are instruction
//!   indices (`jt 7 jf 9`, `ja 12`); the `(NNN)` index at the start of a
//!   line is optional but, when given, must be the line's instruction
//!   index.
//! - the kernel's `bpf_asm` (tools/bpf): labels (`name:`), jumps to them
//!   (`jeq #0x800, ip, drop`, `jne #6, drop` with the other way falling
//!   through, `jlt`, `jle`, `jmp`/`ja label`), `%a`/`%x`, `[x+14]`,
//!   extensions by name (`ld #proto`, `ldb #vlan_pr`, `ld len`), `ldi`,
//!   `ldxi`, `ldx 4*([14]&0xf)`, numbers in hex, binary (`0b`), octal (`0`)
//!   and decimal, comments (`;`, `/* */`, `#` lines), mnemonics in any case.
//!
//! A file may mix them. Errors name the line and column.

use std::collections::HashMap;

use crate::{Insn, class, misc, mode, op, rval, size, skf, src};

/// An error at a line and column (1-based) of the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}:{col}: {msg}")]
pub struct AsmError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

/// A number as `bpf_asm` reads one: `0x` hex, `0b` binary, a leading `0`
/// octal, else decimal (a sign allowed; negative numbers wrap to 32 bits).
fn number(s: &str) -> Option<u32> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v: u64 = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = t.strip_prefix("0b").or_else(|| t.strip_prefix("0B")) {
        u64::from_str_radix(b, 2).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        u64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    if neg {
        (v <= 1 << 31).then(|| (v as u32).wrapping_neg())
    } else {
        u32::try_from(v).ok()
    }
}

/// The text with comments blanked out (same lines and columns): `/* */`
/// (across lines), `;` to the end of a line, lines starting with `#`.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_block = false;
    for line in text.split_inclusive('\n') {
        if !in_block && line.starts_with('#') {
            out.extend(line.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
            continue;
        }
        let mut chars = line.char_indices().peekable();
        let mut rest_blank = false;
        while let Some((i, c)) = chars.next() {
            if c == '\n' {
                out.push('\n');
                continue;
            }
            if in_block {
                if c == '*' && line[i + 1..].starts_with('/') {
                    chars.next();
                    out.push_str("  ");
                    in_block = false;
                } else {
                    out.push(' ');
                }
                continue;
            }
            if rest_blank {
                out.push(' ');
                continue;
            }
            match c {
                ';' => {
                    rest_blank = true;
                    out.push(' ');
                }
                '/' if line[i + 1..].starts_with('*') => {
                    chars.next();
                    out.push_str("  ");
                    in_block = true;
                }
                _ => out.push(c),
            }
        }
    }
    out
}

/// Where a jump goes, as written.
#[derive(Clone, Debug)]
enum Target {
    /// The next instruction (the way a one-label `bpf_asm` jump falls).
    Next,
    /// An instruction index (the listing).
    Index(usize, usize),
    /// A label, at a column.
    Label(String, usize),
}

struct Pending {
    insn: Insn,
    line: usize,
    jt: Target,
    jf: Target,
}

/// Assembles a listing or `bpf_asm` text into instructions.
pub fn assemble(text: &str) -> Result<Vec<Insn>, AsmError> {
    let clean = strip_comments(text);
    let mut out: Vec<Pending> = Vec::new();
    let mut labels: HashMap<String, usize> = HashMap::new();
    for (i, line) in clean.lines().enumerate() {
        let no = i + 1;
        let err = |col: usize, msg: String| AsmError {
            line: no,
            col: col + 1,
            msg,
        };
        let mut at = line.len() - line.trim_start().len();
        let mut rest = line.trim();
        if rest.is_empty() {
            continue;
        }
        let n = out.len();
        // `(NNN)`: the listing's index.
        if let Some(close) = rest.strip_prefix('(').and_then(|r| r.find(')'))
            && rest[1..=close].chars().all(|c| c.is_ascii_digit())
        {
            let idx = &rest[1..=close];
            if idx.parse::<usize>().ok() != Some(n) {
                return Err(err(at, format!("this is instruction {n}, not {idx}")));
            }
            let after = &rest[close + 2..];
            at += close + 2 + (after.len() - after.trim_start().len());
            rest = after.trim_start();
        }
        // `name:` labels, on their own or before an instruction.
        while let Some(colon) = rest.find(':') {
            let name = &rest[..colon];
            if name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                break;
            }
            if labels.insert(name.to_string(), n).is_some() {
                return Err(err(at, format!("label {name:?} is defined twice")));
            }
            let after = &rest[colon + 1..];
            at += colon + 1 + (after.len() - after.trim_start().len());
            rest = after.trim_start();
        }
        if rest.is_empty() {
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let mnem = rest[..end].to_ascii_lowercase();
        let mnem_at = at;
        let operand_raw = &rest[end..];
        let op_at = at + end + (operand_raw.len() - operand_raw.trim_start().len());
        let operand = operand_raw.trim();
        let (insn, jt, jf) =
            statement(n, &mnem, mnem_at, operand, op_at).map_err(|(c, m)| err(c, m))?;
        out.push(Pending {
            insn,
            line: no,
            jt,
            jf,
        });
    }
    // Jump targets, now that every label is known.
    let n_total = out.len();
    let mut insns = Vec::with_capacity(n_total);
    for (n, p) in out.into_iter().enumerate() {
        let err = |col: usize, msg: String| AsmError {
            line: p.line,
            col: col + 1,
            msg,
        };
        let resolve = |t: &Target, what: &str| -> Result<usize, AsmError> {
            let (to, col) = match t {
                Target::Next => return Ok(0),
                Target::Index(to, col) => (*to, *col),
                Target::Label(name, col) => match labels.get(name) {
                    Some(&to) => (to, *col),
                    None => return Err(err(*col, format!("no label {name:?}"))),
                },
            };
            to.checked_sub(n + 1).ok_or_else(|| {
                err(
                    col,
                    format!("{what} target {to} is not after {n} (classic jumps go forward only)"),
                )
            })
        };
        let mut i = p.insn;
        if i.class() == class::JMP && i.code & 0xf0 == op::JA {
            i.k = resolve(&p.jt, "ja")? as u32;
        } else if i.class() == class::JMP {
            for (t, what) in [(&p.jt, "jt"), (&p.jf, "jf")] {
                let rel = resolve(t, what)?;
                let rel = u8::try_from(rel).map_err(|_| {
                    let col = match t {
                        Target::Index(_, c) | Target::Label(_, c) => *c,
                        Target::Next => 0,
                    };
                    err(
                        col,
                        format!(
                            "{what} target is {} instructions after {n}: classic jumps reach 256",
                            rel + 1
                        ),
                    )
                })?;
                if what == "jt" {
                    i.jt = rel;
                } else {
                    i.jf = rel;
                }
            }
        }
        insns.push(i);
    }
    Ok(insns)
}

type Stmt = (Insn, Target, Target);

/// One instruction: its encoding and jump targets.
fn statement(
    n: usize,
    mnem: &str,
    mnem_at: usize,
    operand: &str,
    op_at: usize,
) -> Result<Stmt, (usize, String)> {
    let bad = |what: &str| Err((op_at, format!("{mnem}: {what}, found {operand:?}")));
    // `%a`, `%x`, and no spaces inside brackets or around `,`.
    let norm = operand;
    let compact: String = norm
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '%')
        .collect();
    let lower = compact.to_ascii_lowercase();
    let plain = |i: Insn| Ok((i, Target::Next, Target::Next));
    let ins = |code: u16, k: u32| plain(Insn::new(code, 0, 0, k));
    let num = |s: &str| number(s);
    let mem = |s: &str| {
        s.strip_prefix("M[")
            .or_else(|| s.strip_prefix("m["))
            .and_then(|x| x.strip_suffix(']'))
            .and_then(num)
    };
    let imm = |s: &str| s.strip_prefix('#').and_then(num);
    let extension = |s: &str| -> Option<u32> {
        let name = s.strip_prefix('#').unwrap_or(s);
        let name = name
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(name);
        // bpf_asm's names, and libpcap's where they differ.
        let off = match name {
            "proto" => 0,
            "type" => 4,
            "ifidx" => 8,
            "nla" => 12,
            "nlan" => 16,
            "mark" => 20,
            "queue" => 24,
            "hatype" => 28,
            "rxhash" => 32,
            "cpu" => 36,
            "xor_x" => 40,
            "vlan_tci" => 44,
            "vlan_pr" | "vlan_avail" | "vlanp" => 48,
            "poff" => 52,
            "rand" => 56,
            "vlan_tpid" => 60,
            _ => return None,
        };
        Some(skf::AD_OFF + off)
    };
    let is_len = |s: &str| matches!(s, "#pktlen" | "#len" | "len" | "pktlen");
    let msh = |s: &str| {
        s.strip_prefix("4*([")
            .and_then(|x| x.strip_suffix("]&0xf)"))
            .and_then(num)
    };
    match mnem {
        "ld" | "ldh" | "ldb" => {
            let sz = match mnem {
                "ld" => size::W,
                "ldh" => size::H,
                _ => size::B,
            };
            if let Some(x) = lower.strip_prefix("[x+").and_then(|x| x.strip_suffix(']')) {
                return match num(x) {
                    Some(k) => ins(class::LD | sz | mode::IND, k),
                    None => bad("expected [x + N]"),
                };
            }
            if let Some(k) = lower
                .strip_prefix('[')
                .and_then(|x| x.strip_suffix(']'))
                .and_then(num)
            {
                return ins(class::LD | sz | mode::ABS, k);
            }
            if let Some(k) = extension(&lower) {
                return ins(class::LD | sz | mode::ABS, k);
            }
            if mnem == "ld" {
                if is_len(&lower) {
                    return ins(class::LD | size::W | mode::LEN, 0);
                }
                if let Some(k) = mem(&compact) {
                    return ins(class::LD | mode::MEM, k);
                }
                if let Some(k) = imm(&lower) {
                    return ins(class::LD | mode::IMM, k);
                }
            }
            bad("expected [N], [x + N], M[N], #N, #len or an extension (#proto, ...)")
        }
        "ldi" => match imm(&lower).or_else(|| num(&lower)) {
            Some(k) => ins(class::LD | mode::IMM, k),
            None => bad("expected #N"),
        },
        "ldxi" => match imm(&lower).or_else(|| num(&lower)) {
            Some(k) => ins(class::LDX | mode::IMM, k),
            None => bad("expected #N"),
        },
        "ldx" | "ldxb" => {
            if let Some(k) = msh(&lower) {
                return ins(class::LDX | mode::MSH | size::B, k);
            }
            if mnem == "ldx" {
                if is_len(&lower) {
                    return ins(class::LDX | size::W | mode::LEN, 0);
                }
                if let Some(k) = mem(&compact) {
                    return ins(class::LDX | mode::MEM, k);
                }
                if let Some(k) = imm(&lower) {
                    return ins(class::LDX | mode::IMM, k);
                }
                return bad("expected M[N], #N, #len or 4*([N]&0xf)");
            }
            bad("expected 4*([N]&0xf)")
        }
        "st" | "stx" => match mem(&compact) {
            Some(k) => ins(if mnem == "st" { class::ST } else { class::STX }, k),
            None => bad("expected M[N]"),
        },
        "ret" => match lower.as_str() {
            "" | "a" => ins(class::RET | rval::A, 0),
            "x" => ins(class::RET | rval::X, 0),
            _ => match imm(&lower) {
                Some(k) => ins(class::RET | rval::K, k),
                None => bad("expected #N, a or x"),
            },
        },
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
        "ja" | "jmp" => {
            let t = operand.trim();
            let target = match t.parse::<usize>() {
                Ok(to) => Target::Index(to, op_at),
                Err(_) if is_label(t) => Target::Label(t.to_string(), op_at),
                Err(_) => {
                    return bad(&format!(
                        "expected a target instruction after {n} or a label"
                    ));
                }
            };
            Ok((
                Insn::new(class::JMP | op::JA, 0, 0, 0),
                target,
                Target::Next,
            ))
        }
        "jeq" | "jgt" | "jge" | "jset" | "jne" | "jneq" | "jlt" | "jle" => {
            // (condition, whether a one-label form's label is the false way)
            let (o, negated) = match mnem {
                "jeq" => (op::JEQ, false),
                "jgt" => (op::JGT, false),
                "jge" => (op::JGE, false),
                "jset" => (op::JSET, false),
                "jne" | "jneq" => (op::JEQ, true),
                "jlt" => (op::JGE, true),
                _ => (op::JGT, true),
            };
            // The comparison's operand, then `jt N jf M` or `, L[, L]`.
            let (cmp, targets): (&str, Vec<(&str, usize)>) =
                if let Some(p) = norm.find(" jt ").or_else(|| norm.find("\tjt ")) {
                    let tail = &norm[p..];
                    let parts: Vec<&str> = tail.split_whitespace().collect();
                    if parts.len() != 4 || parts[0] != "jt" || parts[2] != "jf" || negated {
                        return Err((
                            op_at + p + 1,
                            "expected `jt N jf M` (instruction indices)".into(),
                        ));
                    }
                    let col = |s: &str| op_at + p + tail.find(s).unwrap_or(0);
                    (
                        norm[..p].trim(),
                        vec![(parts[1], col(parts[1])), (parts[3], col(parts[3]))],
                    )
                } else {
                    let mut pieces = norm.split(',');
                    let cmp = pieces.next().unwrap_or("").trim();
                    let mut off = norm.find(',').map_or(norm.len(), |c| c + 1);
                    let mut ts = Vec::new();
                    for piece in pieces {
                        let lead = piece.len() - piece.trim_start().len();
                        ts.push((piece.trim(), op_at + off + lead));
                        off += piece.len() + 1;
                    }
                    (cmp, ts)
                };
            let code = match cmp.trim_start_matches('%').to_ascii_lowercase().as_str() {
                "x" => class::JMP | o | src::X,
                c => match imm(c) {
                    Some(k) => {
                        return finish_jump(
                            n,
                            mnem,
                            class::JMP | o | src::K,
                            k,
                            negated,
                            &targets,
                            op_at,
                        );
                    }
                    None => return bad("expected #N or x"),
                },
            };
            finish_jump(n, mnem, code, 0, negated, &targets, op_at)
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
            if lower == "x" {
                return ins(class::ALU | o | src::X, 0);
            }
            match imm(&lower) {
                Some(k) => ins(class::ALU | o | src::K, k),
                None => bad("expected #N or x"),
            }
        }
        "unimp" => match lower
            .strip_prefix("0x")
            .and_then(|h| u16::from_str_radix(h, 16).ok())
        {
            Some(code) => ins(code, 0),
            None => bad("expected 0xCODE"),
        },
        _ => Err((mnem_at, format!("unknown instruction {mnem:?}"))),
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A conditional jump's targets: two (true, false) or, in `bpf_asm`, one
/// (the true way, or the false way for `jne`/`jlt`/`jle`; the other way
/// is the next instruction).
fn finish_jump(
    n: usize,
    mnem: &str,
    code: u16,
    k: u32,
    negated: bool,
    targets: &[(&str, usize)],
    op_at: usize,
) -> Result<Stmt, (usize, String)> {
    let target = |(s, col): (&str, usize)| -> Result<Target, (usize, String)> {
        match s.parse::<usize>() {
            Ok(to) => Ok(Target::Index(to, col)),
            Err(_) if is_label(s) => Ok(Target::Label(s.to_string(), col)),
            Err(_) => Err((
                col,
                format!("{mnem}: {s:?} is neither an instruction index nor a label"),
            )),
        }
    };
    let i = Insn::new(code, 0, 0, k);
    match (targets, negated) {
        ([t, f], false) => Ok((i, target(*t)?, target(*f)?)),
        ([t], false) => Ok((i, target(*t)?, Target::Next)),
        ([f], true) => Ok((i, Target::Next, target(*f)?)),
        _ => Err((
            op_at,
            format!(
                "{mnem} (instruction {n}) needs {}",
                if negated {
                    "one label: `#N, L`"
                } else {
                    "`jt N jf M`, or labels: `#N, Lt, Lf` or `#N, Lt`"
                }
            ),
        )),
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
        let e = assemble("jeq #1, yes, nowhere\nyes: ret #1\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1:14: no label \"nowhere\"");
        let e = assemble("a1: ret #0\na1: ret #1\n").unwrap_err();
        assert!(e.msg.contains("defined twice"), "{e}");
    }

    /// The kernel's bpf_asm syntax (the example of
    /// Documentation/networking/filter.rst: IPv4 TCP only), with the
    /// encoding bpf_asm gives it.
    #[test]
    fn bpf_asm_text_assembles_as_bpf_asm_does() {
        let text = "; IPv4 TCP\n  ldh [12]\n  jne #0x800, drop\n  ldb [23]\n  jneq #6, drop\n  ret #-1\n  drop: ret #0\n";
        assert_eq!(
            assemble(text).unwrap(),
            vec![
                Insn::new(0x28, 0, 0, 12),
                Insn::new(0x15, 0, 3, 0x800),
                Insn::new(0x30, 0, 0, 23),
                Insn::new(0x15, 0, 1, 6),
                Insn::new(0x06, 0, 0, u32::MAX),
                Insn::new(0x06, 0, 0, 0),
            ]
        );
        let text = "/* every form */\n#define-like line\nLDX 4*([14]&0xf)\nld [%x + 14]\nldb #vlan_pr\nld len\nldi #0b101\nldxi 010\njlt #2, out\njle x, out\njset #4, out, out\njmp out\nout: ret %a\n";
        let p = assemble(text).unwrap();
        assert_eq!(p[0], Insn::new(0xb1, 0, 0, 14));
        assert_eq!(p[1], Insn::new(0x40, 0, 0, 14));
        assert_eq!(p[2], Insn::new(0x30, 0, 0, skf::AD_OFF + 48));
        assert_eq!(p[3], Insn::new(0x80, 0, 0, 0));
        assert_eq!(p[4], Insn::new(0x00, 0, 0, 5));
        assert_eq!(p[5], Insn::new(0x01, 0, 0, 8));
        // jlt: jge with the label the false way.
        assert_eq!(p[6], Insn::new(0x35, 0, 3, 2));
        assert_eq!(p[7], Insn::new(0x2d, 0, 2, 0));
        assert_eq!(p[8], Insn::new(0x45, 1, 1, 4));
        assert_eq!(p[9], Insn::new(0x05, 0, 0, 0));
        assert_eq!(p[10], Insn::new(0x16, 0, 0, 0));
    }
}
