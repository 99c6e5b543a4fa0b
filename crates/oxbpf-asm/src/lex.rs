//! Line tokenizer shared by both assembly dialects.

/// A token with the 1-based column where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Tok {
    pub kind: Kind,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    Ident(String),
    /// `%rN` in the ubpf dialect.
    PctReg(String),
    /// Unsigned magnitude; signs are separate punctuation.
    Num(u128),
    Punct(&'static str),
}

const PUNCT: &[&str] = &[
    "s>>=", "<<=", ">>=", "s/=", "s%=", "s>=", "s<=", "+=", "-=", "*=", "/=", "|=", "&=", "%=",
    "^=", "==", "!=", ">=", "<=", "s>", "s<", "=", ">", "<", "&", "(", ")", "[", "]", ",", ":",
    "*", "+", "-",
];

/// Splits a source line (comment already removed) into tokens.
pub fn lex(line: &str) -> Result<Vec<Tok>, (usize, String)> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let col = i + 1;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // Signed operators begin with an `s` that is not part of a word.
        if c == b's'
            && i + 1 < b.len()
            && matches!(b[i + 1], b'>' | b'<' | b'/' | b'%')
            && let Some(p) = PUNCT.iter().find(|p| line[i..].starts_with(**p))
        {
            out.push(Tok {
                kind: Kind::Punct(p),
                col,
            });
            i += p.len();
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c == b'.' || c == b'$' {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'$'))
            {
                i += 1;
            }
            out.push(Tok {
                kind: Kind::Ident(line[start..i].to_string()),
                col,
            });
            continue;
        }
        if c == b'%' && i + 1 < b.len() && b[i + 1].is_ascii_alphabetic() {
            let start = i + 1;
            i += 1;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(Tok {
                kind: Kind::PctReg(line[start..i].to_string()),
                col,
            });
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let text = line[start..i].replace('_', "");
            let parsed =
                if let Some(h) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                    u128::from_str_radix(h, 16)
                } else if let Some(bin) = text.strip_prefix("0b") {
                    u128::from_str_radix(bin, 2)
                } else {
                    text.parse::<u128>()
                };
            match parsed {
                Ok(v) => out.push(Tok {
                    kind: Kind::Num(v),
                    col,
                }),
                Err(_) => return Err((col, format!("invalid number `{}`", &line[start..i]))),
            }
            continue;
        }
        if let Some(p) = PUNCT.iter().find(|p| line[i..].starts_with(**p)) {
            out.push(Tok {
                kind: Kind::Punct(p),
                col,
            });
            i += p.len();
            continue;
        }
        let ch = line[i..].chars().next().unwrap_or('?');
        return Err((col, format!("unexpected character `{ch}`")));
    }
    Ok(out)
}
