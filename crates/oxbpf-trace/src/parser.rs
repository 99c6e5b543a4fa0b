//! A recursive-descent parser for bpftrace scripts (C precedence for
//! expressions), producing the [`crate::ast`] with spans. The first error
//! ends the parse, named at its place.

use crate::ast::*;
use crate::diag::{Diagnostic, Span};
use crate::lexer::{Lexer, Tok};

/// Parses a whole script.
pub fn parse(src: &str) -> Result<Program, Diagnostic> {
    parse_with(src, &[])
}

/// Parses a whole script with macros defined before its first line (as
/// `-D NAME=VALUE` does for a C compiler): how a tool's options reach
/// its script (`#ifdef FILTER_PID`).
pub fn parse_with(src: &str, defines: &[(String, String)]) -> Result<Program, Diagnostic> {
    // No name the kernel or an object file holds can contain a NUL (object
    // files end their strings with one), so no script may.
    if let Some(at) = src.find('\0') {
        return Err(Diagnostic::new(
            Span::new(at, at + 1),
            "the script contains a NUL byte",
        ));
    }
    let mut lex = Lexer::new(src);
    for (name, text) in defines {
        lex.define(name, text);
    }
    let mut p = Parser {
        lex,
        peeked: None,
        depth: 0,
    };
    let prog = p.program().map_err(|mut d| {
        // A place at the very end (a missing `}`) is the last character.
        d.span.end = d.span.end.min(src.len());
        d.span.start = d.span.start.min(d.span.end);
        d
    })?;
    // Chains of binary operators nest without recursing here (`1+1+…`
    // parses in a loop) but would recurse in every later pass.
    for p in &prog.probes {
        let too_deep = p
            .predicate
            .iter()
            .find_map(|e| expr_too_deep(e, 0))
            .or_else(|| p.body.iter().find_map(|s| stmt_too_deep(s, 0)));
        if let Some(span) = too_deep {
            return Err(Diagnostic::new(
                span,
                format!(
                    "the script nests too deeply (more than {MAX_TREE} levels: split long expressions with variables)"
                ),
            ));
        }
    }
    Ok(prog)
}

/// Nesting deeper than this is refused (a hostile script cannot overflow
/// the stack).
const MAX_DEPTH: u32 = 100;

/// The deepest syntax tree the compiler takes.
const MAX_TREE: u32 = 100;

/// Where an expression nests deeper than [`MAX_TREE`] (recursion stops
/// there, so this is bounded too).
fn expr_too_deep(e: &Expr, d: u32) -> Option<Span> {
    if d > MAX_TREE {
        return Some(e.span);
    }
    let d = d + 1;
    let one = |x: &Expr| expr_too_deep(x, d);
    match &e.kind {
        ExprKind::Map { keys: xs, .. } | ExprKind::Call { args: xs, .. } | ExprKind::Tuple(xs) => {
            xs.iter().find_map(one)
        }
        ExprKind::Binary { lhs, rhs, .. } => one(lhs).or_else(|| one(rhs)),
        ExprKind::Index { expr, index } => one(expr).or_else(|| one(index)),
        ExprKind::Unary { expr, .. }
        | ExprKind::Field { expr, .. }
        | ExprKind::Cast { expr, .. }
        | ExprKind::SizeofExpr(expr) => one(expr),
        ExprKind::IncDec { target, .. } => one(target),
        ExprKind::Ternary { cond, then, els } => {
            one(cond).or_else(|| one(then)).or_else(|| one(els))
        }
        _ => None,
    }
}

fn stmt_too_deep(s: &Stmt, d: u32) -> Option<Span> {
    if d > MAX_TREE {
        return Some(s.span);
    }
    let d = d + 1;
    let body = |b: &[Stmt]| b.iter().find_map(|s| stmt_too_deep(s, d));
    let e = |x: &Expr| expr_too_deep(x, d);
    match &s.kind {
        StmtKind::Expr(x) | StmtKind::Return(Some(x)) => e(x),
        StmtKind::Assign { target, value, .. } => e(target).or_else(|| e(value)),
        StmtKind::Let { value, .. } => value.as_ref().and_then(e),
        StmtKind::If { cond, then, els } => e(cond).or_else(|| body(then)).or_else(|| body(els)),
        StmtKind::While { cond, body: b }
        | StmtKind::Unroll {
            count: cond,
            body: b,
        } => e(cond).or_else(|| body(b)),
        StmtKind::For { iter, body: b, .. } => match iter {
            ForIter::Range(x, y) => e(x).or_else(|| e(y)),
            ForIter::Map(..) => None,
        }
        .or_else(|| body(b)),
        StmtKind::Block(b) => body(b),
        _ => None,
    }
}

/// Type names a cast or a `let` may start with.
const TYPE_WORDS: &[&str] = &[
    "struct", "union", "enum", "unsigned", "signed", "int", "char", "short", "long", "void",
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "u8", "u16",
    "u32", "u64", "s8", "s16", "s32", "s64", "__u8", "__u16", "__u32", "__u64", "__s8", "__s16",
    "__s32", "__s64", "size_t", "pid_t", "string", "inet", "buffer", "usym_t", "ksym_t",
];

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<(Tok, Span)>,
    depth: u32,
}

type R<T> = Result<T, Diagnostic>;

impl<'a> Parser<'a> {
    fn peek(&mut self) -> R<&Tok> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next_token()?);
        }
        Ok(&self.peeked.as_ref().expect("just set").0)
    }

    fn peek_span(&mut self) -> R<Span> {
        self.peek()?;
        Ok(self.peeked.as_ref().expect("peeked").1)
    }

    fn next(&mut self) -> R<(Tok, Span)> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next_token(),
        }
    }

    fn is_punct(&mut self, p: &str) -> R<bool> {
        Ok(matches!(self.peek()?, Tok::Punct(q) if *q == p))
    }

    fn is_word(&mut self, w: &str) -> R<bool> {
        Ok(matches!(self.peek()?, Tok::Ident(q) if q == w))
    }

    fn eat(&mut self, p: &str) -> R<bool> {
        if self.is_punct(p)? {
            self.next()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn expect(&mut self, p: &str, what: &str) -> R<Span> {
        let (t, span) = self.next()?;
        match t {
            Tok::Punct(q) if q == p => Ok(span),
            t => Err(Diagnostic::new(
                span,
                format!("expected `{p}` {what}, found {t}"),
            )),
        }
    }

    fn deeper(&mut self, span: Span) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Diagnostic::new(span, "the script nests too deeply"));
        }
        Ok(())
    }

    fn program(&mut self) -> R<Program> {
        let mut prog = Program {
            config: Vec::new(),
            structs: Vec::new(),
            probes: Vec::new(),
        };
        loop {
            // What starts here: `config =`, a struct definition, or a probe
            // (whose attach points are lexed by their own rules).
            let save = (self.lex.pos(), self.peeked.clone());
            if self.peeked.is_none() && self.lex.peek_char()?.is_none() {
                break;
            }
            match self.peek()?.clone() {
                Tok::Eof => break,
                Tok::Ident(w) if w == "config" => {
                    let span = self.next()?.1;
                    if self.is_punct("=")? {
                        self.next()?;
                        prog.config.extend(self.config_block()?);
                        continue;
                    }
                    return Err(Diagnostic::new(span, "expected `=` after `config`"));
                }
                Tok::Ident(w) if w == "struct" || w == "union" => {
                    prog.structs.push(self.struct_def()?);
                    continue;
                }
                Tok::Ident(w) if w == "enum" => {
                    self.enum_def()?;
                    continue;
                }
                _ => {}
            }
            // Back to before the peeked token: attach points are raw text.
            if let Some((_, span)) = &save.1 {
                self.reset_to(span.start);
            } else {
                self.reset_to(save.0);
            }
            prog.probes.push(self.probe()?);
        }
        Ok(prog)
    }

    /// `enum [NAME] { A = 1, B, … };`: each enumerator becomes a name for
    /// its value in the rest of the script (C's rule: one more than the
    /// one before, 0 first).
    fn enum_def(&mut self) -> R<()> {
        self.next()?;
        if let Tok::Ident(_) = self.peek()? {
            self.next()?;
        }
        self.expect("{", "to open the enum")?;
        let mut next: i64 = 0;
        while !self.eat("}")? {
            let (t, span) = self.next()?;
            let Tok::Ident(name) = t else {
                return Err(Diagnostic::new(
                    span,
                    format!("expected an enumerator's name, found {t}"),
                ));
            };
            if self.eat("=")? {
                let neg = self.eat("-")?;
                let (t, span) = self.next()?;
                let Tok::Int(v) = t else {
                    return Err(Diagnostic::new(
                        span,
                        "expected an integer for the enumerator",
                    ));
                };
                let v = i64::try_from(v)
                    .map_err(|_| Diagnostic::new(span, "the enumerator's value is too large"))?;
                next = if neg { -v } else { v };
            }
            self.lex.define(&name, &next.to_string());
            next = next.wrapping_add(1);
            if !self.eat(",")? && !self.is_punct("}")? {
                let s = self.peek_span()?;
                return Err(Diagnostic::new(
                    s,
                    "expected `,` or `}` after an enumerator",
                ));
            }
        }
        self.eat(";")?;
        Ok(())
    }

    fn reset_to(&mut self, pos: usize) {
        self.lex.rewind(pos);
        self.peeked = None;
    }

    fn config_block(&mut self) -> R<Vec<(String, Expr)>> {
        self.expect("{", "to open the config block")?;
        let mut out = Vec::new();
        while !self.eat("}")? {
            let (t, span) = self.next()?;
            let Tok::Ident(name) = t else {
                return Err(Diagnostic::new(
                    span,
                    format!("expected a config name, found {t}"),
                ));
            };
            self.expect("=", "after the config name")?;
            let value = self.expr()?;
            out.push((name, value));
            if !self.eat(";")? && !self.is_punct("}")? {
                let s = self.peek_span()?;
                return Err(Diagnostic::new(
                    s,
                    "expected `;` or `}` after a config value",
                ));
            }
        }
        Ok(out)
    }

    fn struct_def(&mut self) -> R<CStruct> {
        let (kw, start) = self.next()?;
        let union = kw == Tok::Ident("union".into());
        let (t, span) = self.next()?;
        let Tok::Ident(name) = t else {
            return Err(Diagnostic::new(
                span,
                format!("expected a struct name, found {t}"),
            ));
        };
        self.expect("{", "to open the struct definition")?;
        let mut fields = Vec::new();
        while !self.eat("}")? {
            let mut ty = self.c_type()?;
            let (t, span) = self.next()?;
            let Tok::Ident(field) = t else {
                return Err(Diagnostic::new(
                    span,
                    format!("expected a field name, found {t}"),
                ));
            };
            if self.eat("[")? {
                let (t, span) = self.next()?;
                let Tok::Int(n) = t else {
                    return Err(Diagnostic::new(span, "expected an array length"));
                };
                ty.array = Some(n);
                self.expect("]", "after the array length")?;
            }
            // The last field's `;` may be left out (bpftrace allows it).
            if !self.is_punct("}")? {
                self.expect(";", "after a struct field")?;
            }
            fields.push((ty, field));
        }
        let end = self.peek_span()?;
        self.eat(";")?;
        Ok(CStruct {
            name,
            union,
            fields,
            span: start.to(end),
        })
    }

    /// A C type: `unsigned long`, `struct sock *`, `u64`, `char`, …
    fn c_type(&mut self) -> R<CType> {
        // Qualifiers change nothing read here: `const char *`.
        while self.is_word("const")? || self.is_word("volatile")? {
            self.next()?;
        }
        let (t, span) = self.next()?;
        let Tok::Ident(first) = t else {
            return Err(Diagnostic::new(span, format!("expected a type, found {t}")));
        };
        let mut base = first.clone();
        match first.as_str() {
            "struct" | "union" | "enum" => {
                let (t, span) = self.next()?;
                let Tok::Ident(n) = t else {
                    return Err(Diagnostic::new(
                        span,
                        format!("expected a {first} name, found {t}"),
                    ));
                };
                base = format!("{first} {n}");
            }
            "unsigned" | "signed" | "long" | "short" => {
                while let Tok::Ident(w) = self.peek()?.clone() {
                    if matches!(w.as_str(), "int" | "long" | "char" | "short") {
                        self.next()?;
                        base = format!("{base} {w}");
                    } else {
                        break;
                    }
                }
            }
            _ => {}
        }
        if self.is_word("const")? {
            self.next()?;
        }
        let mut pointers = 0;
        while self.eat("*")? {
            pointers += 1;
        }
        Ok(CType {
            base,
            pointers,
            array: None,
        })
    }

    fn probe(&mut self) -> R<Probe> {
        let mut attach = Vec::new();
        loop {
            let Some(ap) = self.lex.attach_point()? else {
                let at = self.lex.pos();
                return Err(Diagnostic::new(
                    Span::new(at, at + 1),
                    "expected an attach point (e.g. tracepoint:syscalls:sys_enter_openat or BEGIN)",
                ));
            };
            attach.push(ap);
            if !self.eat(",")? {
                break;
            }
        }
        let start = attach[0].1;
        let predicate = if self.eat("/")? {
            let e = self.expr_no_div()?;
            self.expect("/", "to close the predicate")?;
            Some(e)
        } else {
            None
        };
        if !self.is_punct("{")? {
            let (t, span) = self.next()?;
            return Err(Diagnostic::new(
                span,
                format!("expected `{{` to open the probe's action block, found {t}"),
            ));
        }
        let (body, end) = self.block()?;
        Ok(Probe {
            attach,
            predicate,
            body,
            span: start.to(end),
        })
    }

    fn block(&mut self) -> R<(Vec<Stmt>, Span)> {
        let open = self.expect("{", "to open a block")?;
        self.deeper(open)?;
        let mut stmts = Vec::new();
        loop {
            if self.is_punct("}")? {
                break;
            }
            if matches!(self.peek()?, Tok::Eof) {
                return Err(Diagnostic::new(
                    open,
                    "this block is never closed (missing `}`)",
                ));
            }
            if self.eat(";")? {
                continue;
            }
            let s = self.stmt()?;
            let needs_semi = !matches!(
                s.kind,
                StmtKind::If { .. }
                    | StmtKind::While { .. }
                    | StmtKind::Unroll { .. }
                    | StmtKind::For { .. }
                    | StmtKind::Block(_)
            );
            stmts.push(s);
            if needs_semi && !self.eat(";")? && !self.is_punct("}")? {
                let (t, span) = self.next()?;
                return Err(Diagnostic::new(
                    span,
                    format!("expected `;` between statements, found {t}"),
                ));
            }
        }
        let close = self.next()?.1;
        self.depth -= 1;
        Ok((stmts, close))
    }

    fn stmt(&mut self) -> R<Stmt> {
        let start = self.peek_span()?;
        let word = match self.peek()? {
            Tok::Ident(w) => Some(w.clone()),
            _ => None,
        };
        let kind = match word.as_deref() {
            Some("if") => return self.if_stmt(),
            Some("while") => {
                self.next()?;
                self.expect("(", "after `while`")?;
                let cond = self.expr()?;
                self.expect(")", "after the loop condition")?;
                let (body, end) = self.block()?;
                return Ok(Stmt {
                    kind: StmtKind::While { cond, body },
                    span: start.to(end),
                });
            }
            Some("unroll") => {
                self.next()?;
                self.expect("(", "after `unroll`")?;
                let count = self.expr()?;
                self.expect(")", "after the unroll count")?;
                let (body, end) = self.block()?;
                return Ok(Stmt {
                    kind: StmtKind::Unroll { count, body },
                    span: start.to(end),
                });
            }
            Some("for") => {
                self.next()?;
                self.expect("(", "after `for`")?;
                let (t, span) = self.next()?;
                let Tok::Var(var) = t else {
                    return Err(Diagnostic::new(
                        span,
                        format!("expected a `$variable` in the for loop, found {t}"),
                    ));
                };
                self.expect(":", "after the loop variable")?;
                let iter = if let Tok::Map(m) = self.peek()?.clone() {
                    let s = self.next()?.1;
                    ForIter::Map(m, s)
                } else {
                    let a = self.expr()?;
                    self.expect("..", "in the range (A..B)")?;
                    let b = self.expr()?;
                    ForIter::Range(a, b)
                };
                self.expect(")", "to close the for loop header")?;
                let (body, end) = self.block()?;
                return Ok(Stmt {
                    kind: StmtKind::For { var, iter, body },
                    span: start.to(end),
                });
            }
            Some("return") => {
                self.next()?;
                let v = if self.is_punct(";")? || self.is_punct("}")? {
                    None
                } else {
                    Some(self.expr()?)
                };
                StmtKind::Return(v)
            }
            Some("break") => {
                self.next()?;
                StmtKind::Break
            }
            Some("continue") => {
                self.next()?;
                StmtKind::Continue
            }
            Some("let") => {
                self.next()?;
                let (t, span) = self.next()?;
                let Tok::Var(name) = t else {
                    return Err(Diagnostic::new(
                        span,
                        format!("expected a `$variable` after `let`, found {t}"),
                    ));
                };
                let ty = if self.eat(":")? {
                    Some(self.c_type()?)
                } else {
                    None
                };
                let value = if self.eat("=")? {
                    Some(self.expr()?)
                } else {
                    None
                };
                StmtKind::Let { name, ty, value }
            }
            _ if self.is_punct("{")? => {
                let (body, end) = self.block()?;
                return Ok(Stmt {
                    kind: StmtKind::Block(body),
                    span: start.to(end),
                });
            }
            _ => {
                let target = self.expr()?;
                let op = match self.peek()? {
                    Tok::Punct("=") => Some(None),
                    Tok::Punct(p) => assign_op(p),
                    _ => None,
                };
                match op {
                    Some(op) => {
                        self.next()?;
                        let value = self.expr()?;
                        StmtKind::Assign { target, op, value }
                    }
                    None => StmtKind::Expr(target),
                }
            }
        };
        let end = self.lex.pos();
        Ok(Stmt {
            kind,
            span: Span::new(start.start, end.max(start.end)),
        })
    }

    fn if_stmt(&mut self) -> R<Stmt> {
        let start = self.next()?.1;
        self.expect("(", "after `if`")?;
        let cond = self.expr()?;
        self.expect(")", "after the condition")?;
        let (then, mut end) = self.block()?;
        let els = if self.is_word("else")? {
            self.next()?;
            if self.is_word("if")? {
                let s = self.if_stmt()?;
                end = s.span;
                vec![s]
            } else {
                let (b, e) = self.block()?;
                end = e;
                b
            }
        } else {
            Vec::new()
        };
        Ok(Stmt {
            kind: StmtKind::If { cond, then, els },
            span: start.to(end),
        })
    }

    pub fn expr(&mut self) -> R<Expr> {
        self.ternary(true)
    }

    /// An expression in a predicate: `/` there ends it.
    fn expr_no_div(&mut self) -> R<Expr> {
        self.ternary(false)
    }

    fn ternary(&mut self, div: bool) -> R<Expr> {
        let cond = self.binary(0, div)?;
        if self.eat("?")? {
            let then = self.ternary(div)?;
            self.expect(":", "in the conditional expression (c ? a : b)")?;
            let els = self.ternary(div)?;
            let span = cond.span.to(els.span);
            return Ok(Expr {
                kind: ExprKind::Ternary {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    els: Box::new(els),
                },
                span,
            });
        }
        Ok(cond)
    }

    fn binary(&mut self, min_prec: u8, div: bool) -> R<Expr> {
        let start = self.peek_span()?;
        self.deeper(start)?;
        let mut lhs = self.unary()?;
        while let Tok::Punct(p) = self.peek()?.clone() {
            let Some((op, prec)) = binary_op(p) else {
                break;
            };
            if prec < min_prec || (!div && op == BinOp::Div) {
                break;
            }
            self.next()?;
            let rhs = self.binary(prec + 1, div)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            };
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn unary(&mut self) -> R<Expr> {
        let span = self.peek_span()?;
        let op = match self.peek()? {
            Tok::Punct("-") => Some(UnOp::Neg),
            Tok::Punct("!") => Some(UnOp::Not),
            Tok::Punct("~") => Some(UnOp::BitNot),
            Tok::Punct("*") => Some(UnOp::Deref),
            Tok::Punct("&") => Some(UnOp::AddrOf),
            _ => None,
        };
        if let Some(op) = op {
            self.next()?;
            self.deeper(span)?;
            let e = self.unary()?;
            self.depth -= 1;
            let span = span.to(e.span);
            return Ok(Expr {
                kind: ExprKind::Unary {
                    op,
                    expr: Box::new(e),
                },
                span,
            });
        }
        if self.is_punct("++")? || self.is_punct("--")? {
            let inc = self.is_punct("++")?;
            self.next()?;
            let e = self.unary()?;
            let span = span.to(e.span);
            return Ok(Expr {
                kind: ExprKind::IncDec {
                    inc,
                    prefix: true,
                    target: Box::new(e),
                },
                span,
            });
        }
        // A cast: `(TYPE) expr`.
        if self.is_punct("(")? {
            let save = self.lex.pos();
            let open = self.next()?.1;
            if let Tok::Ident(w) = self.peek()?.clone()
                && TYPE_WORDS.contains(&w.as_str())
            {
                let mut ty = self.c_type()?;
                if self.eat("[")? {
                    let (t, s) = self.next()?;
                    let Tok::Int(n) = t else {
                        return Err(Diagnostic::new(s, "expected an array length"));
                    };
                    ty.array = Some(n);
                    self.expect("]", "after the array length")?;
                }
                self.expect(")", "to close the cast")?;
                let e = self.unary()?;
                let span = open.to(e.span);
                return Ok(Expr {
                    kind: ExprKind::Cast {
                        ty,
                        expr: Box::new(e),
                    },
                    span,
                });
            }
            // Not a cast: a parenthesized expression or a tuple.
            let _ = save;
            let first = self.expr()?;
            if self.eat(",")? {
                let mut items = vec![first];
                loop {
                    items.push(self.expr()?);
                    if !self.eat(",")? {
                        break;
                    }
                }
                let close = self.expect(")", "to close the tuple")?;
                return self.postfix(Expr {
                    kind: ExprKind::Tuple(items),
                    span: open.to(close),
                });
            }
            let close = self.expect(")", "to close the parenthesis")?;
            let inner = Expr {
                span: open.to(close),
                ..first
            };
            return self.postfix(inner);
        }
        let p = self.primary()?;
        self.postfix(p)
    }

    fn postfix(&mut self, mut e: Expr) -> R<Expr> {
        loop {
            if self.is_punct(".")? || self.is_punct("->")? {
                let arrow = self.is_punct("->")?;
                self.next()?;
                let (t, span) = self.next()?;
                let field = match t {
                    Tok::Ident(f) => f,
                    // Tuple elements: `$t.0`.
                    Tok::Int(n) => n.to_string(),
                    t => {
                        return Err(Diagnostic::new(
                            span,
                            format!("expected a field name, found {t}"),
                        ));
                    }
                };
                let span = e.span.to(span);
                e = Expr {
                    kind: ExprKind::Field {
                        expr: Box::new(e),
                        field,
                        arrow,
                    },
                    span,
                };
            } else if self.is_punct("[")? {
                self.next()?;
                let index = self.expr()?;
                let close = self.expect("]", "to close the index")?;
                let span = e.span.to(close);
                e = Expr {
                    kind: ExprKind::Index {
                        expr: Box::new(e),
                        index: Box::new(index),
                    },
                    span,
                };
            } else if self.is_punct("++")? || self.is_punct("--")? {
                let inc = self.is_punct("++")?;
                let s = self.next()?.1;
                let span = e.span.to(s);
                e = Expr {
                    kind: ExprKind::IncDec {
                        inc,
                        prefix: false,
                        target: Box::new(e),
                    },
                    span,
                };
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> R<Expr> {
        let (t, span) = self.next()?;
        let kind = match t {
            Tok::Int(n) => ExprKind::Int(n),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Var(v) => ExprKind::Var(v),
            Tok::Param(n) => ExprKind::Param(n),
            Tok::ParamCount => ExprKind::ParamCount,
            Tok::Map(name) => {
                let mut keys = Vec::new();
                let mut end = span;
                if self.is_punct("[")? {
                    self.next()?;
                    loop {
                        keys.push(self.expr()?);
                        if !self.eat(",")? {
                            break;
                        }
                    }
                    end = self.expect("]", "to close the map key")?;
                }
                return Ok(Expr {
                    kind: ExprKind::Map { name, keys },
                    span: span.to(end),
                });
            }
            Tok::Ident(name) if name == "sizeof" || name == "offsetof" => {
                self.expect("(", &format!("after `{name}`"))?;
                let kind = if name == "offsetof" {
                    let ty = self.c_type()?;
                    self.expect(",", "between the type and the field in offsetof")?;
                    let (t, s) = self.next()?;
                    let Tok::Ident(field) = t else {
                        return Err(Diagnostic::new(
                            s,
                            format!("expected a field name, found {t}"),
                        ));
                    };
                    ExprKind::Offsetof { ty, field }
                } else if matches!(self.peek()?, Tok::Ident(w) if TYPE_WORDS.contains(&w.as_str()))
                {
                    ExprKind::SizeofType(self.c_type()?)
                } else {
                    ExprKind::SizeofExpr(Box::new(self.expr()?))
                };
                let close = self.expect(")", &format!("to close `{name}`"))?;
                return Ok(Expr {
                    kind,
                    span: span.to(close),
                });
            }
            Tok::Ident(name) => {
                if self.is_punct("(")? {
                    self.next()?;
                    let mut args = Vec::new();
                    if !self.is_punct(")")? {
                        loop {
                            args.push(self.expr()?);
                            if !self.eat(",")? {
                                break;
                            }
                        }
                    }
                    let close = self.expect(")", &format!("to close the call of `{name}`"))?;
                    return Ok(Expr {
                        kind: ExprKind::Call { name, args },
                        span: span.to(close),
                    });
                }
                ExprKind::Ident(name)
            }
            t => {
                return Err(Diagnostic::new(
                    span,
                    format!("expected an expression, found {t}"),
                ));
            }
        };
        Ok(Expr { kind, span })
    }
}

fn assign_op(p: &str) -> Option<Option<BinOp>> {
    use BinOp::*;
    Some(Some(match p {
        "+=" => Add,
        "-=" => Sub,
        "*=" => Mul,
        "/=" => Div,
        "%=" => Mod,
        "&=" => And,
        "|=" => Or,
        "^=" => Xor,
        "<<=" => Shl,
        ">>=" => Shr,
        _ => return None,
    }))
}

/// The operator and its precedence (higher binds tighter).
fn binary_op(p: &str) -> Option<(BinOp, u8)> {
    use BinOp::*;
    Some(match p {
        "||" => (LOr, 1),
        "&&" => (LAnd, 2),
        "|" => (Or, 3),
        "^" => (Xor, 4),
        "&" => (And, 5),
        "==" => (Eq, 6),
        "!=" => (Ne, 6),
        "<" => (Lt, 7),
        "<=" => (Le, 7),
        ">" => (Gt, 7),
        ">=" => (Ge, 7),
        "<<" => (Shl, 8),
        ">>" => (Shr, 8),
        "+" => (Add, 9),
        "-" => (Sub, 9),
        "*" => (Mul, 10),
        "/" => (Div, 10),
        "%" => (Mod, 10),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_liner() {
        let p = parse("tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }").unwrap();
        assert_eq!(p.probes.len(), 1);
        assert_eq!(
            p.probes[0].attach[0].0,
            "tracepoint:syscalls:sys_enter_openat"
        );
        let StmtKind::Assign { target, op, value } = &p.probes[0].body[0].kind else {
            panic!()
        };
        assert!(op.is_none());
        assert!(
            matches!(&target.kind, ExprKind::Map { name, keys } if name.is_empty() && keys.len() == 1)
        );
        assert!(
            matches!(&value.kind, ExprKind::Call { name, args } if name == "count" && args.is_empty())
        );
    }

    #[test]
    fn predicates_lists_and_blocks() {
        let src = r#"
            config = { max_map_keys = 100; }
            struct foo { int a; char name[16]; unsigned long *p; }
            BEGIN { printf("hi\n"); }
            kprobe:vfs_read, kprobe:vfs_write /pid == 1 && comm == "bash"/ {
                $x = (uint32)arg0 / 2;
                if ($x > 3) { @a[pid, comm] += $x; } else if ($x) { @b++; } else { delete(@a[1, "x"]); }
                @h = hist($x);
                $t = (1, "two");
                printf("%d %s\n", $t.0, $t.1);
                while ($x < 10) { $x++; }
            }
            END { clear(@a); }
        "#;
        let p = parse(src).unwrap();
        assert_eq!(p.config.len(), 1);
        assert_eq!(p.structs[0].fields.len(), 3);
        assert_eq!(p.structs[0].fields[1].0.array, Some(16));
        assert_eq!(p.probes.len(), 3);
        assert_eq!(p.probes[1].attach.len(), 2);
        assert!(p.probes[1].predicate.is_some());
        assert_eq!(p.probes[1].body.len(), 6);
    }

    #[test]
    fn precedence_is_cs() {
        let p = parse("BEGIN { $x = 1 + 2 * 3 << 1 == 14 && !0; }").unwrap();
        let StmtKind::Assign { value, .. } = &p.probes[0].body[0].kind else {
            panic!()
        };
        let ExprKind::Binary {
            op: BinOp::LAnd,
            lhs,
            ..
        } = &value.kind
        else {
            panic!("{value:?}")
        };
        let ExprKind::Binary {
            op: BinOp::Eq, lhs, ..
        } = &lhs.kind
        else {
            panic!()
        };
        assert!(matches!(lhs.kind, ExprKind::Binary { op: BinOp::Shl, .. }));
    }

    #[test]
    fn casts_fields_and_uprobes() {
        let p = parse("uprobe:/bin/bash:readline { $t = (struct task_struct *)curtask; @[$t->parent->pid] = count(); }").unwrap();
        assert_eq!(p.probes[0].attach[0].0, "uprobe:/bin/bash:readline");
        let StmtKind::Assign { value, .. } = &p.probes[0].body[0].kind else {
            panic!()
        };
        let ExprKind::Cast { ty, .. } = &value.kind else {
            panic!()
        };
        assert_eq!((ty.base.as_str(), ty.pointers), ("struct task_struct", 1));
    }

    #[test]
    fn errors_name_their_place() {
        let src = "BEGIN { printf(\"x\" }";
        let e = parse(src).unwrap_err();
        assert!(e.message.contains("expected `)`"), "{}", e.message);
        assert_eq!(&src[e.span.start..e.span.end], "}");
        assert!(
            parse("BEGIN { $x = 1 $y = 2 }")
                .unwrap_err()
                .message
                .contains("expected `;`")
        );
        assert!(
            parse("BEGIN { @x = 1;")
                .unwrap_err()
                .message
                .contains("never closed")
        );
        assert!(parse("BEGIN").unwrap_err().message.contains("expected `{`"));
        let deep = format!("BEGIN {{ $x = {}1{}; }}", "(".repeat(500), ")".repeat(500));
        assert!(
            parse(&deep)
                .unwrap_err()
                .message
                .contains("nests too deeply")
        );
    }
}
