//! Loads, stores and atomics: the stack byte by byte with spills, map
//! values (and their spin locks), packets against their checked range,
//! memory of known size, sockets, and the context's fields.

use super::*;

impl Verifier<'_> {
    /// Checks a memory access through `base` (register `rn`) at `off` of
    /// `size` bytes; stores `value` when given, else returns what is read.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mem_access(
        &mut self,
        path: &mut Path,
        pc: usize,
        rn: usize,
        base: &Reg,
        off: i64,
        size: i64,
        value: Option<Reg>,
    ) -> VResult<Reg> {
        let write = value.is_some();
        if let Some(v) = value
            && v.kind.is_pointer()
            && !self.ptr_leaks_ok()
            && !matches!(base.kind, Kind::Stack { .. })
        {
            return err(
                pc,
                format!(
                    "R{rn} leaks addr into {}: a {} stored there is visible to user space{}",
                    base.kind.name(),
                    v.kind.name(),
                    if self.opts.privileged {
                        " (allow with --allow-ptr-leaks)"
                    } else {
                        ""
                    }
                ),
            );
        }
        let lo = base.off + off + base.var.smin.max(-(1 << 40));
        let hi = base.off + off + (base.var.umax.min(1 << 40) as i64) + size;
        match base.kind {
            Kind::NotInit => err(pc, format!("R{rn} !read_ok")),
            Kind::Scalar => {
                self.relate_gone(base.gone);
                err(
                    pc,
                    format!(
                        "R{rn} invalid mem access 'scalar'{}",
                        if base.gone != Gone::No {
                            base.gone.explain()
                        } else if base.var.konst() == Some(0) {
                            " (a null pointer)".to_string()
                        } else {
                            String::new()
                        }
                    ),
                )
            }
            k if k.is_or_null() => err(
                pc,
                format!(
                    "R{rn} invalid mem access '{}': it may be NULL; compare it with 0 before use",
                    k.name()
                ),
            ),
            Kind::MapPtr { .. } | Kind::Func { .. } | Kind::PacketEnd => err(
                pc,
                format!("R{rn} invalid mem access '{}'", base.kind.name()),
            ),
            Kind::Ctx => self.ctx_access(path, pc, rn, base, off, size, value),
            Kind::Btf { id, flags } => {
                self.btf_access(path, pc, rn, base, id, flags, off, size, write)
            }
            Kind::Stack { frame } => {
                let var_write = base.var.konst().is_none() && write;
                if lo < -STACK || hi > 0 {
                    return err(
                        pc,
                        format!(
                            "invalid {} stack R{rn} off={} size={size} (the stack is fp-512 .. fp-1)",
                            if write { "write to" } else { "read from" },
                            base.off + off
                        ),
                    );
                }
                let fi = frame as usize;
                if fi >= path.state.frames.len() {
                    return err(
                        pc,
                        format!("R{rn} points to a stack frame that has returned"),
                    );
                }
                {
                    let f = &mut path.state.frames[fi];
                    f.depth = f.depth.max(-lo);
                }
                self.note_depth(path, pc, fi, -lo);
                let total: i64 = path
                    .state
                    .frames
                    .iter()
                    .map(|f| (f.depth + 7) / 8 * 8)
                    .sum();
                if total > STACK {
                    return err(
                        pc,
                        format!(
                            "combined stack size of {} calls is {total}, too large (max 512)",
                            path.state.frames.len()
                        ),
                    );
                }
                let (a, b) = ((lo + STACK) as usize, (hi + STACK) as usize);
                if value.is_none() {
                    self.stack_read(path, fi, a, b);
                } else if !var_write && size == 8 && a % 8 == 0 {
                    if let Some(w) = path.wrote.get_mut(fi) {
                        *w |= 1 << (a / 8);
                    }
                } else if var_write {
                    // Bytes that are not written keep what they held.
                    self.stack_read(path, fi, a, b);
                }
                let stack = &mut path.state.frames[fi].stack;
                // Dynptr and iterator bytes: only their helpers and kfuncs
                // use them (one scan of the bytes for both).
                if let Some(i) =
                    (a..b).find(|&i| matches!(stack.bytes[i], byte::DYNPTR | byte::ITER))
                {
                    let dynptr = stack.bytes[i] == byte::DYNPTR;
                    if value.is_none() {
                        return err(
                            pc,
                            format!(
                                "invalid read from stack R{rn} off={} size={size}: fp{} is part of {}",
                                base.off + off,
                                i as i64 - STACK,
                                if dynptr {
                                    "a dynptr, which only the dynptr helpers and kfuncs may use"
                                } else {
                                    "an open-coded iterator, which only its kfuncs may use"
                                }
                            ),
                        );
                    }
                    if var_write {
                        return err(
                            pc,
                            format!(
                                "R{rn} variable-offset stack write may reach fp{}, part of {}",
                                i as i64 - STACK,
                                if dynptr {
                                    "a dynptr"
                                } else {
                                    "an open-coded iterator"
                                }
                            ),
                        );
                    }
                    // A store destroys a dynptr, unless it holds a reference
                    // (a ring buffer record would be lost), and ends an
                    // iterator (its reference stays held).
                    if let Some(at) = stack.destroy_dynptrs(a, b) {
                        return err(
                            pc,
                            format!(
                                "cannot overwrite referenced dynptr at fp{}: submit or discard it first",
                                at as i64 - STACK
                            ),
                        );
                    }
                    stack.clobber_iters(a, b);
                }
                if var_write || value.is_some() {
                    let stale: Vec<usize> = stack
                        .consts
                        .range(a.saturating_sub(8)..b)
                        .filter(|(k, (n, _))| **k < b && **k + *n as usize > a)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in stale {
                        stack.consts.remove(&k);
                    }
                    if !var_write
                        && let Some(v) = value
                        && v.kind == Kind::Scalar
                        && let Some(c) = v.var.konst()
                    {
                        let c = if size < 8 {
                            c & ((1u64 << (8 * size)) - 1)
                        } else {
                            c
                        };
                        stack.consts.insert(a, (size as u8, c));
                    }
                }
                if var_write {
                    // Some bytes of [a, b) are written, which ones is unknown:
                    // spills there end; written bytes become unknown data (a
                    // privileged program may read the rest anyway).
                    let keys: Vec<usize> = stack
                        .spills
                        .range(a.saturating_sub(7)..b)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        stack.spills.remove(&k);
                    }
                    if self.opts.privileged {
                        for byte in &mut stack.bytes[a..b] {
                            *byte = byte::MISC;
                        }
                    }
                    return Ok(Reg::NOT_INIT);
                }
                if let Some(v) = value {
                    // Any store over a spill slot ends that spill, unless it
                    // is an aligned full 8-byte store of a register.
                    let slot = a / 8 * 8;
                    let keys: Vec<usize> = stack
                        .spills
                        .range(slot.saturating_sub(7)..b)
                        .map(|(k, _)| *k)
                        .collect();
                    for k in keys {
                        if k < b && k + 8 > a {
                            stack.spills.remove(&k);
                        }
                    }
                    if size == 8
                        && a % 8 == 0
                        && (v.kind.is_pointer()
                            || v.var.konst().is_none()
                            || v.var.konst() != Some(0))
                    {
                        stack.spills.insert(a, v);
                        for byte in &mut stack.bytes[a..b] {
                            *byte = byte::MISC;
                        }
                    } else {
                        let z = v.kind == Kind::Scalar && v.var.konst() == Some(0);
                        for byte in &mut stack.bytes[a..b] {
                            *byte = if z { byte::ZERO } else { byte::MISC };
                        }
                        if size == 8 && a % 8 == 0 && z {
                            stack.spills.insert(a, v);
                        }
                    }
                    Ok(Reg::NOT_INIT)
                } else {
                    let uninit = (a..b).find(|&i| stack.bytes[i] == byte::UNINIT);
                    // Privileged programs may read uninitialized stack (the
                    // kernel's allow_uninit_stack); the value is unknown.
                    if uninit.is_some() && self.opts.privileged {
                        return Ok(small_unknown(size));
                    }
                    if let Some(u) = uninit {
                        return err(
                            pc,
                            format!(
                                "invalid read from stack R{rn} off={} size={size}: byte fp{} is not initialized",
                                base.off + off,
                                u as i64 - STACK
                            ),
                        );
                    }
                    if let Some(sp) = stack.spills.get(&a)
                        && size == 8
                        && base.var.konst().is_some()
                    {
                        return Ok(*sp);
                    }
                    // Part of a spilled pointer read as bytes.
                    let partial_ptr = stack
                        .spills
                        .iter()
                        .any(|(k, r)| *k < b && k + 8 > a && r.kind.is_pointer());
                    if partial_ptr && !self.opts.privileged {
                        return err(pc, format!("R{rn} partial read of a spilled pointer"));
                    }
                    if (a..b).all(|i| stack.bytes[i] == byte::ZERO) {
                        return Ok(Reg::konst(0));
                    }
                    Ok(small_unknown(size))
                }
            }
            Kind::MapValue { map } => {
                let m = self.map(map, pc)?;
                if lo < 0 || hi > m.value_size as i64 {
                    return err(
                        pc,
                        format!(
                            "R{rn} {} the value of map {map} (size {}): access at [{lo}, {hi}) is outside [0, {})",
                            if write {
                                "writes outside"
                            } else {
                                "reads outside"
                            },
                            m.value_size,
                            m.value_size
                        ),
                    );
                }
                if write && m.read_only {
                    return err(pc, format!("R{rn} write into a read-only map (map {map})"));
                }
                if let Some(at) = m.spin_lock
                    && lo < at as i64 + 4
                    && (at as i64) < hi
                {
                    return err(
                        pc,
                        format!(
                            "bpf_spin_lock cannot be accessed directly by load/store: [{lo}, {hi}) of map {map}'s value overlaps the lock at {at}..{}",
                            at + 4
                        ),
                    );
                }
                Ok(small_unknown(size))
            }
            Kind::Mem {
                size: msize,
                writable,
                ..
            } => {
                if lo < 0 || hi > msize as i64 {
                    return err(
                        pc,
                        format!(
                            "R{rn} invalid access to memory of size {msize}: [{lo}, {hi}) is outside it"
                        ),
                    );
                }
                if write && !writable {
                    return err(pc, format!("R{rn} write into read-only memory"));
                }
                Ok(small_unknown(size))
            }
            Kind::Sock(k) => {
                if write {
                    return err(pc, format!("R{rn} cannot write into {}", base.kind.name()));
                }
                let o = base.off + off;
                if !crate::protos::sock_field_ok(k, o, size) {
                    return err(
                        pc,
                        format!(
                            "R{rn} invalid {} access off={o} size={size}",
                            base.kind.name()
                        ),
                    );
                }
                Ok(small_unknown(size))
            }
            Kind::Packet | Kind::PacketMeta => {
                if base.var.smin < 0 {
                    return err(pc, format!("R{rn} packet pointer with a negative offset"));
                }
                let o = base.off + off;
                if o < 0 || o + size > base.range {
                    return err(
                        pc,
                        format!(
                            "R{rn} offset is outside of the packet: access at {o}..{} but only {} bytes are checked against data_end",
                            o + size,
                            base.range
                        ),
                    );
                }
                if write
                    && !matches!(
                        self.opts.prog_type,
                        ProgramType::Xdp
                            | ProgramType::SchedCls
                            | ProgramType::SchedAct
                            | ProgramType::LwtXmit
                            | ProgramType::SkSkb
                    )
                {
                    return err(pc, "cannot write into packet for this program type");
                }
                Ok(small_unknown(size))
            }
            _ => err(
                pc,
                format!("R{rn} invalid mem access '{}'", base.kind.name()),
            ),
        }
    }

    /// A read through a typed kernel pointer (the kernel's
    /// `check_ptr_to_btf_access`): fault-tolerant loads of the struct's
    /// scalars and pointers, checked against its BTF layout; no stores.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn btf_access(
        &mut self,
        path: &mut Path,
        pc: usize,
        rn: usize,
        base: &Reg,
        id: u32,
        flags: u8,
        off: i64,
        size: i64,
        write: bool,
    ) -> VResult<Reg> {
        use crate::kbtf::Walk;
        use crate::state::btf_flag as F;
        let name = base.kind.name();
        if !self.opts.privileged {
            return err(
                pc,
                format!(
                    "R{rn} is {name}: kernel struct access is allowed only to CAP_PERFMON and CAP_SYS_ADMIN"
                ),
            );
        }
        let at = base.off + off;
        if at < 0 {
            return err(
                pc,
                format!("R{rn} is {name} invalid negative access: off={at}"),
            );
        }
        if base.var.konst() != Some(0) {
            return err(
                pc,
                format!(
                    "R{rn} is {name} invalid variable offset: off={at}, var_off={}",
                    base.var
                ),
            );
        }
        if flags & F::USER != 0 {
            return err(
                pc,
                format!(
                    "R{rn} is {name} access user memory: off={at} (read it with bpf_probe_read_user)"
                ),
            );
        }
        if flags & F::PERCPU != 0 {
            return err(
                pc,
                format!(
                    "R{rn} is {name} access percpu memory: off={at} (use bpf_this_cpu_ptr or bpf_per_cpu_ptr)"
                ),
            );
        }
        if write {
            return err(
                pc,
                format!(
                    "R{rn} is {name}: only read is supported (kernel structs cannot be written)"
                ),
            );
        }
        // Memory of no known type (read out of a struct as a pointer to a
        // scalar): reads are fault-tolerant and give numbers.
        if id == 0 {
            return Ok(small_unknown(size));
        }
        let Some(k) = &self.kbtf else {
            return err(pc, format!("R{rn} is {name} but no kernel BTF is loaded"));
        };
        let (walk, field) = k
            .struct_access(id, at, size)
            .map_err(|m| (pc, format!("R{rn} is {name}: {m}")))?;
        Ok(match walk {
            Walk::Scalar => small_unknown(size),
            Walk::PtrUntrusted => Reg::ptr(Kind::Btf {
                id: 0,
                flags: F::UNTRUSTED,
            }),
            Walk::Ptr {
                id: to,
                flags: tag,
                untrusted,
            } => {
                let parent = k.name(id);
                let mut null = false;
                // What the kernel's check_ptr_to_btf_access gives: an
                // untrusted parent's pointers are untrusted; a trusted (or
                // RCU) parent's keep trust only through the members its
                // lists name (or `__rcu` ones, maybe NULL), the others
                // become untrusted (Linux 6.18: `task->mm` is
                // `untrusted_ptr_mm_struct`); a legacy pointer's are legacy.
                let f = if flags & F::UNTRUSTED != 0 || untrusted {
                    F::UNTRUSTED
                } else if flags & (F::TRUSTED | F::RCU) != 0 || base.ref_obj_id != 0 {
                    match crate::kbtf::member_trust(&parent, &field) {
                        Some((t, n)) => {
                            null = n;
                            t
                        }
                        None if tag & F::RCU != 0 => {
                            null = true;
                            F::RCU
                        }
                        None if tag & (F::USER | F::PERCPU) != 0 => tag & (F::USER | F::PERCPU),
                        None => F::UNTRUSTED,
                    }
                } else {
                    tag & (F::USER | F::PERCPU)
                };
                if null {
                    let mut r = Reg::ptr(Kind::BtfOrNull { id: to, flags: f });
                    r.id = path.state.fresh_id();
                    r
                } else {
                    Reg::ptr(Kind::Btf { id: to, flags: f })
                }
            }
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn ctx_access(
        &mut self,
        _path: &mut Path,
        pc: usize,
        rn: usize,
        base: &Reg,
        off: i64,
        size: i64,
        value: Option<Reg>,
    ) -> VResult<Reg> {
        if base.off != 0 || base.var.konst() != Some(0) {
            return err(
                pc,
                format!(
                    "dereference of modified ctx ptr R{rn} off={} disallowed",
                    base.off
                ),
            );
        }
        let t = self.opts.prog_type;
        if t == ProgramType::Unspec {
            if off < 0 || off + size > ctx_size(t) as i64 {
                return err(
                    pc,
                    format!("invalid bpf_context access off={off} size={size}"),
                );
            }
            return Ok(small_unknown(size));
        }
        let field_off = if size < 4 { off & !3 } else { off };
        let bad = || {
            (
                pc,
                format!(
                    "invalid bpf_context access off={off} size={size} for a {} program",
                    t.name()
                ),
            )
        };
        // Every program type's is_valid_access refuses a load or store
        // not aligned to its size (`off % size != 0`).
        if off % size != 0 {
            return Err(bad());
        }
        if t == ProgramType::CgroupSockAddr {
            let write = value.is_some();
            if write && value.as_ref().is_some_and(|v| v.kind.is_pointer()) {
                return err(pc, format!("R{rn} leaks addr into ctx"));
            }
            return match crate::protos::sock_addr_access(
                off,
                size,
                write,
                self.opts.attach.as_deref(),
            ) {
                Some(true) => Ok(Reg::ptr(Kind::Sock(crate::state::SockKind::Full))),
                Some(false) => Ok(small_unknown(size)),
                None => Err(bad()),
            };
        }
        if let (Some(c), Some(k)) = (&self.ctx_args, &self.kbtf) {
            let r = k
                .ctx_access(c, off, size, value.is_some())
                .map_err(|m| (pc, m))?;
            return Ok(match r {
                None => small_unknown(size),
                Some((id, flags, null)) => {
                    if null {
                        let mut r = Reg::ptr(Kind::BtfOrNull { id, flags });
                        r.id = _path.state.fresh_id();
                        r
                    } else {
                        Reg::ptr(Kind::Btf { id, flags })
                    }
                }
            });
        }
        let field = ctx_field(t, field_off).ok_or_else(bad)?;
        match field {
            Field::Packet | Field::PacketEnd | Field::PacketMeta => {
                if size != 4 || value.is_some() {
                    return Err(bad());
                }
                Ok(Reg::ptr(match field {
                    Field::Packet => Kind::Packet,
                    Field::PacketEnd => Kind::PacketEnd,
                    _ => Kind::PacketMeta,
                }))
            }
            Field::Scalar {
                size: fsize,
                narrow,
                writable,
            } => {
                let ok = size as u32 == fsize || (narrow && (size as u32) < fsize);
                if !ok || off + size > field_off + fsize as i64 {
                    return Err(bad());
                }
                if let Some(v) = value {
                    if !writable {
                        return err(
                            pc,
                            format!("invalid bpf_context write off={off}: the field is read-only"),
                        );
                    }
                    if v.kind.is_pointer() {
                        return err(pc, format!("R{rn} leaks addr into ctx"));
                    }
                }
                Ok(small_unknown(size))
            }
        }
    }
}

/// An unknown value of `size` bytes (zero-extended).
pub(super) fn small_unknown(size: i64) -> Reg {
    if size >= 8 {
        Reg::unknown()
    } else {
        Reg::scalar(Scalar::urange(0, (1u64 << (size * 8)) - 1))
    }
}
