//! Memory read through C types: struct and union members (`p->f`,
//! `s.f`, members of anonymous unions found as C finds them), bitfields,
//! array and pointer indexing, `*p`, `&x`, casts to pointer types,
//! `sizeof`/`offsetof`, pointer arithmetic, and the BTF-typed arguments of
//! raw tracepoints. Types come from the kernel's BTF and the script's own
//! struct definitions ([`crate::ctypes::TypeDb`]); memory is read with
//! `bpf_probe_read_kernel` or `bpf_probe_read_user` by the pointer's
//! address space.

use oxbpf_obj::btf::Kind;
use oxbpf_obj::btfindex::BtfTypes;

use super::*;

/// Strings read from `char` arrays are capped (the stack is 512 bytes).
const MAX_CHAR_ARRAY: u32 = 256;

/// Memory of type `id` at `base + off` (`base` holds an address).
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    base: Val,
    off: i64,
    id: u32,
    user: bool,
    /// A bitfield: (bit offset within the byte at `off`, width).
    bits: Option<(u32, u32)>,
}

/// Whether an expression denotes typed memory (rather than a value).
pub(super) fn is_place(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Field { expr, field, .. } => {
            !matches!(&expr.kind, ExprKind::Ident(a) if a == "args")
                && field.parse::<usize>().is_err()
        }
        ExprKind::Index { .. } => true,
        ExprKind::Unary {
            op: UnOp::Deref, ..
        } => true,
        _ => false,
    }
}

impl Gen<'_, '_> {
    /// Pointers made from plain integers (casts, `str()`) point into user
    /// memory in uprobes, USDT probes and system call tracepoints, and
    /// into the kernel elsewhere.
    pub(super) fn user_space(&self) -> bool {
        matches!(self.kind, ProbeKind::Uprobe { .. } | ProbeKind::Usdt { .. })
            || matches!(&self.kind, ProbeKind::Tracepoint { category, .. } if category == "syscalls")
    }

    fn type_error(&self, id: u32, span: Span) -> Diagnostic {
        let db = &self.c.types;
        Diagnostic::new(
            span,
            db.missing(id)
                .unwrap_or_else(|| format!("{} has no layout known here", db.type_name(id))),
        )
    }

    /// The value type of memory of type `id`, for pointer results and
    /// for the checker: (size to read, the value's type).
    pub(super) fn value_type(&self, id: u32, user: bool, span: Span) -> R<(u32, Ty)> {
        let db = &self.c.types;
        let rid = db.resolve(id);
        let Some(t) = db.get_type(rid) else {
            return Err(self.type_error(id, span));
        };
        Ok(match t.kind {
            Kind::Int { size: 0, .. } if rid == 0 => {
                return err(span, "this is `void`: cast it to a type to read it");
            }
            Kind::Int { size, encoding, .. } if (1..=8).contains(&size) => (
                size,
                Ty::Int {
                    size: size as u8,
                    signed: encoding & 1 != 0,
                },
            ),
            Kind::Enum { size, .. } | Kind::Enum64 { size, .. } if (1..=8).contains(&size) => (
                size,
                Ty::Int {
                    size: size as u8,
                    signed: t.kind_flag,
                },
            ),
            Kind::Ptr { target } => (8, Ty::Ptr { to: target, user }),
            Kind::Array { elem, nelems, .. }
                if matches!(
                    db.get_type(db.resolve(elem)).map(|t| t.kind),
                    Some(Kind::Int { size: 1, .. })
                ) =>
            {
                let n = nelems.clamp(1, MAX_CHAR_ARRAY);
                (n, Ty::Str(n as usize))
            }
            Kind::Array { .. } => {
                return err(
                    span,
                    format!("this is an array ({}): index it", db.type_name(id)),
                );
            }
            Kind::Struct { .. } | Kind::Union { .. } => {
                return err(
                    span,
                    format!(
                        "this is a {} ({} bytes): read one of its members, or take its address with `&`",
                        db.type_name(id),
                        db.size_of(id).unwrap_or(0)
                    ),
                );
            }
            _ => {
                return err(
                    span,
                    format!("{} cannot be read as a value", db.type_name(id)),
                );
            }
        })
    }

    /// The memory an expression denotes.
    pub(super) fn place(&mut self, e: &Expr) -> R<Place> {
        match &e.kind {
            ExprKind::Field { expr, field, arrow } => {
                let base = if !*arrow && is_place(expr) {
                    self.place(expr)?
                } else {
                    self.pointee(expr, &format!("{}{field}", if *arrow { "->" } else { "." }))?
                };
                self.member(base, field, e.span)
            }
            ExprKind::Index { expr, index } => {
                let (base, elem, n) = if is_place(expr) {
                    let p = self.place(expr)?;
                    let db = &self.c.types;
                    match db.get_type(db.resolve(p.id)).map(|t| t.kind) {
                        Some(Kind::Array { elem, nelems, .. }) => (p, elem, Some(nelems)),
                        Some(Kind::Ptr { .. }) => {
                            let Value::Int(v, Ty::Ptr { to, user }) = self.read_place(p, e.span)?
                            else {
                                unreachable!("a pointer reads as a pointer")
                            };
                            (Self::at(v, to, user), to, None)
                        }
                        _ => {
                            return err(
                                expr.span,
                                format!(
                                    "only arrays and pointers can be indexed; this is {}",
                                    db.type_name(p.id)
                                ),
                            );
                        }
                    }
                } else {
                    let p = self.pointee(expr, "[…]")?;
                    let id = p.id;
                    (p, id, None)
                };
                let size = match self.c.types.size_of(elem) {
                    Some(s) if s > 0 => s as i64,
                    _ if self.c.types.resolve(elem) == 0 => {
                        return err(expr.span, "a `void *` cannot be indexed: cast it first");
                    }
                    _ => return Err(self.type_error(elem, expr.span)),
                };
                if let Some(i) = self.c.const_int(index) {
                    if let Some(n) = n
                        && (i < 0 || i >= n as i64)
                    {
                        return err(
                            index.span,
                            format!("index {i} is outside the array's {n} elements"),
                        );
                    }
                    return Ok(Place {
                        off: base.off + i * size,
                        id: elem,
                        bits: None,
                        ..base
                    });
                }
                // A computed index: the address in a register.
                let i = self.int(index)?;
                let ri = self.load(i, R0);
                self.a.alu_imm(BPF_MUL, ri, size as i32);
                let rb = self.load(base.base, R1);
                self.a.alu(BPF_ADD, ri, rb);
                self.a.alu_imm(BPF_ADD, ri, base.off as i32);
                self.store(i, ri);
                self.release(base.base);
                Ok(Place {
                    base: i,
                    off: 0,
                    id: elem,
                    user: base.user,
                    bits: None,
                })
            }
            ExprKind::Unary {
                op: UnOp::Deref,
                expr,
            } => self.pointee(expr, "*"),
            _ => err(e.span, "this is a value, not memory that has a type"),
        }
    }

    fn at(base: Val, id: u32, user: bool) -> Place {
        Place {
            base,
            off: 0,
            id,
            user,
            bits: None,
        }
    }

    /// What the pointer `e` points to (`what` names the operation for
    /// messages).
    fn pointee(&mut self, e: &Expr, what: &str) -> R<Place> {
        match self.value(e)? {
            Value::Int(v, Ty::Ptr { to, user }) => Ok(Self::at(v, to, user)),
            Value::Int(v, Ty::Int { .. }) if what == "*" => {
                // `*x` of an integer reads a u64, as bpftrace does.
                let u64 = self.c.types.int(8, false);
                let user = self.user_space();
                Ok(Self::at(v, u64, user))
            }
            v => {
                let t = match &v {
                    Value::Int(_, t) | Value::Mem(_, t) => t.name(),
                };
                err(
                    e.span,
                    format!("`{what}` needs a pointer; this is {t} (cast it: `(struct NAME *)`)"),
                )
            }
        }
    }

    /// Member `field` of the struct or union at `p`.
    fn member(&mut self, p: Place, field: &str, span: Span) -> R<Place> {
        let db = &self.c.types;
        let rid = db.resolve(p.id);
        match db.get_type(rid).map(|t| t.kind) {
            Some(Kind::Struct { .. } | Kind::Union { .. }) => {}
            _ if rid == 0 => {
                return err(
                    span,
                    format!(
                        "this points to `void`: cast it to read `{field}` (`((struct NAME *)…)->{field}`)"
                    ),
                );
            }
            Some(Kind::Ptr { .. }) => {
                return err(
                    span,
                    format!(
                        "this is a pointer ({}): use `->{field}`",
                        db.type_name(p.id)
                    ),
                );
            }
            Some(_) => {
                return err(
                    span,
                    format!(
                        "{} has no members (`{field}` was asked for)",
                        db.type_name(p.id)
                    ),
                );
            }
            None => return Err(self.type_error(p.id, span)),
        }
        let Some(m) = db.member(rid, field) else {
            let names = db.member_names(rid);
            let d = Diagnostic::new(
                span,
                format!("{} has no member `{field}`", db.type_name(rid)),
            );
            return Err(d.suggest(field, names.iter().map(String::as_str), ""));
        };
        let bits = (m.bitfield_size > 0 || m.offset % 8 != 0).then(|| {
            let width = if m.bitfield_size > 0 {
                m.bitfield_size
            } else {
                db.size_of(m.type_id).unwrap_or(1) as u32 * 8
            };
            (m.offset % 8, width)
        });
        Ok(Place {
            off: p.off + (m.offset / 8) as i64,
            id: m.type_id,
            bits,
            ..p
        })
    }

    /// Reads the memory at `p` as a value of its type.
    pub(super) fn read_place(&mut self, p: Place, span: Span) -> R<Value> {
        let (size, ty) = self.value_type(p.id, p.user, span)?;
        let read = match p.bits {
            Some((shift, width)) => (shift + width).div_ceil(8).min(8),
            None => size,
        };
        let slot = self.alloc(read as usize);
        self.zero(slot, read as usize);
        self.a.mov(R1, self.fp);
        self.a.alu_imm(BPF_ADD, R1, slot as i32);
        self.a.mov_imm(R2, read as i64);
        let rb = self.load(p.base, R3);
        self.a.mov(R3, rb);
        if p.off != 0 {
            self.a.alu_imm(BPF_ADD, R3, p.off as i32);
        }
        self.release(p.base);
        self.a.call(if p.user {
            helper::PROBE_READ_USER
        } else {
            helper::PROBE_READ_KERNEL
        });
        if let Ty::Str(_) = ty {
            return Ok(Value::Mem(slot, ty));
        }
        let t = self.temp();
        let r = Self::reg_of(t);
        match p.bits {
            Some((shift, width)) => {
                self.a.ldx(8, r, self.fp, slot);
                if shift > 0 {
                    self.a.alu_imm(BPF_RSH, r, shift as i32);
                }
                if width < 64 {
                    if width <= 31 {
                        self.a.alu_imm(BPF_AND, r, ((1u64 << width) - 1) as i32);
                    } else {
                        self.a.alu_imm(BPF_LSH, r, (64 - width) as i32);
                        self.a.alu_imm(BPF_RSH, r, (64 - width) as i32);
                    }
                }
                if let Ty::Int { signed: true, .. } = ty
                    && width < 64
                {
                    self.a.alu_imm(BPF_LSH, r, (64 - width) as i32);
                    self.a.alu_imm(BPF_ARSH, r, (64 - width) as i32);
                }
            }
            None => {
                self.a.ldx(size, r, self.fp, slot);
                if let Ty::Int { signed: true, .. } = ty {
                    self.a.sext(r, size);
                }
            }
        }
        self.store(t, r);
        Ok(Value::Int(t, ty))
    }

    /// `&e`: the address of typed memory.
    pub(super) fn address_of(&mut self, e: &Expr) -> R<Value> {
        if !is_place(e) {
            return err(
                e.span,
                "`&` takes memory with a type (a member, an element, `*p`)",
            );
        }
        let p = self.place(e)?;
        if p.bits.is_some() {
            return err(e.span, "a bitfield has no address");
        }
        let r = self.load(p.base, R0);
        if p.off != 0 {
            self.a.alu_imm(BPF_ADD, r, p.off as i32);
        }
        self.store(p.base, r);
        Ok(Value::Int(
            p.base,
            Ty::Ptr {
                to: p.id,
                user: p.user,
            },
        ))
    }

    /// `(TYPE *)e` (and pointers to pointers): a pointer that keeps the
    /// address space of the value cast.
    pub(super) fn cast_pointer(&mut self, ty: &CType, e: &Expr, span: Span) -> R<Value> {
        let id = self.c.types.ctype(&CType {
            array: None,
            ..ty.clone()
        });
        let db = &self.c.types;
        let Some(Kind::Ptr { target }) = db.get_type(id).map(|t| t.kind) else {
            return err(span, "a cast to a pointer type was expected");
        };
        if let Some(m) = db.missing(db.resolve(target)) {
            return err(span, m);
        }
        let (v, user) = match self.value(e)? {
            Value::Int(v, Ty::Ptr { user, .. }) => (v, user),
            Value::Int(v, _) => (v, self.user_space()),
            Value::Mem(_, t) => {
                return err(e.span, format!("{} cannot be cast to a pointer", t.name()));
            }
        };
        Ok(Value::Int(v, Ty::Ptr { to: target, user }))
    }

    /// `sizeof(TYPE)`.
    pub(super) fn sizeof_type(&mut self, ty: &CType, span: Span) -> R<u64> {
        let id = self.c.types.ctype(ty);
        match self.c.types.size_of(id) {
            Some(n) => Ok(n),
            None => Err(self.type_error(id, span)),
        }
    }

    /// `offsetof(TYPE, a.b)`: bytes from the start of TYPE.
    pub(super) fn offsetof(&mut self, ty: &CType, field: &str, span: Span) -> R<u64> {
        let mut id = self.c.types.ctype(ty);
        let mut off = 0u64;
        for name in field.split('.') {
            let db = &self.c.types;
            let rid = db.resolve(id);
            if db.get_type(rid).is_none() {
                return Err(self.type_error(id, span));
            }
            let Some(m) = db.member(rid, name) else {
                let names = db.member_names(rid);
                let d = Diagnostic::new(
                    span,
                    format!("{} has no member `{name}`", db.type_name(rid)),
                );
                return Err(d.suggest(name, names.iter().map(String::as_str), ""));
            };
            off += (m.offset / 8) as u64;
            id = m.type_id;
        }
        Ok(off)
    }

    /// The byte size of what `to` points at, for pointer arithmetic
    /// (`void *` counts bytes, as GNU C does).
    pub(super) fn pointee_size(&self, to: u32) -> i64 {
        let db = &self.c.types;
        if db.resolve(to) == 0 {
            return 1;
        }
        db.size_of(to).filter(|&s| s > 0).unwrap_or(1) as i64
    }

    /// A raw tracepoint's arguments from BTF (`btf_trace_NAME`: a pointer
    /// to a function whose first parameter is the tracepoint's data):
    /// (name, type id) of each, or `None` without BTF.
    pub(super) fn raw_tp_params(&self) -> Option<Vec<(String, u32)>> {
        self.btf_proto().map(|(params, _)| params)
    }

    /// What the probe's arguments are: a raw tracepoint's (by its BTF
    /// thunk) or an fentry/fexit function's, as (name, type id) each,
    /// and the return type (0: void).
    pub(super) fn btf_proto(&self) -> Option<(Vec<(String, u32)>, u32)> {
        let k = self.c.types.kernel().ok()?;
        let name = match &self.kind {
            ProbeKind::RawTracepoint { name } => name,
            ProbeKind::Fentry { func, .. } => {
                // MODULE:FUNC: the function's name is the last part.
                let func = func.rsplit(':').next().unwrap_or(func);
                let f = k.find(func, |k| k == 12)?;
                let Kind::Func { proto, .. } = k.get(f)?.kind else {
                    return None;
                };
                let Kind::FuncProto { params, ret } = k.get(k.resolve(proto))?.kind else {
                    return None;
                };
                return Some((params, ret));
            }
            _ => return None,
        };
        // `__bpf_trace_NAME` has the parameters' names — but only for an
        // event that is its own class; one defined from a template (as
        // sched_wakeup from sched_wakeup_template) has them in
        // `__probestub_NAME` (Linux 6.4+) and `__traceiter_NAME`, each
        // `(void *__data, …)` too. The typedef `btf_trace_NAME` (what
        // tp_btf programs attach by) has the types only.
        let named = ["__bpf_trace_", "__probestub_", "__traceiter_"]
            .iter()
            .find_map(|prefix| k.find(&format!("{prefix}{name}"), |k| k == 12));
        let proto = match named {
            Some(f) => match k.get(f)?.kind {
                Kind::Func { proto, .. } => proto,
                _ => return None,
            },
            None => {
                let td = k.find(&format!("btf_trace_{name}"), |k| k == 8)?;
                let Kind::Ptr { target } = k.get(k.resolve(td))?.kind else {
                    return None;
                };
                target
            }
        };
        let Kind::FuncProto { params, ret } = k.get(k.resolve(proto))?.kind else {
            return None;
        };
        Some((params.into_iter().skip(1).collect(), ret))
    }

    /// `retval` of an fexit probe: the word after the arguments, typed
    /// by the function's BTF.
    pub(super) fn fexit_retval(&mut self, span: Span) -> R<Value> {
        let Some((params, ret)) = self.btf_proto() else {
            return err(
                span,
                "retval of an fexit probe needs the function in the kernel's BTF",
            );
        };
        if ret == 0 {
            return err(span, "the function returns void: it has no retval");
        }
        let t = self.temp();
        self.a.ldx(8, R0, R6, (params.len() * 8) as i16);
        let ty = self.btf_word_type(ret);
        self.store(t, R0);
        Ok(Value::Int(t, ty))
    }

    /// Argument `i` of a raw tracepoint, typed by BTF where the kernel
    /// has it (pointers can then be followed: `arg0->pid`).
    pub(super) fn raw_tp_arg(&mut self, i: usize, span: Span) -> R<Value> {
        let params = self.raw_tp_params();
        if let Some(p) = &params
            && i >= p.len()
        {
            return err(
                span,
                format!(
                    "this probe has {} arguments (arg0…arg{})",
                    p.len(),
                    p.len().saturating_sub(1)
                ),
            );
        }
        let t = self.temp();
        self.a.ldx(8, R0, R6, (i * 8) as i16);
        let ty = match params.as_ref().and_then(|p| p.get(i)) {
            Some(&(_, id)) => self.btf_word_type(id),
            None => Ty::U64,
        };
        self.store(t, R0);
        Ok(Value::Int(t, ty))
    }

    /// The type of a context word (in r0) of BTF type `id`: pointers
    /// keep what they point to; integers are cut to their width.
    fn btf_word_type(&mut self, id: u32) -> Ty {
        let db = &self.c.types;
        match db.get_type(db.resolve(id)).map(|t| t.kind) {
            Some(Kind::Ptr { target }) => Ty::Ptr {
                to: target,
                user: false,
            },
            Some(Kind::Int { size, encoding, .. }) if (1..=8).contains(&size) => {
                if encoding & 1 != 0 {
                    self.a.sext(R0, size);
                } else {
                    self.a.trunc(R0, size);
                }
                Ty::Int {
                    size: 8,
                    signed: encoding & 1 != 0,
                }
            }
            _ => Ty::U64,
        }
    }

    /// `args.NAME` of a raw tracepoint: its argument by BTF name.
    pub(super) fn raw_tp_named(&mut self, field: &str, span: Span) -> R<Value> {
        let Some(params) = self.raw_tp_params() else {
            return err(
                span,
                "args.NAME here needs the kernel's BTF (use arg0, arg1, …)",
            );
        };
        match params.iter().position(|(n, _)| n == field) {
            Some(i) => self.raw_tp_arg(i, span),
            None if params.iter().all(|(n, _)| n.is_empty()) => err(
                span,
                format!(
                    "the kernel's BTF does not name {}'s arguments: use arg0 … arg{}",
                    self.kind.full_name(),
                    params.len().saturating_sub(1)
                ),
            ),
            None => {
                let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
                let d = Diagnostic::new(
                    span,
                    format!(
                        "{} has no argument `{field}` (it has: {})",
                        self.kind.full_name(),
                        names.join(", ")
                    ),
                );
                Err(d.suggest(field, names.iter().copied(), ""))
            }
        }
    }
}
