//! The syntax tree of a bpftrace script, every node with its span.

use crate::diag::Span;

/// A whole script.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// `config = { NAME = VALUE; … }`.
    pub config: Vec<(String, Expr)>,
    /// C struct definitions in the script.
    pub structs: Vec<CStruct>,
    pub probes: Vec<Probe>,
}

/// `struct NAME { TYPE FIELD; … }` (also `union`).
#[derive(Clone, Debug, PartialEq)]
pub struct CStruct {
    pub name: String,
    pub union: bool,
    pub fields: Vec<(CType, String)>,
    pub span: Span,
}

/// A C type as written: base name, pointer depth, array length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CType {
    /// `int`, `unsigned long`, `struct task_struct`, `u64`, …
    pub base: String,
    pub pointers: u32,
    pub array: Option<u64>,
}

/// `ATTACH, ATTACH /PREDICATE/ { BODY }`.
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    pub attach: Vec<(String, Span)>,
    pub predicate: Option<Expr>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    Expr(Expr),
    /// `TARGET = VALUE`, `TARGET OP= VALUE` (`op` the binary operator).
    Assign {
        target: Expr,
        op: Option<BinOp>,
        value: Expr,
    },
    /// `let $x [: TYPE] [= VALUE]`.
    Let {
        name: String,
        ty: Option<CType>,
        value: Option<Expr>,
    },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    While {
        cond: Expr,
        body: Vec<Stmt>,
    },
    Unroll {
        count: Expr,
        body: Vec<Stmt>,
    },
    /// `for ($kv : @map)` or `for ($i : A..B)`.
    For {
        var: String,
        iter: ForIter,
        body: Vec<Stmt>,
    },
    Return(Option<Expr>),
    Break,
    Continue,
    Block(Vec<Stmt>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum ForIter {
    Map(String, Span),
    Range(Expr, Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

impl Expr {
    /// Whether `f` holds for this expression or any expression inside it.
    pub fn any(&self, f: &mut dyn FnMut(&Expr) -> bool) -> bool {
        if f(self) {
            return true;
        }
        let mut any = |e: &Expr| e.any(f);
        match &self.kind {
            ExprKind::Map { keys: v, .. } | ExprKind::Call { args: v, .. } | ExprKind::Tuple(v) => {
                v.iter().any(&mut any)
            }
            ExprKind::Binary { lhs, rhs, .. } => any(lhs) || any(rhs),
            ExprKind::Unary { expr: e, .. }
            | ExprKind::Cast { expr: e, .. }
            | ExprKind::Field { expr: e, .. }
            | ExprKind::SizeofExpr(e)
            | ExprKind::IncDec { target: e, .. } => any(e),
            ExprKind::Ternary { cond, then, els } => any(cond) || any(then) || any(els),
            ExprKind::Index { expr: a, index } => any(a) || any(index),
            ExprKind::Int(_)
            | ExprKind::Str(_)
            | ExprKind::Ident(_)
            | ExprKind::Var(_)
            | ExprKind::Param(_)
            | ExprKind::ParamCount
            | ExprKind::SizeofType(_)
            | ExprKind::Offsetof { .. } => false,
        }
    }
}

/// Whether `f` holds for any expression of the statements (nested blocks
/// included).
pub fn any_expr(body: &[Stmt], f: &mut dyn FnMut(&Expr) -> bool) -> bool {
    body.iter().any(|s| match &s.kind {
        StmtKind::Expr(e) | StmtKind::Return(Some(e)) => e.any(f),
        StmtKind::Assign { target, value, .. } => target.any(f) || value.any(f),
        StmtKind::Let { value, .. } => value.as_ref().is_some_and(|e| e.any(f)),
        StmtKind::If { cond, then, els } => cond.any(f) || any_expr(then, f) || any_expr(els, f),
        StmtKind::While { cond: e, body } | StmtKind::Unroll { count: e, body } => {
            e.any(f) || any_expr(body, f)
        }
        StmtKind::For { iter, body, .. } => {
            any_expr(body, f) || matches!(iter, ForIter::Range(a, b) if a.any(f) || b.any(f))
        }
        StmtKind::Block(b) => any_expr(b, f),
        StmtKind::Return(None) | StmtKind::Break | StmtKind::Continue => false,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Int(u64),
    Str(String),
    /// A builtin or bare identifier (`pid`, `comm`, `arg0`, an enum value).
    Ident(String),
    /// `$name`.
    Var(String),
    /// `@name[keys]` (no keys: a scalar map).
    Map {
        name: String,
        keys: Vec<Expr>,
    },
    /// `$1`.
    Param(u32),
    /// `$#`.
    ParamCount,
    /// `f(args)`.
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    /// `++x`, `x--`, …
    IncDec {
        inc: bool,
        prefix: bool,
        target: Box<Expr>,
    },
    Ternary {
        cond: Box<Expr>,
        then: Box<Expr>,
        els: Box<Expr>,
    },
    /// `e.field` or `e->field` (`arrow`).
    Field {
        expr: Box<Expr>,
        field: String,
        arrow: bool,
    },
    /// `e[i]` on something that is not a map.
    Index {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// `(TYPE)e`.
    Cast {
        ty: CType,
        expr: Box<Expr>,
    },
    /// `(a, b, …)`.
    Tuple(Vec<Expr>),
    /// `sizeof(TYPE)` (an expression operand is kept as `SizeofExpr`).
    SizeofType(CType),
    SizeofExpr(Box<Expr>),
    /// `offsetof(TYPE, field)`.
    Offsetof {
        ty: CType,
        field: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    LAnd,
    LOr,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        use BinOp::*;
        match self {
            Add => "+",
            Sub => "-",
            Mul => "*",
            Div => "/",
            Mod => "%",
            And => "&",
            Or => "|",
            Xor => "^",
            Shl => "<<",
            Shr => ">>",
            Eq => "==",
            Ne => "!=",
            Lt => "<",
            Le => "<=",
            Gt => ">",
            Ge => ">=",
            LAnd => "&&",
            LOr => "||",
        }
    }

    pub fn is_comparison(self) -> bool {
        use BinOp::*;
        matches!(self, Eq | Ne | Lt | Le | Gt | Ge)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Neg,
    Not,
    BitNot,
    /// `*e`.
    Deref,
    /// `&e`.
    AddrOf,
}
