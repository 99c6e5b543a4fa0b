//! Tokens of the bpftrace language, with spans. The lexer is pulled by
//! the parser, which also asks it for attach points (`kprobe:vfs_*`,
//! `uprobe:/bin/bash:readline`), whose characters follow rules of their
//! own. Preprocessor lines (`#include`, `#define`, `#ifdef`, …) are
//! handled here: includes are skipped (types come from BTF), object-like
//! macros are expanded, and conditionals see `BPFTRACE_HAVE_BTF` defined.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Span};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// An identifier or keyword (`if`, `pid`, `printf`, `struct`, …).
    Ident(String),
    /// `$name`.
    Var(String),
    /// `@name` (`@` alone: the empty name).
    Map(String),
    /// `$1`, `$2`, …
    Param(u32),
    /// `$#`.
    ParamCount,
    Int(u64),
    Str(String),
    /// Operators and punctuation.
    Punct(&'static str),
    Eof,
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Var(s) => write!(f, "`${s}`"),
            Tok::Map(s) => write!(f, "`@{s}`"),
            Tok::Param(n) => write!(f, "`${n}`"),
            Tok::ParamCount => f.write_str("`$#`"),
            Tok::Int(n) => write!(f, "`{n}`"),
            Tok::Str(_) => f.write_str("a string"),
            Tok::Punct(p) => write!(f, "`{p}`"),
            Tok::Eof => f.write_str("the end of the script"),
        }
    }
}

/// Longest first, so that `<<=` wins over `<<` and `<`.
const PUNCTS: &[&str] = &[
    "<<=", ">>=", "...", "->", "++", "--", "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "+=",
    "-=", "*=", "/=", "%=", "&=", "|=", "^=", "..", "+", "-", "*", "/", "%", "&", "|", "^", "~",
    "!", "<", ">", "=", "?", ":", ".", ",", ";", "(", ")", "[", "]", "{", "}",
];

/// Names the preprocessor considers defined before the script's own.
const PREDEFINED: &[&str] = &["BPFTRACE_HAVE_BTF"];

pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    /// `#define NAME TEXT`: the text, lexed where the name is used.
    defines: HashMap<String, String>,
    /// Tokens of a macro being expanded (all with the use's span).
    pending: Vec<(Tok, Span)>,
    /// Open `#if…` blocks.
    conds: Vec<Cond>,
}

/// An open `#if…` block.
#[derive(Clone, Copy, Debug)]
struct Cond {
    /// Taking the lines of its current branch (and its parents are).
    taking: bool,
    /// A branch has been taken (or the parent takes none): the `#elif`s
    /// and `#else` after it are not.
    done: bool,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            defines: PREDEFINED
                .iter()
                .map(|d| (d.to_string(), "1".to_string()))
                .collect(),
            pending: Vec::new(),
            conds: Vec::new(),
        }
    }

    pub fn source(&self) -> &'a str {
        self.src
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn err(&self, start: usize, msg: impl Into<String>) -> Diagnostic {
        let end = (start + 1).min(self.src.len()).max(start);
        Diagnostic::new(Span::new(start, end), msg)
    }

    /// Skips whitespace, comments and preprocessor lines (and the lines an
    /// `#if…` leaves out).
    fn skip_trivia(&mut self) -> Result<(), Diagnostic> {
        loop {
            let r = self.rest();
            let at_line_start = self.src[..self.pos]
                .rsplit('\n')
                .next()
                .is_some_and(|l| l.trim().is_empty());
            if let Some(c) = r.chars().next()
                && c.is_whitespace()
            {
                self.pos += c.len_utf8();
            } else if r.starts_with("//") {
                self.pos += r.find('\n').unwrap_or(r.len());
            } else if let Some(body) = r.strip_prefix("/*") {
                let end = body
                    .find("*/")
                    .ok_or_else(|| self.err(self.pos, "unterminated comment"))?;
                self.pos += end + 4;
            } else if r.starts_with('#') && at_line_start {
                self.directive()?;
            } else if self.conds.last().is_some_and(|c| !c.taking) && !r.is_empty() {
                // Inside a false `#if…`: skip the line.
                self.pos += r.find('\n').unwrap_or(r.len());
            } else {
                return Ok(());
            }
        }
    }

    /// The truth of an `#if`/`#elif` expression.
    fn condition(&self, start: usize, expr: &str) -> Result<bool, Diagnostic> {
        // A trailing `// comment` is not part of it.
        let expr = expr.split("//").next().unwrap_or("");
        crate::ppexpr::eval(expr, &self.defines)
            .map(|v| v != 0)
            .map_err(|e| self.err(start, format!("#if: {e}")))
    }

    /// Defines an object-like macro before the text is read.
    pub fn define(&mut self, name: &str, text: &str) {
        self.defines.insert(name.to_string(), text.to_string());
    }

    /// One preprocessor line (with `\` continuations).
    fn directive(&mut self) -> Result<(), Diagnostic> {
        let start = self.pos;
        let mut end = start;
        loop {
            let line_end = self.src[end..]
                .find('\n')
                .map_or(self.src.len(), |i| end + i);
            if self.src[end..line_end].trim_end().ends_with('\\') && line_end < self.src.len() {
                end = line_end + 1;
            } else {
                end = line_end;
                break;
            }
        }
        self.pos = end;
        let line = self.src[start + 1..end].replace("\\\n", " ");
        let line = line.trim();
        let (word, rest) = line
            .split_once(|c: char| c.is_whitespace())
            .map_or((line, ""), |(w, r)| (w, r.trim()));
        let taking = self.conds.last().is_none_or(|c| c.taking);
        // `#!/usr/bin/env bpftrace` on the first line: an executable
        // script's interpreter line.
        if start == 0 && line.starts_with('!') {
            return Ok(());
        }
        let open = |lexer: &mut Self, v: bool| {
            lexer.conds.push(Cond {
                taking: taking && v,
                done: !taking || v,
            })
        };
        match word {
            "ifdef" | "ifndef" => {
                let defined = self.defines.contains_key(rest);
                open(self, defined == (word == "ifdef"));
            }
            "if" => {
                let v = if taking {
                    self.condition(start, rest)?
                } else {
                    false
                };
                open(self, v);
            }
            "elif" => {
                let Some(&c) = self.conds.last() else {
                    return Err(self.err(start, "#elif without #if"));
                };
                let v = !c.done && self.condition(start, rest)?;
                if let Some(c) = self.conds.last_mut() {
                    c.taking = v;
                    c.done |= v;
                }
            }
            "else" => match self.conds.last_mut() {
                Some(c) => {
                    c.taking = !c.done;
                    c.done = true;
                }
                None => return Err(self.err(start, "#else without #if")),
            },
            "endif" => {
                if self.conds.pop().is_none() {
                    return Err(self.err(start, "#endif without #if"));
                }
            }
            _ if !taking => {}
            "define" => {
                let (name, text) = rest
                    .split_once(|c: char| c.is_whitespace())
                    .map_or((rest, ""), |(n, t)| (n, t.trim()));
                if name.contains('(') {
                    return Err(self.err(
                        start,
                        "function-like macros are not supported (object-like #define NAME VALUE is)",
                    ));
                }
                self.defines.insert(name.to_string(), text.to_string());
            }
            "undef" => {
                self.defines.remove(rest);
            }
            // Types come from BTF: headers are not read; the macros of
            // common ones are known (crate::headers).
            "include" => {
                let name = rest.trim_matches(|c| matches!(c, '<' | '>' | '"'));
                for (m, v) in crate::headers::macros(name) {
                    self.defines
                        .entry((*m).to_string())
                        .or_insert_with(|| v.to_string());
                }
            }
            "pragma" | "warning" => {}
            "error" => return Err(self.err(start, format!("#error {rest}"))),
            _ => return Err(self.err(start, format!("unknown preprocessor directive `#{word}`"))),
        }
        Ok(())
    }

    /// The next token and its span.
    pub fn next_token(&mut self) -> Result<(Tok, Span), Diagnostic> {
        if let Some(t) = self.pending.pop() {
            return Ok(t);
        }
        self.skip_trivia()?;
        let start = self.pos;
        let r = self.rest();
        let Some(c) = r.chars().next() else {
            if !self.conds.is_empty() {
                return Err(self.err(start, "#if without #endif"));
            }
            return Ok((Tok::Eof, Span::new(start, start)));
        };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            let n = ident_len(r);
            let word = &r[..n];
            self.pos += n;
            if let Some(text) = self.defines.get(word).cloned() {
                // Expand: lex the definition, every token at the use.
                let mut sub = Lexer::new(&text);
                sub.defines = self.defines.clone();
                sub.defines.remove(word);
                let mut toks = Vec::new();
                loop {
                    match sub.next_token() {
                        Ok((Tok::Eof, _)) => break,
                        Ok((t, _)) => toks.push((t, Span::new(start, self.pos))),
                        Err(e) => {
                            return Err(Diagnostic::new(
                                Span::new(start, self.pos),
                                format!("in the expansion of `{word}`: {}", e.message),
                            ));
                        }
                    }
                }
                toks.reverse();
                self.pending = toks;
                return self.next_token();
            }
            Tok::Ident(word.to_string())
        } else if c == '$' {
            let after = &r[1..];
            if after.starts_with('#') {
                self.pos += 2;
                Tok::ParamCount
            } else if after.starts_with(|c: char| c.is_ascii_digit()) {
                let n = after.chars().take_while(char::is_ascii_digit).count();
                self.pos += 1 + n;
                let v = after[..n]
                    .parse()
                    .map_err(|_| self.err(start, "positional parameter number too large"))?;
                Tok::Param(v)
            } else {
                let n = ident_len(after);
                if n == 0 {
                    return Err(self.err(start, "expected a variable name after `$`"));
                }
                self.pos += 1 + n;
                Tok::Var(after[..n].to_string())
            }
        } else if c == '@' {
            let n = ident_len(&r[1..]);
            self.pos += 1 + n;
            Tok::Map(r[1..1 + n].to_string())
        } else if c.is_ascii_digit() {
            self.number(start)?
        } else if c == '"' {
            self.string(start)?
        } else if let Some(p) = PUNCTS.iter().find(|p| r.starts_with(*p)) {
            self.pos += p.len();
            Tok::Punct(p)
        } else {
            return Err(self.err(start, format!("unexpected character `{c}`")));
        };
        Ok((tok, Span::new(start, self.pos)))
    }

    fn number(&mut self, start: usize) -> Result<Tok, Diagnostic> {
        let r = self.rest();
        let n = r
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(r.len(), |(i, _)| i);
        let text: String = r[..n].chars().filter(|&c| c != '_').collect();
        self.pos += n;
        let bad = || {
            Diagnostic::new(
                Span::new(start, start + n),
                format!("`{}` is not a valid integer", &r[..n]),
            )
        };
        let lower = text.to_ascii_lowercase();
        let v = if let Some(h) = lower.strip_prefix("0x") {
            u64::from_str_radix(h, 16).map_err(|_| bad())?
        } else if let Some(b) = lower.strip_prefix("0b") {
            u64::from_str_radix(b, 2).map_err(|_| bad())?
        } else if let Some((m, e)) = lower.split_once('e') {
            // Scientific notation for integers: 1e6.
            let m: u64 = m.parse().map_err(|_| bad())?;
            let e: u32 = e.parse().map_err(|_| bad())?;
            10u64
                .checked_pow(e)
                .and_then(|p| m.checked_mul(p))
                .ok_or_else(bad)?
        } else if lower.len() > 1
            && lower.starts_with('0')
            && lower.bytes().all(|b| b.is_ascii_digit())
        {
            u64::from_str_radix(&lower[1..], 8).map_err(|_| bad())?
        } else {
            // C's integer suffixes (`123UL`) change nothing; duration
            // suffixes make nanoseconds (`100ms`, `1m`), as in bpftrace.
            let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            let mult: u64 = match &lower[digits.len()..] {
                "" | "ns" | "u" | "l" | "ul" | "lu" | "ll" | "ull" | "llu" => 1,
                "us" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "d" => 86_400_000_000_000,
                _ => return Err(bad()),
            };
            let v: u64 = digits.parse().map_err(|_| bad())?;
            v.checked_mul(mult).ok_or_else(bad)?
        };
        Ok(Tok::Int(v))
    }

    fn string(&mut self, start: usize) -> Result<Tok, Diagnostic> {
        let mut out = String::new();
        let mut chars = self.rest()[1..].char_indices();
        loop {
            let Some((i, c)) = chars.next() else {
                return Err(self.err(start, "unterminated string"));
            };
            match c {
                '"' => {
                    self.pos += 1 + i + 1;
                    return Ok(Tok::Str(out));
                }
                '\n' => return Err(self.err(start, "unterminated string (a newline inside it)")),
                '\\' => {
                    let Some((j, e)) = chars.next() else {
                        return Err(self.err(start, "unterminated string"));
                    };
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '\\' => out.push('\\'),
                        '"' => out.push('"'),
                        '\'' => out.push('\''),
                        'x' => {
                            let digits: String = self.rest()[1 + j + 1..]
                                .chars()
                                .take_while(char::is_ascii_hexdigit)
                                .take(2)
                                .collect();
                            let v = u8::from_str_radix(&digits, 16).map_err(|_| {
                                self.err(self.pos + 1 + j, "\\x needs one or two hex digits")
                            })?;
                            for _ in 0..digits.len() {
                                chars.next();
                            }
                            out.push(v as char);
                        }
                        '0'..='7' => {
                            let digits: String = self.rest()[1 + j..]
                                .chars()
                                .take_while(|c| ('0'..='7').contains(c))
                                .take(3)
                                .collect();
                            let v = u32::from_str_radix(&digits, 8).unwrap_or(0).min(255);
                            for _ in 1..digits.len() {
                                chars.next();
                            }
                            out.push(char::from(v as u8));
                        }
                        other => {
                            return Err(self.err(
                                self.pos + 1 + j - 1,
                                format!("unknown escape `\\{other}` in a string"),
                            ));
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }

    /// An attach point at the current position: everything up to
    /// whitespace, `,` or `{` (a `"…"` part may hold any of them), e.g.
    /// `tracepoint:syscalls:sys_enter_*`, `uprobe:/bin/bash:readline`,
    /// `i:ms:100`. `None` at the end of the script.
    pub fn attach_point(&mut self) -> Result<Option<(String, Span)>, Diagnostic> {
        self.skip_trivia()?;
        let start = self.pos;
        let mut out = String::new();
        let mut chars = self.rest().char_indices().peekable();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() || c == ',' || c == '{' {
                break;
            }
            // A `/` after the attach point itself begins a predicate:
            // only at the start of a new token (`kprobe:f /pid/`), which
            // whitespace already ended. Inside, `/` is part of a path.
            if c == '/' && self.rest()[i..].starts_with("/*") {
                break;
            }
            chars.next();
            if c == '"' {
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, c)) => out.push(c),
                        None => {
                            return Err(
                                self.err(start + i, "unterminated string in an attach point")
                            );
                        }
                    }
                }
            } else {
                out.push(c);
            }
        }
        let end = chars.peek().map_or(self.src.len(), |&(i, _)| start + i);
        self.pos = end;
        if out.is_empty() {
            return Ok(None);
        }
        // A part between colons that names a macro is replaced by its
        // text, as the preprocessor replaces a name anywhere
        // (`interval:s:INTERVAL`).
        if out.contains(':') {
            out = out
                .split(':')
                .map(|part| match self.defines.get(part) {
                    Some(text) if ident_len(part) == part.len() && !part.is_empty() => {
                        // A string literal's text, as a quoted part of an
                        // attach point gives it (`#define LIBC "/lib/…"`).
                        let t = text.trim();
                        match t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                            Some(inner) if t.len() >= 2 => inner.to_string(),
                            _ => t.to_string(),
                        }
                    }
                    _ => part.to_string(),
                })
                .collect::<Vec<_>>()
                .join(":");
        }
        Ok(Some((out, Span::new(start, end))))
    }

    /// Whether the next character (after trivia) is `c`.
    pub fn peek_char(&mut self) -> Result<Option<char>, Diagnostic> {
        if let Some((t, _)) = self.pending.last() {
            return Ok(match t {
                Tok::Punct(p) => p.chars().next(),
                _ => Some('a'),
            });
        }
        self.skip_trivia()?;
        Ok(self.rest().chars().next())
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Goes back to `pos` (the start of a token already read; the
    /// preprocessor lines before it stay processed).
    pub fn rewind(&mut self, pos: usize) {
        self.pos = pos.min(self.src.len());
        self.pending.clear();
    }
}

fn ident_len(s: &str) -> usize {
    s.char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(s.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let mut l = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            match l.next_token().unwrap() {
                (Tok::Eof, _) => return out,
                (t, _) => out.push(t),
            }
        }
    }

    #[test]
    fn tokens_of_expressions() {
        assert_eq!(
            toks(r#"@x[comm, $1] += 0x10 << 2; $y = "a\tb\x41\101"; $#"#),
            vec![
                Tok::Map("x".into()),
                Tok::Punct("["),
                Tok::Ident("comm".into()),
                Tok::Punct(","),
                Tok::Param(1),
                Tok::Punct("]"),
                Tok::Punct("+="),
                Tok::Int(16),
                Tok::Punct("<<"),
                Tok::Int(2),
                Tok::Punct(";"),
                Tok::Var("y".into()),
                Tok::Punct("="),
                Tok::Str("a\tbAA".into()),
                Tok::Punct(";"),
                Tok::ParamCount,
            ]
        );
        assert_eq!(
            toks("1_000 1e3 010 0b11"),
            vec![Tok::Int(1000), Tok::Int(1000), Tok::Int(8), Tok::Int(3)]
        );
        assert_eq!(
            toks("100ms 1s 2m 1d 5ns 7us 0ms 123UL 9ll"),
            vec![
                Tok::Int(100_000_000),
                Tok::Int(1_000_000_000),
                Tok::Int(120_000_000_000),
                Tok::Int(86_400_000_000_000),
                Tok::Int(5),
                Tok::Int(7_000),
                Tok::Int(0),
                Tok::Int(123),
                Tok::Int(9),
            ]
        );
        let mut l = Lexer::new("3xs");
        assert!(
            l.next_token()
                .unwrap_err()
                .message
                .contains("`3xs` is not a valid integer")
        );
        let mut l = Lexer::new("99999999999d");
        assert!(l.next_token().is_err(), "overflow");
        assert_eq!(
            toks("@ = 1 // c\n/* d */"),
            vec![Tok::Map(String::new()), Tok::Punct("="), Tok::Int(1)]
        );
    }

    #[test]
    fn the_preprocessor_expands_and_selects() {
        let src = "#include <linux/sched.h>\n#define N 3\n#ifdef BPFTRACE_HAVE_BTF\nN\n#else\n4\n#endif\n#ifndef BPFTRACE_HAVE_BTF\n5\n#endif\n";
        assert_eq!(toks(src), vec![Tok::Int(3)]);
        let mut l = Lexer::new("#ifdef X\n1\n");
        assert!(l.next_token().unwrap_err().message.contains("#endif"));
        // #if expressions and #elif chains, nested, as cpp takes them.
        let src = "#define A 2\n#if A > 1 && !defined(B) // why\n10\n#elif 1\n11\n#else\n12\n#endif\n\
                   #if defined(B)\n20\n#elif A == 2\n21\n#if 0\n22\n#elif 1\n23\n#endif\n#elif 1\n24\n#else\n25\n#endif\n\
                   #if 0\n#if 1\n30\n#else\n31\n#endif\n#elif 0\n32\n#else\n33\n#endif\n";
        assert_eq!(
            toks(src),
            vec![Tok::Int(10), Tok::Int(21), Tok::Int(23), Tok::Int(33)]
        );
        for (src, msg) in [
            ("#elif 1\n", "#elif without #if"),
            ("#if 1 +\n#endif\n", "#if: expected a value"),
            ("#if 1 / 0\n#endif\n", "#if: division by zero"),
            (
                "#ifndef X\n#error X is needed\n#endif\n",
                "#error X is needed",
            ),
        ] {
            let mut l = Lexer::new(src);
            let e = l.next_token().unwrap_err();
            assert!(e.message.contains(msg), "{src}: {}", e.message);
        }
    }

    #[test]
    fn attach_points_keep_paths_and_quotes() {
        let mut l = Lexer::new("uprobe:/bin/bash:readline, u:\"/a b/c\":f /pid == 1/ {");
        assert_eq!(
            l.attach_point().unwrap().unwrap().0,
            "uprobe:/bin/bash:readline"
        );
        assert_eq!(l.next_token().unwrap().0, Tok::Punct(","));
        assert_eq!(l.attach_point().unwrap().unwrap().0, "u:/a b/c:f");
        assert_eq!(l.next_token().unwrap().0, Tok::Punct("/"));
        // A macro for a part: its text, a string literal's unquoted.
        let mut l = Lexer::new("#define LIB \"/lib/x y.so\"\n#define F f\nuprobe:LIB:F {");
        assert_eq!(l.attach_point().unwrap().unwrap().0, "uprobe:/lib/x y.so:f");
    }

    #[test]
    fn bad_input_is_an_error_at_its_place() {
        let mut l = Lexer::new("  \"abc");
        let e = l.next_token().unwrap_err();
        assert_eq!(e.span.start, 2);
        assert!(Lexer::new("`").next_token().is_err());
        assert!(Lexer::new("12ab").next_token().is_err());
        assert!(Lexer::new("/* x").next_token().is_err());
    }
}
