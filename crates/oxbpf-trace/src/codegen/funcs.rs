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

/// `pton("ADDR")`: the bytes of an IPv4 (4) or IPv6 (16) address given as
/// a string literal, in network order; the family is IPv6 when the text
/// has a `:` (bpftrace's rule).
pub(super) fn pton_bytes(args: &[Expr], span: Span) -> R<Vec<u8>> {
    let [a] = args else {
        return err(span, "pton() takes one address: pton(\"127.0.0.1\")");
    };
    let ExprKind::Str(text) = &a.kind else {
        return err(a.span, "pton()'s address must be a string literal");
    };
    if text.contains(':') {
        text.parse::<std::net::Ipv6Addr>()
            .map(|ip| ip.octets().to_vec())
            .or_else(|_| err(a.span, format!("`{text}` is not an IPv6 address")))
    } else {
        text.parse::<std::net::Ipv4Addr>()
            .map(|ip| ip.octets().to_vec())
            .or_else(|_| err(a.span, format!("`{text}` is not an IPv4 address")))
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
    /// `clear(@m)`, `zero(@m)`, `print(@m[, top[, div]])`: a record
    /// (kind, map, top, div) for user space, which does the work.
    pub(super) fn map_event(&mut self, name: &str, args: &[Expr], span: Span) -> R<()> {
        let Some(target) = args.first() else {
            return err(span, format!("{name}() takes a map: {name}(@m)"));
        };
        let ExprKind::Map { name: m, keys } = &target.kind else {
            return err(target.span, format!("{name}() takes a map: {name}(@m)"));
        };
        if !keys.is_empty() {
            return err(
                target.span,
                format!("{name}() takes the whole map, without a key"),
            );
        }
        let most = if name == "print" { 3 } else { 1 };
        if args.len() > most {
            return err(
                span,
                if name == "print" {
                    "print(@m, top, div) takes at most a map, a count and a divisor".to_string()
                } else {
                    format!("{name}() takes one map: {name}(@m)")
                },
            );
        }
        let mut nums = [0i64; 2];
        for (i, a) in args.iter().skip(1).enumerate() {
            match self.c.const_int(a) {
                Some(n) if (0..=i32::MAX as i64).contains(&n) => nums[i] = n,
                _ => {
                    return err(
                        a.span,
                        format!(
                            "print()'s {} must be a constant integer",
                            if i == 0 { "top" } else { "div" }
                        ),
                    );
                }
            }
        }
        let m = self.map(m, target.span)?;
        let rec = self.alloc(32);
        let kind = match name {
            "clear" => event::CLEAR,
            "zero" => event::ZERO,
            _ => event::PRINT,
        };
        self.a.st_imm(8, self.fp, rec, kind as i32);
        self.a.st_imm(8, self.fp, rec + 8, m.index as i32);
        self.a.st_imm(8, self.fp, rec + 16, nums[0] as i32);
        self.a.st_imm(8, self.fp, rec + 24, nums[1] as i32);
        self.output(rec, 32);
        Ok(())
    }

    /// `print_rows(@a [, @b …], "fmt" [, top [, sort]])` and
    /// `print_hist(@h, "unit" [, "key fmt"])` (see [`crate::layout`]): the
    /// layout is checked here and kept in [`super::Compiled::layouts`];
    /// the program only sends its index, and user space reads the maps.
    pub(super) fn layout_event(&mut self, name: &str, args: &[Expr], span: Span) -> R<()> {
        use crate::layout::Layout;
        let usage = match name {
            "print_rows" => "print_rows(@a [, @b …], \"row format\" [, top [, sort]])",
            "print_stacks" => "print_stacks(@m, \"before\", \"after\")",
            _ => "print_hist(@h, \"unit\" [, \"key format\" [, @a, @b …]])",
        };
        let mut maps = Vec::new();
        let mut rest = args;
        while let Some((first, tail)) = rest.split_first() {
            let ExprKind::Map { name: m, keys } = &first.kind else {
                break;
            };
            if !keys.is_empty() {
                return err(
                    first.span,
                    format!("{name}() takes whole maps, without a key"),
                );
            }
            maps.push((self.map(m, first.span)?, first.span));
            rest = tail;
        }
        let Some(&(ref first, first_span)) = maps.first() else {
            return err(span, format!("{name}() takes a map first: {usage}"));
        };
        let string = |e: Option<&Expr>, what: &str| -> R<Option<String>> {
            match e.map(|e| (&e.kind, e.span)) {
                None => Ok(None),
                Some((ExprKind::Str(s), _)) => Ok(Some(s.clone())),
                Some((_, at)) => err(at, format!("{name}()'s {what} must be a string literal")),
            }
        };
        // The key's parts, as the format sees them (a tuple flat).
        let key_types: Vec<Ty> = first
            .key
            .iter()
            .flat_map(|t| match t {
                Ty::Tuple(items) => items.clone(),
                t => vec![t.clone()],
            })
            .collect();
        let layout = if name == "print_stacks" {
            if maps.len() > 1 {
                return err(maps[1].1, format!("print_stacks() takes one map: {usage}"));
            }
            if !crate::output::is_stack_map(first) {
                return err(
                    first_span,
                    format!(
                        "print_stacks() prints a count or sum keyed by kstack or ustack; @{} is not one",
                        first.name
                    ),
                );
            }
            let (Some(before), Some(after)) = (
                string(rest.first(), "before")?,
                string(rest.get(1), "after")?,
            ) else {
                return err(span, format!("{name}() needs two formats: {usage}"));
            };
            if rest.len() > 2 {
                return err(rest[2].span, format!("too many arguments: {usage}"));
            }
            // The key's parts other than stacks, then the value.
            let mut types: Vec<Ty> = key_types
                .iter()
                .filter(|t| !matches!(t, Ty::Stack { .. }))
                .cloned()
                .collect();
            types.push(Ty::I64);
            for (f, e) in [(&before, &rest[0]), (&after, &rest[1])] {
                // Each format may use the first arguments only (`before` is
                // often empty), or pick any with `%N$`.
                let (mut sequential, mut numbered) = (0, 0);
                for p in crate::format::parse(f).unwrap_or_default() {
                    match p {
                        crate::format::Piece::Spec(s) if s.arg.is_some() => numbered += 1,
                        crate::format::Piece::Spec(_) => sequential += 1,
                        crate::format::Piece::Text(_) => {}
                    }
                }
                let types = if numbered > 0 || sequential > types.len() {
                    &types[..]
                } else {
                    &types[..sequential]
                };
                if let Err(m) = crate::format::check(f, types) {
                    return err(
                        e.span,
                        format!(
                            "{m} (the formats take the key's parts other than stacks, {}, then the value)",
                            types.len() - 1
                        ),
                    );
                }
            }
            Layout::Stacks {
                map: first.name.clone(),
                before,
                after,
            }
        } else if name == "print_rows" {
            for (m, at) in &maps {
                if !matches!(
                    m.kind,
                    MapKind::Count | MapKind::Sum | MapKind::Min | MapKind::Max | MapKind::Avg
                ) {
                    return err(
                        *at,
                        format!(
                            "print_rows() prints count, sum, min, max and avg maps; @{} is not one",
                            m.name
                        ),
                    );
                }
                if m.key != first.key {
                    return err(
                        *at,
                        format!(
                            "print_rows()'s maps must have keys of one type: @{} and @{} differ",
                            first.name, m.name
                        ),
                    );
                }
            }
            let Some(format) = string(rest.first(), "row format")? else {
                return err(span, format!("{name}() needs a row format: {usage}"));
            };
            let mut types = key_types;
            types.extend(maps.iter().map(|_| Ty::I64));
            if let Err(m) = crate::format::check(&format, &types) {
                return err(
                    rest[0].span,
                    format!(
                        "{m} (the format takes the key's {} part(s), then a value per map)",
                        types.len() - maps.len()
                    ),
                );
            }
            let mut nums = [0i64, 1];
            for (i, a) in rest.iter().skip(1).enumerate() {
                let what = ["top", "sort"].get(i).copied();
                let Some(what) = what else {
                    return err(a.span, format!("too many arguments: {usage}"));
                };
                match self.c.const_int(a) {
                    Some(n)
                        if n >= 0 && (what == "top" || (1..=maps.len() as i64).contains(&n)) =>
                    {
                        nums[i] = n
                    }
                    _ => {
                        return err(
                            a.span,
                            if what == "top" {
                                "print_rows()'s top must be a constant integer (0: all rows)"
                                    .to_string()
                            } else {
                                format!(
                                    "print_rows()'s sort is the number of the map that orders the rows, 1 to {}",
                                    maps.len()
                                )
                            },
                        );
                    }
                }
            }
            Layout::Rows {
                maps: maps.iter().map(|(m, _)| m.name.clone()).collect(),
                format,
                top: nums[0] as usize,
                sort: nums[1] as usize - 1,
            }
        } else {
            if maps.len() > 1 {
                return err(maps[1].1, format!("print_hist() takes one map: {usage}"));
            }
            if !matches!(first.kind, MapKind::Hist { .. } | MapKind::Lhist { .. }) {
                return err(
                    first_span,
                    format!(
                        "print_hist() prints hist() and lhist() maps; @{} is not one",
                        first.name
                    ),
                );
            }
            let Some(unit) = string(rest.first(), "unit")? else {
                return err(span, format!("{name}() needs the values' unit: {usage}"));
            };
            let key = string(rest.get(1), "key format")?;
            // Maps after the key format: their values for each key follow
            // the key's parts in the key line (counts, averages, extremes).
            let mut with = Vec::new();
            for e in rest.iter().skip(2) {
                let ExprKind::Map { name: w, keys } = &e.kind else {
                    return err(
                        e.span,
                        format!("print_hist() takes maps after the key format: {usage}"),
                    );
                };
                if !keys.is_empty() {
                    return err(e.span, "print_hist() takes whole maps, without a key");
                }
                let wm = self.map(w, e.span)?;
                if !matches!(
                    wm.kind,
                    MapKind::Count | MapKind::Sum | MapKind::Min | MapKind::Max | MapKind::Avg
                ) || wm.key != first.key
                {
                    return err(
                        e.span,
                        format!(
                            "print_hist()'s key line takes count, sum, min, max and avg maps with @{}'s key; @{} is not one",
                            first.name, wm.name
                        ),
                    );
                }
                with.push(wm.name.clone());
            }
            if let Some(k) = &key {
                let mut types = key_types.clone();
                types.extend(with.iter().map(|_| Ty::I64));
                if let Err(m) = crate::format::check(k, &types) {
                    return err(
                        rest[1].span,
                        format!(
                            "{m} (the key format takes the key's parts, then a value per map after it)"
                        ),
                    );
                }
            }
            Layout::Hist {
                map: first.name.clone(),
                unit,
                key,
                with,
            }
        };
        let id = self.c.layouts.len();
        self.c.layouts.push(layout);
        let rec = self.alloc(16);
        self.a.st_imm(8, self.fp, rec, event::LAYOUT as i32);
        self.a.st_imm(8, self.fp, rec + 8, id as i32);
        self.output(rec, 16);
        Ok(())
    }

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
            return Err(d.suggest(name, PT_REGS.iter().map(|r| r.0), ""));
        };
        match &self.kind {
            ProbeKind::Uprobe { .. }
            | ProbeKind::Kprobe { .. }
            | ProbeKind::Usdt { .. }
            | ProbeKind::Interval { .. }
            | ProbeKind::Profile { .. }
            | ProbeKind::Software { .. }
            | ProbeKind::Watchpoint { .. }
            | ProbeKind::Unavailable { .. } => {}
            _ => {
                return err(
                    span,
                    "reg() reads the registers of uprobes, USDT probes, kprobes and perf events",
                );
            }
        }
        Ok(Value::Int(self.ctx_u64(off), Ty::U64))
    }

    /// `kstack`, `ustack`, `kstack(perf)`, `ustack(bpftrace, 5)`, `kstack(3)`.
    pub(super) fn stack(&mut self, user: bool, args: &[Expr], span: Span) -> R<Value> {
        let name = if user { "ustack" } else { "kstack" };
        let (mut perf, mut limit) = (self.c.stack_perf, 0u8);
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
        self.a.stx(8, self.fp, off, R0);
        if user {
            self.a.call(helper::GET_CURRENT_PID_TGID);
            self.a.alu_imm(BPF_RSH, R0, 32);
            self.a.stx(8, self.fp, off + 8, R0);
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
        self.a.stx(8, self.fp, off, r);
        self.release(v);
        if user {
            self.a.call(helper::GET_CURRENT_PID_TGID);
            self.a.alu_imm(BPF_RSH, R0, 32);
            self.a.stx(8, self.fp, off + 8, R0);
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

/// `bpf_send_signal`.
const SEND_SIGNAL: i32 = 109;
/// `bpf_ktime_get_boot_ns`, `bpf_ktime_get_tai_ns`.
const KTIME_GET_BOOT_NS: i32 = 125;
const KTIME_GET_TAI_NS: i32 = 208;
/// Strings `join()` reads, and bytes of each.
const JOIN_ARGS: usize = 16;
const JOIN_LEN: usize = 64;

/// Signals by name, as `signal()` takes them.
const SIGNALS: &[(&str, i64)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGILL", 4),
    ("SIGTRAP", 5),
    ("SIGABRT", 6),
    ("SIGBUS", 7),
    ("SIGFPE", 8),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGSEGV", 11),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGCHLD", 17),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGTSTP", 20),
    ("SIGTTIN", 21),
    ("SIGTTOU", 22),
    ("SIGURG", 23),
    ("SIGXCPU", 24),
    ("SIGXFSZ", 25),
    ("SIGVTALRM", 26),
    ("SIGPROF", 27),
    ("SIGWINCH", 28),
    ("SIGIO", 29),
    ("SIGPWR", 30),
    ("SIGSYS", 31),
];

/// The hierarchy pattern of `cgroup_path(id[, pattern])`: every
/// hierarchy (`*`) unless a string literal names some.
pub(super) fn cgroup_filter(args: &[Expr]) -> String {
    match args.get(1).map(|a| &a.kind) {
        Some(ExprKind::Str(s)) => s.clone(),
        _ => "*".into(),
    }
}

impl Gen<'_, '_> {
    /// An integer in a fresh 8-byte slot, typed `ty` (values user space
    /// turns into text).
    fn slot_of(&mut self, e: &Expr, ty: Ty) -> R<Value> {
        let v = self.int(e)?;
        let off = self.alloc(8);
        let r = self.load(v, R0);
        self.a.stx(8, self.fp, off, r);
        self.release(v);
        Ok(Value::Mem(off, ty))
    }

    /// `username`: the uid, named in user space.
    pub(super) fn username(&mut self) -> Value {
        let off = self.alloc(8);
        self.a.call(helper::GET_CURRENT_UID_GID);
        self.a.zext32(R0);
        self.a.stx(8, self.fp, off, R0);
        Value::Mem(off, Ty::Username)
    }

    /// Functions of values: strftime, ntop, buf, has_key, strcontains,
    /// cgroupid, signal, kptr/uptr, nsecs(CLOCK); `None` for other names.
    pub(super) fn value_call(&mut self, name: &str, args: &[Expr], span: Span) -> R<Option<Value>> {
        Ok(Some(match name {
            "strftime" => {
                let [
                    Expr {
                        kind: ExprKind::Str(fmt),
                        ..
                    },
                    ns,
                ] = args
                else {
                    return err(
                        span,
                        "strftime() takes a format string and nanoseconds since boot",
                    );
                };
                self.slot_of(ns, Ty::Strftime(fmt.clone()))?
            }
            "ntop" => self.ntop(args, span)?,
            "pton" => {
                // The address's bytes (network order), as a buffer.
                let bytes = pton_bytes(args, span)?;
                let size = Ty::Buf(bytes.len()).stored_size();
                let off = self.alloc(size);
                self.zero(off, size);
                self.a.st_imm(8, self.fp, off, bytes.len() as i32);
                for (i, w) in bytes.chunks(4).enumerate() {
                    let mut b = [0u8; 4];
                    b[..w.len()].copy_from_slice(w);
                    self.a
                        .st_imm(4, self.fp, off + 8 + 4 * i as i16, i32::from_le_bytes(b));
                }
                Value::Mem(off, Ty::Buf(bytes.len()))
            }
            "buf" => self.buf(args, span)?,
            "has_key" => {
                let [
                    Expr {
                        kind: ExprKind::Map { name, keys },
                        span: at,
                    },
                ] = args
                else {
                    return err(span, "has_key() takes a map entry: has_key(@m[key])");
                };
                let m = self.map(name, *at)?;
                let key = self.key(&m, keys, *at)?;
                self.a.ld_map(R1, m.index);
                self.a.mov(R2, self.fp);
                self.a.alu_imm(BPF_ADD, R2, key as i32);
                self.a.call(helper::MAP_LOOKUP);
                let out = self.temp();
                let no = self.a.label();
                let done = self.a.label();
                self.a.jmp_imm(BPF_JEQ, R0, 0, no);
                self.a.mov_imm(R0, 1);
                self.a.ja(done);
                self.a.place(no);
                self.a.mov_imm(R0, 0);
                self.a.place(done);
                self.store(out, R0);
                Value::Int(out, Ty::I64)
            }
            "len" => {
                let [
                    Expr {
                        kind: ExprKind::Map { name, keys },
                        span: at,
                    },
                ] = args
                else {
                    return err(span, "len() takes a map: len(@m)");
                };
                if !keys.is_empty() {
                    return err(*at, "len() takes the map itself: len(@m), without a key");
                }
                let m = self.map(name, *at)?;
                if m.key.is_empty() {
                    return err(*at, format!("@{name} has no keys for len() to count"));
                }
                // bpf_for_each_map_elem returns how many entries it
                // visited; the callback only goes on.
                let mut cb = Asm::default();
                cb.mov_imm(R0, 0);
                cb.exit();
                let l = self.a.label();
                self.a.subprog(l, cb.finish());
                self.sub_spans.push(vec![span; 2]);
                self.a.ld_map(R1, m.index);
                self.a.ld_func(R2, l);
                self.a.mov_imm(R3, 0);
                self.a.mov_imm(R4, 0);
                self.a.call(helper::FOR_EACH_MAP_ELEM);
                Value::Int(self.take_r0(), Ty::I64)
            }
            // bpftrace's bswap: the bytes of the integer reversed, in
            // its own width (an 8-bit value is itself).
            "bswap" => {
                let [x] = args else {
                    return err(span, "bswap() takes one integer");
                };
                let v = self.value(x)?;
                let Value::Int(t, ty) = v else {
                    return err(x.span, "bswap() takes an integer");
                };
                let size = match ty {
                    Ty::Int { size, .. } => size,
                    _ => 8,
                };
                let r = self.load(t, R0);
                if size > 1 {
                    self.a.bswap(r, (size * 8) as i32);
                }
                self.store(t, r);
                Value::Int(
                    t,
                    Ty::Int {
                        size,
                        signed: false,
                    },
                )
            }
            "strcontains" => self.strcontains(args, span)?,
            "cgroupid" => {
                let [
                    Expr {
                        kind: ExprKind::Str(path),
                        ..
                    },
                ] = args
                else {
                    return err(span, "cgroupid() takes a cgroup's path as a string literal");
                };
                match self.c.env.cgroup_id(path) {
                    Ok(id) => {
                        let t = self.temp();
                        self.a.lddw(R0, id, 0);
                        self.store(t, R0);
                        Value::Int(t, Ty::U64)
                    }
                    Err(e) => return err(span, format!("cgroupid(\"{path}\"): {e}")),
                }
            }
            "signal" => {
                if !self.c.opts.unsafe_ok {
                    return err(
                        span,
                        "signal() sends signals to processes: it needs --unsafe",
                    );
                }
                let [sig] = args else {
                    return err(
                        span,
                        "signal() takes one signal: signal(\"SIGKILL\") or signal(9)",
                    );
                };
                let n = match &sig.kind {
                    ExprKind::Str(s) | ExprKind::Ident(s) => {
                        let want = if s.starts_with("SIG") {
                            s.clone()
                        } else {
                            format!("SIG{s}")
                        };
                        match SIGNALS.iter().find(|(n, _)| *n == want) {
                            Some(&(_, n)) => n,
                            None => {
                                let d = Diagnostic::new(sig.span, format!("`{s}` is not a signal"));
                                return Err(d.suggest(&want, SIGNALS.iter().map(|s| s.0), ""));
                            }
                        }
                    }
                    _ => match self.c.const_int(sig) {
                        Some(n) if (1..=64).contains(&n) => n,
                        _ => return err(sig.span, "signal() takes a signal from 1 to 64"),
                    },
                };
                self.a.mov_imm(R1, n);
                self.a.call(SEND_SIGNAL);
                let t = self.take_r0();
                Value::Int(t, Ty::I64)
            }
            "syscall_name" => {
                let [x] = args else {
                    return err(span, "syscall_name() takes one system call number");
                };
                self.slot_of(x, Ty::Syscall)?
            }
            "disk_name" => {
                let [x] = args else {
                    return err(span, "disk_name() takes one device number (a dev_t)");
                };
                self.slot_of(x, Ty::Disk)?
            }
            "strerror" => {
                let [x] = args else {
                    return err(span, "strerror() takes one error number");
                };
                self.slot_of(x, Ty::Errno)?
            }
            "cgroup_path" => {
                let (id, filter) = match args {
                    [id] => (id, None),
                    [id, f] => (id, Some(f)),
                    _ => {
                        return err(
                            span,
                            "cgroup_path() takes a cgroup id and an optional hierarchy pattern",
                        );
                    }
                };
                if let Some(f) = filter
                    && !matches!(f.kind, ExprKind::Str(_))
                {
                    return err(
                        f.span,
                        "cgroup_path()'s hierarchy pattern is a string literal (\"unified\", \"cpu*\")",
                    );
                }
                self.slot_of(id, Ty::CgroupPath(cgroup_filter(args)))?
            }
            "kptr" | "uptr" => {
                let [x] = args else {
                    return err(span, format!("{name}() takes one pointer"));
                };
                let user = name == "uptr";
                match self.value(x)? {
                    Value::Int(v, Ty::Ptr { to, .. }) => Value::Int(v, Ty::Ptr { to, user }),
                    Value::Int(v, _) => Value::Int(v, Ty::Ptr { to: 0, user }),
                    Value::Mem(_, t) => {
                        return err(
                            x.span,
                            format!("{name}() takes a pointer, not {}", t.name()),
                        );
                    }
                }
            }
            "nsecs" => {
                let clock = match args {
                    [] => "monotonic",
                    [
                        Expr {
                            kind: ExprKind::Ident(c),
                            ..
                        },
                    ] => c.as_str(),
                    _ => {
                        return err(
                            span,
                            "nsecs() takes a clock: monotonic, boot, tai or sw_tai",
                        );
                    }
                };
                let id = match clock {
                    "monotonic" => helper::KTIME_GET_NS,
                    "boot" => KTIME_GET_BOOT_NS,
                    "tai" | "sw_tai" => KTIME_GET_TAI_NS,
                    other => {
                        return err(
                            args[0].span,
                            format!("`{other}` is not a clock (monotonic, boot, tai, sw_tai)"),
                        );
                    }
                };
                let v = self.helper0(id);
                Value::Int(v, Ty::U64)
            }
            _ => return Ok(None),
        }))
    }

    /// `ntop([family,] address)`: an IPv4 address from an integer (as it
    /// lies in memory) or 4 bytes, IPv6 from 16 bytes.
    fn ntop(&mut self, args: &[Expr], span: Span) -> R<Value> {
        let (family, addr) = match args {
            [a] => (None, a),
            [f, a] => match self.c.const_int(f) {
                Some(n @ (2 | 10)) => (Some(n), a),
                _ => return err(f.span, "ntop()'s family is AF_INET (2) or AF_INET6 (10)"),
            },
            _ => return err(span, "ntop() takes an address, or a family and an address"),
        };
        let off = self.alloc(24);
        self.zero(off, 24);
        match self.value(addr)? {
            Value::Int(v, _) => {
                if family == Some(10) {
                    return err(addr.span, "an IPv6 address is 16 bytes, not an integer");
                }
                let r = self.load(v, R0);
                self.a.stx(4, self.fp, off + 8, r);
                self.release(v);
                self.a.st_imm(8, self.fp, off, 2);
            }
            Value::Mem(src, t) => {
                let n = match &t {
                    Ty::Str(n) | Ty::Buf(n) => *n,
                    t => t.stored_size(),
                };
                let fam = match (family, n) {
                    (Some(f), _) => f,
                    (None, 4) => 2,
                    (None, 16) => 10,
                    _ => {
                        return err(addr.span, format!("ntop() takes 4 or 16 bytes, not {n}"));
                    }
                };
                let bytes = if fam == 2 { 4 } else { 16 };
                if n < bytes {
                    return err(
                        addr.span,
                        format!("this address has {n} bytes, not {bytes}"),
                    );
                }
                let skip = if let Ty::Buf(_) = t { 8 } else { 0 };
                for i in (0..bytes).step_by(4) {
                    self.a.ldx(4, R0, self.fp, src + skip + i as i16);
                    self.a.stx(4, self.fp, off + 8 + i as i16, R0);
                }
                self.a.st_imm(8, self.fp, off, fam as i32);
            }
        }
        Ok(Value::Mem(off, Ty::Inet))
    }

    /// `buf(pointer, length)`: bytes of user or kernel memory.
    fn buf(&mut self, args: &[Expr], span: Span) -> R<Value> {
        let (p, n) = match args {
            [p, n] => match self.c.const_int(n) {
                Some(n) if (1..=256).contains(&n) => (p, n as usize),
                Some(_) => return err(n.span, "buf()'s length must be from 1 to 256"),
                None => return self.buf_of_length(p, n),
            },
            [p] => (p, 0),
            _ => return err(span, "buf() takes a pointer and a length: buf(p, n)"),
        };
        match self.value(p)? {
            Value::Int(v, t) => {
                if n == 0 {
                    return err(span, "buf() of a pointer needs a length: buf(p, n)");
                }
                let user = match t {
                    Ty::Ptr { user, .. } => user,
                    _ => self.user_space(),
                };
                let ty = Ty::Buf(n);
                let off = self.alloc(ty.stored_size());
                self.zero(off, ty.stored_size());
                self.a.st_imm(8, self.fp, off, n as i32);
                let r = self.load(v, R3);
                self.a.mov(R3, r);
                self.release(v);
                self.a.mov(R1, self.fp);
                self.a.alu_imm(BPF_ADD, R1, off as i32 + 8);
                self.a.mov_imm(R2, n as i64);
                self.a.call(if user {
                    helper::PROBE_READ_USER
                } else {
                    helper::PROBE_READ_KERNEL
                });
                Ok(Value::Mem(off, ty))
            }
            Value::Mem(src, t) => {
                let have = match &t {
                    Ty::Str(m) => *m,
                    t => t.stored_size(),
                };
                let n = if n == 0 { have } else { n.min(have) };
                let ty = Ty::Buf(n);
                let off = self.alloc(ty.stored_size());
                self.zero(off, ty.stored_size());
                self.a.st_imm(8, self.fp, off, n as i32);
                self.copy(off + 8, src, n.div_ceil(8) * 8);
                Ok(Value::Mem(off, ty))
            }
        }
    }

    /// `buf(p, len)` with a length known only when the probe runs: at
    /// most 64 bytes (bpftrace's string size) are read, the length kept.
    fn buf_of_length(&mut self, p: &Expr, len: &Expr) -> R<Value> {
        const CAP: usize = 64;
        let v = match self.value(p)? {
            Value::Int(v, t) => (v, t),
            Value::Mem(_, t) => {
                return err(
                    p.span,
                    format!(
                        "buf() with a length computed at run time takes a pointer, not {}",
                        t.name()
                    ),
                );
            }
        };
        let user = match v.1 {
            Ty::Ptr { user, .. } => user,
            _ => self.user_space(),
        };
        let n = self.int(len)?;
        let ty = Ty::Buf(CAP);
        let off = self.alloc(ty.stored_size());
        self.zero(off, ty.stored_size());
        // The length, cut to the buffer (a negative one reads all 64).
        let r = self.load(n, R2);
        self.a.mov(R2, r);
        self.release(n);
        let ok = self.a.label();
        self.a.jmp_imm(BPF_JLE, R2, CAP as i32, ok);
        self.a.mov_imm(R2, CAP as i64);
        self.a.place(ok);
        self.a.stx(8, self.fp, off, R2);
        let r = self.load(v.0, R3);
        self.a.mov(R3, r);
        self.release(v.0);
        self.a.mov(R1, self.fp);
        self.a.alu_imm(BPF_ADD, R1, off as i32 + 8);
        self.a.call(if user {
            helper::PROBE_READ_USER
        } else {
            helper::PROBE_READ_KERNEL
        });
        Ok(Value::Mem(off, ty))
    }

    /// `strcontains(haystack, "needle")`: the needle is compared at each
    /// place of the haystack (strings are NUL-padded, so the bytes after
    /// its end never match a needle's).
    fn strcontains(&mut self, args: &[Expr], span: Span) -> R<Value> {
        let [
            h,
            Expr {
                kind: ExprKind::Str(needle),
                ..
            },
        ] = args
        else {
            return err(
                span,
                "strcontains() takes a string and a string literal to look for",
            );
        };
        let Value::Mem(x, Ty::Str(n)) = self.value(h)? else {
            return err(h.span, "strcontains() looks in a string");
        };
        let out = self.temp();
        let found = self.a.label();
        let done = self.a.label();
        let needle = needle.as_bytes();
        if needle.is_empty() {
            self.a.ja(found);
        }
        for i in 0..(n + 1).saturating_sub(needle.len()) {
            let next = self.a.label();
            for (j, &c) in needle.iter().enumerate() {
                self.a.ldx(1, R0, self.fp, x + (i + j) as i16);
                self.a.jmp_imm(BPF_JNE, R0, i32::from(c), next);
            }
            self.a.ja(found);
            self.a.place(next);
        }
        self.a.mov_imm(R0, 0);
        self.store(out, R0);
        self.a.ja(done);
        self.a.place(found);
        self.a.mov_imm(R0, 1);
        self.store(out, R0);
        self.a.place(done);
        Ok(Value::Int(out, Ty::I64))
    }

    /// `join(argv[, delimiter])`: up to 16 strings of a NULL-terminated
    /// array of user pointers, printed joined (a record built in the
    /// scratch map: it is larger than the stack).
    pub(super) fn join(&mut self, args: &[Expr], span: Span) -> R<()> {
        let (arr, delim) = match args {
            [a] => (a, " ".to_string()),
            [
                a,
                Expr {
                    kind: ExprKind::Str(d),
                    ..
                },
            ] => (a, d.clone()),
            _ => {
                return err(
                    span,
                    "join() takes an array of strings and a delimiter: join(argv, \",\")",
                );
            }
        };
        let user = match self.value(arr)? {
            Value::Int(v, t) => {
                let user = match t {
                    Ty::Ptr { user, .. } => user,
                    _ => self.user_space(),
                };
                let slot = self.alloc(8);
                let r = self.load(v, R0);
                self.a.stx(8, self.fp, slot, r);
                self.release(v);
                (slot, user)
            }
            Value::Mem(_, t) => {
                return err(
                    arr.span,
                    format!("join() takes a pointer to strings, not {}", t.name()),
                );
            }
        };
        let (argv, user) = user;
        let size = 16 + JOIN_ARGS * JOIN_LEN;
        let scratch = self.c.scratch_map(size);
        let Some(p) = self.free.pop() else {
            return err(span, "join() needs a register that this expression holds");
        };
        let key = self.alloc(8);
        let ptr = self.alloc(8);
        self.a.st_imm(8, self.fp, key, 0);
        self.a.ld_map(R1, scratch);
        self.a.mov(R2, self.fp);
        self.a.alu_imm(BPF_ADD, R2, key as i32);
        self.a.call(helper::MAP_LOOKUP);
        let exit = self.exit.expect("set");
        self.a.jmp_imm(BPF_JEQ, R0, 0, exit);
        self.a.mov(p, R0);
        let id = self.c.printfs.len();
        self.a
            .st_imm(8, p, 0, (event::PRINTF_BASE + id as u64) as i32);
        self.a.st_imm(8, p, 8, 0);
        let (read, read_str) = if user {
            (helper::PROBE_READ_USER, helper::PROBE_READ_USER_STR)
        } else {
            (helper::PROBE_READ_KERNEL, helper::PROBE_READ_KERNEL_STR)
        };
        let done = self.a.label();
        for i in 0..JOIN_ARGS {
            self.a.mov(R1, self.fp);
            self.a.alu_imm(BPF_ADD, R1, ptr as i32);
            self.a.mov_imm(R2, 8);
            self.a.ldx(8, R3, self.fp, argv);
            self.a.alu_imm(BPF_ADD, R3, (i * 8) as i32);
            self.a.call(read);
            self.a.jmp_imm(BPF_JNE, R0, 0, done);
            self.a.ldx(8, R3, self.fp, ptr);
            self.a.jmp_imm(BPF_JEQ, R3, 0, done);
            self.a.mov(R1, p);
            self.a.alu_imm(BPF_ADD, R1, (16 + i * JOIN_LEN) as i32);
            self.a.mov_imm(R2, JOIN_LEN as i64);
            self.a.call(read_str);
            self.a.st_imm(8, p, 8, (i + 1) as i32);
        }
        self.a.place(done);
        let mut types = vec![Ty::I64];
        types.extend(std::iter::repeat_n(Ty::Str(JOIN_LEN), JOIN_ARGS));
        self.c.printfs.push(PrintfInfo {
            kind: PrintKind::Join,
            format: delim,
            args: types,
            span,
        });
        self.a.ld_map(R1, 0);
        self.a.mov(R2, p);
        self.a.mov_imm(R3, size as i64);
        self.a.mov_imm(R4, 0);
        self.ringbuf_output();
        self.free.push(p);
        Ok(())
    }
}

/// `bpf_get_attach_cookie`.
const GET_ATTACH_COOKIE: i32 = 174;
/// `struct __bpf_usdt_spec` (bpf/usdt.bpf.h): 12 argument specs of 16
/// bytes (value or offset u64, kind u32, register offset i16, signed u8,
/// bit shift u8), the user's cookie, the argument count.
const USDT_SPEC_SIZE: u32 = 208;
const USDT_ARG_COUNT: i16 = 200;

impl Compiler<'_> {
    /// The map of USDT argument specs, which the runtime fills per probe
    /// site and finds by the link's BPF cookie, as libbpf's usdt.bpf.h
    /// does (so sites whose arguments live in different places work).
    pub(super) fn usdt_specs(&mut self) -> usize {
        if let Some(i) = self
            .object_maps
            .iter()
            .position(|m| m.name == "__bpf_usdt_specs")
        {
            return i;
        }
        self.object_maps.push(map_def(
            "__bpf_usdt_specs",
            oxbpf_abi::map_type::ARRAY,
            4,
            USDT_SPEC_SIZE,
            256,
        ));
        self.object_maps.len() - 1
    }
}

impl Gen<'_, '_> {
    /// Argument `i` of a USDT probe, read by its site's spec: a constant,
    /// a register, or memory at a register plus an offset; then sign- or
    /// zero-extended from its size.
    pub(super) fn usdt_arg(&mut self, i: usize, span: Span) -> R<Value> {
        if i >= 12 {
            return err(span, "USDT probes have at most 12 arguments (arg0…arg11)");
        }
        let specs = self.c.usdt_specs();
        let out = self.temp();
        let key = self.alloc(8);
        let tmp = self.alloc(8);
        let zero = self.a.label();
        let done = self.a.label();
        self.a.mov(R1, R6);
        self.a.call(GET_ATTACH_COOKIE);
        self.a.stx(4, self.fp, key, R0);
        self.a.ld_map(R1, specs);
        self.a.mov(R2, self.fp);
        self.a.alu_imm(BPF_ADD, R2, key as i32);
        self.a.call(helper::MAP_LOOKUP);
        self.a.jmp_imm(BPF_JEQ, R0, 0, zero);
        // The spec pointer survives the helper calls below in the slot.
        let spec = self.alloc(8);
        self.a.stx(8, self.fp, spec, R0);
        self.a.ldx(2, R1, R0, USDT_ARG_COUNT);
        self.a.jmp_imm(BPF_JLE, R1, i as i32, zero);
        let at = (i * 16) as i16;
        let (konst, reg) = (self.a.label(), self.a.label());
        self.a.ldx(4, R1, R0, at + 8);
        self.a.jmp_imm(BPF_JEQ, R1, 0, konst);
        // A register (kind 1), then memory at it (kind 2).
        self.a.ldx(2, R3, R0, at + 12);
        self.a.sext(R3, 2);
        self.a.alu(BPF_ADD, R3, R6);
        self.a.mov(R1, self.fp);
        self.a.alu_imm(BPF_ADD, R1, tmp as i32);
        self.a.mov_imm(R2, 8);
        self.a.call(helper::PROBE_READ_KERNEL);
        self.a.ldx(8, R0, self.fp, spec);
        self.a.ldx(4, R1, R0, at + 8);
        self.a.jmp_imm(BPF_JEQ, R1, 1, reg);
        self.a.ldx(8, R3, self.fp, tmp);
        self.a.ldx(8, R1, R0, at);
        self.a.alu(BPF_ADD, R3, R1);
        self.a.mov(R1, self.fp);
        self.a.alu_imm(BPF_ADD, R1, tmp as i32);
        self.a.mov_imm(R2, 8);
        self.a.call(helper::PROBE_READ_USER);
        self.a.place(reg);
        self.a.ldx(8, R1, self.fp, tmp);
        let shift = self.a.label();
        self.a.ja(shift);
        self.a.place(konst);
        self.a.ldx(8, R1, R0, at);
        self.a.place(shift);
        // Keep the argument's bytes: shift left, then back (arithmetic
        // for signed arguments).
        self.a.ldx(8, R0, self.fp, spec);
        self.a.ldx(1, R2, R0, at + 15);
        self.a.alu(BPF_LSH, R1, R2);
        let unsigned = self.a.label();
        self.a.ldx(1, R3, R0, at + 14);
        self.a.jmp_imm(BPF_JEQ, R3, 0, unsigned);
        self.a.alu(BPF_ARSH, R1, R2);
        self.a.ja(done);
        self.a.place(unsigned);
        self.a.alu(BPF_RSH, R1, R2);
        self.a.ja(done);
        self.a.place(zero);
        self.a.mov_imm(R1, 0);
        self.a.place(done);
        self.store(out, R1);
        Ok(Value::Int(out, Ty::I64))
    }
}
