//! Builtins and functions whose values user space finishes: stacks
//! (`kstack`, `ustack`, with bpftrace's modes and limits), symbols
//! (`ksym`, `usym`), and addresses known when compiling (`kaddr`,
//! `uaddr`).

use super::*;

/// `bpf_get_stackid` flag: the user stack.
const BPF_F_USER_STACK: i32 = 1 << 8;
/// Frames kept per stack (the kernel's default `perf_event_max_stack`).
pub const MAX_STACK: u32 = 127;

impl Compiler<'_> {
    /// The stack-trace map, made when a script first takes a stack.
    fn stack_map(&mut self) -> usize {
        if let Some(i) = self.object_maps.iter().position(|m| m.name == "stacks") {
            return i;
        }
        self.object_maps.push(map_def(
            "stacks",
            oxbpf_abi::map_type::STACK_TRACE,
            4,
            MAX_STACK * 8,
            self.max_keys(),
        ));
        self.object_maps.len() - 1
    }
}

/// `struct pt_regs` on x86-64: register names as bpftrace's `reg()` takes
/// them, and their offsets.
const PT_REGS: &[(&str, i16)] = &[
    ("r15", 0),
    ("r14", 8),
    ("r13", 16),
    ("r12", 24),
    ("bp", 32),
    ("bx", 40),
    ("r11", 48),
    ("r10", 56),
    ("r9", 64),
    ("r8", 72),
    ("ax", 80),
    ("cx", 88),
    ("dx", 96),
    ("si", 104),
    ("di", 112),
    ("orig_ax", 120),
    ("ip", 128),
    ("cs", 136),
    ("flags", 144),
    ("sp", 152),
    ("ss", 160),
];

impl Gen<'_, '_> {
    /// `reg("name")`: a register of the probed context (uprobes, USDT,
    /// kprobes and perf events, whose context is `struct pt_regs`).
    pub(super) fn reg(&mut self, args: &[Expr], span: Span) -> R<Value> {
        let [
            Expr {
                kind: ExprKind::Str(name),
                span: at,
            },
        ] = args
        else {
            return err(span, "reg() takes a register's name: reg(\"ip\")");
        };
        let Some(&(_, off)) = PT_REGS.iter().find(|(n, _)| n == name) else {
            let d = Diagnostic::new(*at, format!("`{name}` is not an x86-64 register"));
            return Err(match nearest(name, PT_REGS.iter().map(|r| r.0)) {
                Some(n) => d.with_hint(format!("did you mean `{n}`?")),
                None => d,
            });
        };
        match &self.kind {
            ProbeKind::Uprobe { .. }
            | ProbeKind::Usdt { .. }
            | ProbeKind::Interval { .. }
            | ProbeKind::Profile { .. }
            | ProbeKind::Software { .. }
            | ProbeKind::Unavailable { .. } => {}
            _ => {
                return err(
                    span,
                    "reg() reads the registers of uprobes, USDT probes, kprobes and perf events",
                );
            }
        }
        let t = self.temp();
        self.a.ldx(8, R0, R6, off);
        self.store(t, R0);
        Ok(Value::Int(t, Ty::U64))
    }

    /// `kstack`, `ustack`, `kstack(perf)`, `ustack(bpftrace, 5)`, `kstack(3)`.
    pub(super) fn stack(&mut self, user: bool, args: &[Expr], span: Span) -> R<Value> {
        let name = if user { "ustack" } else { "kstack" };
        let (mut perf, mut limit) = (false, 0u8);
        for (i, a) in args.iter().enumerate() {
            match (&a.kind, i) {
                (ExprKind::Ident(m), 0) if m == "perf" || m == "bpftrace" => perf = m == "perf",
                (ExprKind::Ident(m), 0) => {
                    return err(
                        a.span,
                        format!("{name}'s mode is `bpftrace` or `perf`, not `{m}`"),
                    );
                }
                _ if i < 2 => match self.c.const_int(a) {
                    Some(n) if (1..=MAX_STACK as i64).contains(&n) => limit = n as u8,
                    _ => {
                        return err(
                            a.span,
                            format!(
                                "{name}'s frame limit must be a constant from 1 to {MAX_STACK}"
                            ),
                        );
                    }
                },
                _ => {
                    return err(span, format!("{name}() takes a mode and a limit at most"));
                }
            }
        }
        let ty = Ty::Stack { user, perf, limit };
        let off = self.alloc(ty.stored_size());
        let map = self.c.stack_map();
        self.a.mov(R1, R6);
        self.a.ld_map(R2, map);
        // A raw tracepoint's kernel stack starts inside BPF: the program,
        // bpf_trace_runN() and the tracepoint's __bpf_trace_NAME() thunk
        // are skipped (the low 8 bits of the flags), so that it starts
        // where the event happened, as a perf tracepoint's does.
        let raw_tp = self.sys.is_some() || matches!(self.kind, ProbeKind::RawTracepoint { .. });
        let flags = if user {
            BPF_F_USER_STACK
        } else if raw_tp {
            3
        } else {
            0
        };
        self.a.mov_imm(R3, flags as i64);
        self.a.call(helper::GET_STACKID);
        self.a.stx(8, R10, off, R0);
        if user {
            self.a.call(helper::GET_CURRENT_PID_TGID);
            self.a.alu_imm(BPF_RSH, R0, 32);
            self.a.stx(8, R10, off + 8, R0);
        }
        Ok(Value::Mem(off, ty))
    }

    /// `ksym(addr)`, `usym(addr)`: the address, named in user space (a
    /// user address with the pid whose memory it is in).
    pub(super) fn sym(&mut self, user: bool, args: &[Expr], span: Span) -> R<Value> {
        let [a] = args else {
            return err(
                span,
                format!("{}sym() takes one address", if user { "u" } else { "k" }),
            );
        };
        let v = self.int(a)?;
        let ty = Ty::Sym { user };
        let off = self.alloc(ty.stored_size());
        let r = self.load(v, R0);
        self.a.stx(8, R10, off, r);
        self.release(v);
        if user {
            self.a.call(helper::GET_CURRENT_PID_TGID);
            self.a.alu_imm(BPF_RSH, R0, 32);
            self.a.stx(8, R10, off + 8, R0);
        }
        Ok(Value::Mem(off, ty))
    }

    /// `kaddr("symbol")`, `uaddr("symbol")`: addresses the compiler asks
    /// the system for.
    pub(super) fn addr_of_symbol(&mut self, user: bool, args: &[Expr], span: Span) -> R<Value> {
        let f = if user { "uaddr" } else { "kaddr" };
        let [
            Expr {
                kind: ExprKind::Str(sym),
                ..
            },
        ] = args
        else {
            return err(
                span,
                format!("{f}() takes a symbol's name as a string literal"),
            );
        };
        let found = if user {
            let path = match &self.kind {
                ProbeKind::Uprobe { path, .. } | ProbeKind::Usdt { path, .. } => path.clone(),
                _ => {
                    return err(
                        span,
                        "uaddr() is for uprobes and USDT probes (their binary)",
                    );
                }
            };
            self.c.env.user_symbol(&path, sym)
        } else {
            self.c.env.kernel_symbol(sym)
        };
        match found {
            Ok(a) => {
                let t = self.temp();
                self.a.lddw(R0, a, 0);
                self.store(t, R0);
                Ok(Value::Int(t, Ty::U64))
            }
            Err(e) => err(span, format!("{f}(\"{sym}\"): {e}")),
        }
    }
}
