//! printf formats as bpftrace takes them (C's conversions: `%d %i %u %x
//! %X %o %c %s %p %%`, flags `-+ #0`, width, precision, length modifiers
//! `hh h l ll z j t`), checked against the argument types at compile time
//! and applied to the values at run time. As POSIX printf (and unlike
//! bpftrace), a conversion may name its argument: `%2$d` (then every
//! conversion does; an argument may be used more than once, or not at all).

use crate::types::Ty;

/// One piece of a format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Spec(Spec),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    pub left: bool,
    pub plus: bool,
    pub space: bool,
    pub alt: bool,
    pub zero: bool,
    pub width: Option<usize>,
    pub precision: Option<usize>,
    /// The length modifier's size in bytes (`hh` 1, `h` 2, none 4, `l`
    /// and `ll` 8), for truncating the value as C would.
    pub size: u8,
    pub conv: char,
    /// `%N$…`: the argument's number (from 1).
    pub arg: Option<usize>,
}

/// Splits a format into text and conversions.
pub fn parse(fmt: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            text.push('%');
            continue;
        }
        let mut s = Spec {
            size: 4,
            ..Default::default()
        };
        // `%N$`: digits and a dollar sign (else the digits are a width).
        let mut ahead = chars.clone();
        let digits: String = std::iter::from_fn(|| ahead.next_if(char::is_ascii_digit)).collect();
        if !digits.is_empty() && ahead.peek() == Some(&'$') {
            let n: usize = digits.parse().unwrap_or(usize::MAX);
            if n == 0 {
                return Err("`%0$`: arguments are numbered from 1".into());
            }
            s.arg = Some(n);
            ahead.next();
            chars = ahead;
        }
        while let Some(&f) = chars.peek() {
            match f {
                '-' => s.left = true,
                '+' => s.plus = true,
                ' ' => s.space = true,
                '#' => s.alt = true,
                '0' => s.zero = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut n = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(
                    n.unwrap_or(0usize)
                        .saturating_mul(10)
                        .saturating_add(d as usize),
                );
                chars.next();
            }
            n
        };
        s.width = num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            s.precision = Some(num(&mut chars).unwrap_or(0));
        }
        loop {
            match chars.peek() {
                Some('h') => {
                    chars.next();
                    s.size = if s.size == 2 { 1 } else { 2 };
                }
                Some('l' | 'z' | 'j' | 't') => {
                    chars.next();
                    s.size = 8;
                }
                _ => break,
            }
        }
        let Some(conv) = chars.next() else {
            return Err("the format ends inside a conversion (`%` at the end)".into());
        };
        if !"diuxXocspr".contains(conv) {
            return Err(format!("`%{conv}` is not a printf conversion bpftrace has"));
        }
        s.conv = conv;
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        out.push(Piece::Spec(s));
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Checks that `fmt`'s conversions take the argument types in order.
pub fn check(fmt: &str, args: &[Ty]) -> Result<(), String> {
    let pieces = parse(fmt)?;
    let specs: Vec<&Spec> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Spec(s) => Some(s),
            Piece::Text(_) => None,
        })
        .collect();
    let numbered = specs.iter().filter(|s| s.arg.is_some()).count();
    if numbered > 0 {
        if numbered != specs.len() {
            return Err(
                "the format numbers some conversions' arguments (`%N$`) but not all".into(),
            );
        }
        for s in &specs {
            let n = s.arg.unwrap_or(0);
            let Some(t) = args.get(n - 1) else {
                return Err(format!(
                    "`%{n}$` names argument {n} but {} argument{} follow{}",
                    args.len(),
                    if args.len() == 1 { "" } else { "s" },
                    if args.len() == 1 { "s" } else { "" }
                ));
            };
            if !matches!(s.conv, 's' | 'r') && !t.is_int() {
                return Err(format!(
                    "argument {n} is {} but its conversion `%{n}${}` wants an integer",
                    t.name(),
                    s.conv
                ));
            }
        }
        return Ok(());
    }
    if specs.len() != args.len() {
        return Err(format!(
            "the format has {} conversion{} but {} argument{} follow{}",
            specs.len(),
            if specs.len() == 1 { "" } else { "s" },
            args.len(),
            if args.len() == 1 { "" } else { "s" },
            if args.len() == 1 { "s" } else { "" }
        ));
    }
    for (i, (s, t)) in specs.iter().zip(args).enumerate() {
        let ok = match s.conv {
            's' | 'r' => true,
            _ => t.is_int(),
        };
        if !ok {
            return Err(format!(
                "argument {} is {} but its conversion `%{}` wants an integer",
                i + 1,
                t.name(),
                s.conv
            ));
        }
    }
    Ok(())
}

/// An argument at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Int(i64),
    Str(String),
}

/// Applies a parsed format.
pub fn render(pieces: &[Piece], args: &[Arg]) -> String {
    let mut out = String::new();
    let all = args;
    let mut args = args.iter();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Spec(s) => {
                let a = match s.arg {
                    Some(n) => all.get(n - 1).cloned(),
                    None => args.next().cloned(),
                };
                out.push_str(&one(s, &a.unwrap_or(Arg::Int(0))));
            }
        }
    }
    out
}

fn pad(s: &Spec, body: String, sign: &str, numeric: bool) -> String {
    let len = sign.chars().count() + body.chars().count();
    let w = s.width.unwrap_or(0);
    if len >= w {
        return format!("{sign}{body}");
    }
    let fill = w - len;
    if s.left {
        format!("{sign}{body}{}", " ".repeat(fill))
    } else if s.zero && numeric && s.precision.is_none() {
        format!("{sign}{}{body}", "0".repeat(fill))
    } else {
        format!("{}{sign}{body}", " ".repeat(fill))
    }
}

fn one(s: &Spec, a: &Arg) -> String {
    match (s.conv, a) {
        ('s', Arg::Str(t)) => {
            let t: String = match s.precision {
                Some(p) => t.chars().take(p).collect(),
                None => t.clone(),
            };
            pad(s, t, "", false)
        }
        ('s', Arg::Int(v)) => pad(s, v.to_string(), "", false),
        (_, Arg::Str(t)) => pad(s, t.clone(), "", false),
        ('c', Arg::Int(v)) => pad(s, char::from(*v as u8).to_string(), "", false),
        (conv, Arg::Int(v)) => {
            // The value as C sees it through the length modifier.
            let bits = u32::from(s.size) * 8;
            let mask = if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let raw = (*v as u64) & mask;
            let signed = if bits >= 64 {
                raw as i64
            } else {
                ((raw << (64 - bits)) as i64) >> (64 - bits)
            };
            let (mut body, sign) = match conv {
                'd' | 'i' => {
                    let sign = if signed < 0 {
                        "-"
                    } else if s.plus {
                        "+"
                    } else if s.space {
                        " "
                    } else {
                        ""
                    };
                    (signed.unsigned_abs().to_string(), sign)
                }
                'u' => (raw.to_string(), ""),
                'x' => (
                    format!("{raw:x}"),
                    if s.alt && raw != 0 { "0x" } else { "" },
                ),
                'X' => (
                    format!("{raw:X}"),
                    if s.alt && raw != 0 { "0X" } else { "" },
                ),
                'o' => (format!("{raw:o}"), if s.alt { "0" } else { "" }),
                'p' => (format!("{:x}", *v as u64), "0x"),
                _ => (raw.to_string(), ""),
            };
            if let Some(p) = s.precision
                && body.len() < p
            {
                body = format!("{}{body}", "0".repeat(p - body.len()));
            }
            pad(s, body, sign, true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: &[Arg]) -> String {
        render(&parse(fmt).unwrap(), args)
    }

    #[test]
    fn numbered_arguments_as_posix_printf() {
        use Arg::*;
        assert_eq!(
            f("%2$-6s|%1$5d|%2$s", &[Int(42), Str("ab".into())]),
            "ab    |   42|ab"
        );
        // `%5d` is a width, `%5$d` an argument number.
        assert_eq!(f("%3d", &[Int(7)]), "  7");
        assert!(check("%2$s %1$d", &[Ty::I64, Ty::Str(8)]).is_ok());
        assert!(
            check("%2$d", &[Ty::I64, Ty::Str(8)])
                .unwrap_err()
                .contains("wants an integer")
        );
        assert!(
            check("%3$d", &[Ty::I64])
                .unwrap_err()
                .contains("names argument 3")
        );
        assert!(
            check("%1$d %d", &[Ty::I64, Ty::I64])
                .unwrap_err()
                .contains("not all")
        );
        assert!(parse("%0$d").is_err());
    }

    #[test]
    fn like_c() {
        use Arg::*;
        assert_eq!(
            f(
                "%d %u %x %5d|%-5d|%05d",
                &[Int(-3), Int(3), Int(255), Int(42), Int(42), Int(42)]
            ),
            "-3 3 ff    42|42   |00042"
        );
        assert_eq!(
            f(
                "%-8s|%8s|%.2s",
                &[Str("ab".into()), Str("cd".into()), Str("xyz".into())]
            ),
            "ab      |      cd|xy"
        );
        assert_eq!(
            f("%lu %ld %llx %c %%", &[Int(-1), Int(-1), Int(-1), Int(65)]),
            "18446744073709551615 -1 ffffffffffffffff A %"
        );
        assert_eq!(
            f("%d", &[Int(1 << 40)]),
            "0",
            "%d is an int: 32 bits, as C and bpftrace"
        );
        assert_eq!(f("%p %#x", &[Int(0x1000), Int(16)]), "0x1000 0x10");
    }

    #[test]
    fn checks_counts_and_types() {
        assert!(check("%d %s\n", &[Ty::I64, Ty::Str(16)]).is_ok());
        assert!(
            check("%d\n", &[])
                .unwrap_err()
                .contains("1 conversion but 0 arguments")
        );
        assert!(
            check("%d\n", &[Ty::Str(16)])
                .unwrap_err()
                .contains("wants an integer")
        );
        assert!(check("%q", &[Ty::I64]).is_err());
    }
}
