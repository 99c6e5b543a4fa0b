//! `#if` / `#elif` expressions, as the C preprocessor evaluates them:
//! integers (decimal, hex, octal, with `u`/`l` suffixes, character
//! constants), `defined NAME` / `defined(NAME)`, macros replaced by their
//! text, identifiers that are not macros as 0, and C's operators with C's
//! precedence (`?:`, `||`, `&&`, `|`, `^`, `&`, `==`/`!=`, relations,
//! shifts, `+`/`-`, `*`/`/`/`%`, unary `!`/`~`/`-`/`+`). Arithmetic is
//! 64-bit signed, wrapping; division by zero is an error, as in cpp.

use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq)]
enum T {
    Num(i64),
    Ident(String),
    Op(&'static str),
}

const OPS: &[&str] = &[
    "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", "!", "~", "-", "+", "*", "/", "%",
    "<", ">", "&", "^", "|", "?", ":", ",",
];

fn tokens(text: &str) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(T::Num(number(&text[start..i])?));
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(T::Ident(text[start..i].to_string()));
        } else if c == b'\'' {
            // 'a', '\n', '\0', '\\'
            let rest = &text[i + 1..];
            let (v, len) = match rest.as_bytes() {
                [b'\\', e, b'\'', ..] => (
                    match e {
                        b'n' => 10,
                        b't' => 9,
                        b'r' => 13,
                        b'0' => 0,
                        x => i64::from(*x),
                    },
                    3,
                ),
                [x, b'\'', ..] => (i64::from(*x), 2),
                _ => return Err("malformed character constant".into()),
            };
            out.push(T::Num(v));
            i += 1 + len;
        } else if let Some(op) = OPS.iter().find(|o| text[i..].starts_with(**o)) {
            out.push(T::Op(op));
            i += op.len();
        } else {
            return Err(format!(
                "unexpected `{}`",
                &text[i..].chars().next().unwrap_or(' ')
            ));
        }
    }
    Ok(out)
}

fn number(s: &str) -> Result<i64, String> {
    let digits = s.trim_end_matches(['u', 'U', 'l', 'L']);
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(h, 16)
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8)
    } else {
        digits.parse::<u64>()
    };
    v.map(|v| v as i64)
        .map_err(|_| format!("`{s}` is not an integer"))
}

/// Replaces `defined` tests and macros in `toks`; a macro met inside its
/// own expansion (`active`) is not replaced again, as in cpp.
fn expand(
    toks: Vec<T>,
    defines: &HashMap<String, String>,
    active: &mut Vec<String>,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    let mut it = toks.into_iter().peekable();
    while let Some(t) = it.next() {
        match t {
            T::Ident(name) if name == "defined" => {
                let paren = it.peek() == Some(&T::Op("("));
                if paren {
                    it.next();
                }
                let Some(T::Ident(m)) = it.next() else {
                    return Err("`defined` takes a macro's name".into());
                };
                if paren && it.next() != Some(T::Op(")")) {
                    return Err("expected `)` after `defined(NAME`".into());
                }
                out.push(T::Num(i64::from(defines.contains_key(&m))));
            }
            T::Ident(name) => match defines.get(&name).filter(|_| !active.contains(&name)) {
                Some(text) => {
                    let inner = tokens(text).map_err(|e| format!("in macro `{name}`: {e}"))?;
                    active.push(name.clone());
                    let inner = expand(inner, defines, active);
                    active.pop();
                    let inner = inner?;
                    if inner.is_empty() {
                        return Err(format!("macro `{name}` is empty where a value is expected"));
                    }
                    out.push(T::Op("("));
                    out.extend(inner);
                    out.push(T::Op(")"));
                }
                None => out.push(T::Num(0)),
            },
            t => out.push(t),
        }
    }
    Ok(out)
}

struct P {
    t: Vec<T>,
    at: usize,
}

/// Binary operators by precedence level, loosest first.
const LEVELS: &[&[&str]] = &[
    &["||"],
    &["&&"],
    &["|"],
    &["^"],
    &["&"],
    &["==", "!="],
    &["<", ">", "<=", ">="],
    &["<<", ">>"],
    &["+", "-"],
    &["*", "/", "%"],
];

impl P {
    fn peek_op(&self) -> Option<&'static str> {
        match self.t.get(self.at) {
            Some(T::Op(o)) => Some(o),
            _ => None,
        }
    }

    fn cond(&mut self) -> Result<i64, String> {
        let c = self.binary(0)?;
        if self.peek_op() == Some("?") {
            self.at += 1;
            let a = self.cond()?;
            if self.peek_op() != Some(":") {
                return Err("expected `:` in `?:`".into());
            }
            self.at += 1;
            let b = self.cond()?;
            return Ok(if c != 0 { a } else { b });
        }
        Ok(c)
    }

    fn binary(&mut self, level: usize) -> Result<i64, String> {
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut l = self.binary(level + 1)?;
        while let Some(op) = self.peek_op().filter(|o| LEVELS[level].contains(o)) {
            self.at += 1;
            let r = self.binary(level + 1)?;
            l = match op {
                "||" => i64::from(l != 0 || r != 0),
                "&&" => i64::from(l != 0 && r != 0),
                "|" => l | r,
                "^" => l ^ r,
                "&" => l & r,
                "==" => i64::from(l == r),
                "!=" => i64::from(l != r),
                "<" => i64::from(l < r),
                ">" => i64::from(l > r),
                "<=" => i64::from(l <= r),
                ">=" => i64::from(l >= r),
                "<<" => l.wrapping_shl(r as u32),
                ">>" => l.wrapping_shr(r as u32),
                "+" => l.wrapping_add(r),
                "-" => l.wrapping_sub(r),
                "*" => l.wrapping_mul(r),
                "/" | "%" if r == 0 => return Err("division by zero".into()),
                "/" => l.wrapping_div(r),
                _ => l.wrapping_rem(r),
            };
        }
        Ok(l)
    }

    fn unary(&mut self) -> Result<i64, String> {
        let t = self.t.get(self.at).cloned();
        self.at += 1;
        match t {
            Some(T::Num(n)) => Ok(n),
            Some(T::Op("!")) => Ok(i64::from(self.unary()? == 0)),
            Some(T::Op("~")) => Ok(!self.unary()?),
            Some(T::Op("-")) => Ok(self.unary()?.wrapping_neg()),
            Some(T::Op("+")) => self.unary(),
            Some(T::Op("(")) => {
                let v = self.cond()?;
                if self.peek_op() != Some(")") {
                    return Err("expected `)`".into());
                }
                self.at += 1;
                Ok(v)
            }
            Some(T::Op(o)) => Err(format!("expected a value, found `{o}`")),
            Some(T::Ident(i)) => Err(format!("unexpected `{i}`")),
            None => Err("expected a value at the end of the line".into()),
        }
    }
}

/// The value of an `#if` expression with these macros defined.
pub fn eval(text: &str, defines: &HashMap<String, String>) -> Result<i64, String> {
    let toks = expand(tokens(text)?, defines, &mut Vec::new())?;
    if toks.is_empty() {
        return Err("#if without an expression".into());
    }
    let mut p = P { t: toks, at: 0 };
    let v = p.cond()?;
    if let Some(t) = p.t.get(p.at) {
        return Err(format!("unexpected {t:?} after the expression"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs(d: &[(&str, &str)]) -> HashMap<String, String> {
        d.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn cpp_arithmetic_and_defined() {
        let d = defs(&[
            ("A", "1"),
            ("B", ""),
            ("V", "(A + 2) * 3"),
            ("X", "0x10"),
            ("SELF", "SELF"),
        ]);
        for (e, v) in [
            ("0", 0),
            ("1", 1),
            ("defined(A) && defined B", 1),
            ("defined(A) && defined(C)", 0),
            ("!defined(C) || 0", 1),
            ("V == 9", 1),
            ("X >> 2", 4),
            ("UNKNOWN", 0),
            ("UNKNOWN + 1 ? 7 : 8", 7),
            ("1 + 2 * 3 - 4 / 2 % 3", 5),
            ("-1 < 0", 1),
            ("~0 == -1", 1),
            ("010 == 8", 1),
            ("'a' == 97", 1),
            ("10UL > 9", 1),
            ("SELF", 0),
            ("1 | 2 ^ 3 & 4", 3),
        ] {
            assert_eq!(eval(e, &d), Ok(v), "{e}");
        }
    }

    #[test]
    fn malformed_expressions_are_errors() {
        let d = defs(&[("B", "")]);
        for e in ["", "1 +", "(1", "1 / 0", "defined(", "B", "1 2", "$", "'ab"] {
            assert!(eval(e, &d).is_err(), "{e}");
        }
    }
}
