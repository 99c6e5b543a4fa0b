//! Calls: bpf-to-bpf frames, global functions, and helpers checked
//! against their kernel prototypes — references acquired and released,
//! spin locks taken and dropped, callbacks entered, packet pointers
//! invalidated.

use super::*;

impl Verifier<'_> {
    /// A rejection about a lock: say where it was taken.
    pub(super) fn relate_lock(&mut self, l: LockState) {
        self.related = vec![(l.pc as usize, "the lock was taken by bpf_spin_lock".into())];
    }

    /// A rejection about a held reference: say where it was acquired.
    pub(super) fn relate_acquired(&mut self, r: &RefState) {
        self.related = vec![(r.pc as usize, "the reference was acquired".into())];
    }

    /// A rejection about an invalidated pointer: say where its reference
    /// was acquired and released, when that is why.
    pub(super) fn relate_gone(&mut self, g: Gone) {
        if let Gone::Released { at, acquired } = g {
            self.related = vec![
                (acquired as usize, "the reference was acquired".into()),
                (at as usize, "it was released".into()),
            ];
        }
    }

    pub(super) fn call(
        &mut self,
        path: &mut Path,
        pc: usize,
        t: oxbpf_isa::CallTarget,
    ) -> VResult<Step> {
        use oxbpf_isa::CallTarget as C;
        match t {
            C::Local(rel) => {
                let target = (pc as i64 + 1 + rel as i64) as usize;
                if let Some(g) = self.opts.global_funcs.iter().find(|g| g.pc == target) {
                    return self.call_global(path, pc, g);
                }
                self.push_frame(path, pc, target, pc + 1, false, None)?;
                Ok(Step::Next(vec![]))
            }
            C::Kfunc { btf_id, module } => self.kfunc(path, pc, btf_id, module),
            C::Helper(id) => self.helper(path, pc, id),
        }
    }

    /// A call of a global function: its arguments are checked against its
    /// prototype; it was (or will be) verified on its own, so the result is
    /// an unknown scalar.
    pub(super) fn call_global(
        &mut self,
        path: &mut Path,
        pc: usize,
        g: &crate::GlobalFunc,
    ) -> VResult<Step> {
        if let Some(l) = path.state.lock {
            self.relate_lock(l);
            return err(
                pc,
                format!(
                    "global function calls are not allowed while holding a lock, use static function instead (global function {} is called while the lock taken at insn {} is held)",
                    g.name, l.pc
                ),
            );
        }
        for (i, a) in g.args.iter().enumerate().take(5) {
            let rn = i + 1;
            let r = self.read(path, pc, rn).map_err(|(pc, m)| {
                (
                    pc,
                    format!("{m} (argument {rn} of global function {})", g.name),
                )
            })?;
            match a {
                crate::GlobalArg::Scalar => {
                    if r.kind != Kind::Scalar {
                        return err(
                            pc,
                            format!(
                                "R{rn} is {} but argument {rn} of global function {} is a scalar",
                                r.kind.name(),
                                g.name
                            ),
                        );
                    }
                }
                crate::GlobalArg::Ctx => {
                    if r.kind != Kind::Ctx || r.off != 0 {
                        return err(
                            pc,
                            format!(
                                "R{rn} is {} but argument {rn} of global function {} is the context",
                                r.kind.name(),
                                g.name
                            ),
                        );
                    }
                }
                crate::GlobalArg::Mem { size } => {
                    if r.kind == Kind::Scalar && r.var.konst() == Some(0) {
                        continue;
                    }
                    // The argument may be NULL, so a maybe-NULL pointer of
                    // at least that size passes as it is.
                    if let Kind::MemOrNull { size: have, .. } = r.kind
                        && r.off == 0
                        && r.var.konst() == Some(0)
                        && have >= *size
                    {
                        continue;
                    }
                    self.check_mem_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        *size as i64,
                        false,
                        &format!("global function {}", g.name),
                    )?;
                }
            }
        }
        let changes = self
            .opts
            .global_funcs
            .iter()
            .position(|x| x.pc == g.pc)
            .and_then(|i| self.global_changes_pkt.get(i).copied())
            .unwrap_or(true);
        if changes {
            invalidate_packet(&mut path.state, pc, self.opts.privileged);
        }
        let f = path.state.cur_mut();
        f.regs[0] = Reg::unknown();
        for r in 1..=5 {
            f.regs[r] = Reg::NOT_INIT;
        }
        path.pc = pc + 1;
        Ok(Step::Next(vec![]))
    }

    pub(super) fn push_frame(
        &mut self,
        path: &mut Path,
        pc: usize,
        target: usize,
        ret_pc: usize,
        callback: bool,
        args: Option<[Reg; 5]>,
    ) -> VResult<()> {
        if path.state.frames.len() >= 8 {
            return err(
                pc,
                format!(
                    "the call stack of {} frames is too deep (max 8)",
                    path.state.frames.len() + 1
                ),
            );
        }
        let caller = path.state.cur().clone();
        let mut f = Frame::new(ret_pc, path.state.frames.len() as u8);
        f.callback = callback;
        match args {
            Some(a) => f.regs[1..6].copy_from_slice(&a),
            None => f.regs[1..6].copy_from_slice(&caller.regs[1..6]),
        }
        path.state.frames.push(f);
        if let Some(w) = path.wrote.get_mut(path.state.frames.len() - 1) {
            // A new frame: nothing of an older one at this depth is read.
            *w = u64::MAX;
        }
        path.pc = target;
        Ok(())
    }

    pub(super) fn helper(&mut self, path: &mut Path, pc: usize, id: i32) -> VResult<Step> {
        if id == oxbpf_obj::core::POISON_HELPER {
            return err(
                pc,
                format!(
                    "invalid func unknown#{id}: a CO-RE relocation the kernel's BTF cannot satisfy poisoned this instruction (0xbad2310, \"bad relo\"): the field, type or enumerator it uses is missing from the kernel; guard it with bpf_core_field_exists / bpf_core_type_exists"
                ),
            );
        }
        let p = match self.protos.get(&id) {
            Some(p) => p.clone(),
            None => {
                let p = crate::protos::proto_for(id, self.opts.prog_type, self.opts.privileged)
                    .map_err(|r| (pc, r.message(id)))?;
                let p = std::rc::Rc::new(p);
                self.protos.insert(id, p.clone());
                p
            }
        };
        if p.gpl_only && !self.opts.gpl {
            return err(
                pc,
                format!(
                    "cannot call GPL-restricted function bpf_{} from a non-GPL program",
                    p.name
                ),
            );
        }
        if let Some(l) = path.state.lock
            && id != SPIN_UNLOCK
        {
            self.relate_lock(l);
            return err(
                pc,
                format!(
                    "function calls are not allowed while holding a lock: bpf_{} is called while the bpf_spin_lock taken at insn {} is held; call bpf_spin_unlock first",
                    p.name, l.pc
                ),
            );
        }
        let mut release: Option<u32> = None;
        let mut lock_arg: Option<Reg> = None;
        let mut sock_arg: Option<Reg> = None;
        let mut map: Option<u32> = None;
        let mut callback: Option<u32> = None;
        let mut dyn_arg: Option<super::dynptrs::DynArg> = None;
        let mut regs = [Reg::NOT_INIT; 5];
        for (i, arg) in p.args.iter().enumerate() {
            let rn = i + 1;
            let r = self
                .read(path, pc, rn)
                .map_err(|(pc, m)| (pc, format!("{m} (argument {rn} of bpf_{})", p.name)))?;
            regs[i] = r;
            let size_of_next = || -> VResult<Option<u64>> {
                let s = path.state.cur().regs[rn + 1];
                match s.kind {
                    Kind::Scalar => Ok(Some(s.var.umax)),
                    _ => err(
                        pc,
                        format!("R{} must be a size (scalar) for bpf_{}", rn + 1, p.name),
                    ),
                }
            };
            match arg {
                Arg::Anything => {}
                Arg::Map => match r.kind {
                    Kind::MapPtr { map: m } => map = Some(m),
                    _ => {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=map_ptr (argument of bpf_{})",
                                r.kind.name(),
                                p.name
                            ),
                        );
                    }
                },
                Arg::MapValueOrNull if r.kind == Kind::Scalar && r.var.konst() == Some(0) => {}
                Arg::MapKey | Arg::MapValue | Arg::UninitMapValue | Arg::MapValueOrNull => {
                    let m = self.map(map.unwrap_or(0), pc)?.clone();
                    let n = if *arg == Arg::MapKey {
                        m.key_size
                    } else {
                        m.value_size
                    } as i64;
                    let write = *arg == Arg::UninitMapValue;
                    self.check_mem_arg(path, pc, rn, &r, n, write, &format!("bpf_{}", p.name))?;
                    if !self.ptr_leaks_ok()
                        && let Some(leak) = self.spilled_pointer_in(path, &r, n)
                    {
                        return err(
                            pc,
                            format!(
                                "R{rn} leaks addr into map {}: {leak}, and map contents are visible to user space{}",
                                map.unwrap_or(0),
                                if self.opts.privileged {
                                    " (allow with --allow-ptr-leaks)"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                    // A constant index past the end of an array: the update
                    // can never succeed (the kernel only fails it at run time).
                    if *arg == Arg::MapKey
                        && id as u32 == helper::MAP_UPDATE_ELEM
                        && matches!(m.map_type, map_type::ARRAY | map_type::PERCPU_ARRAY)
                        && let Some(k) = self.stack_const(path, &r, m.key_size)
                        && k >= m.max_entries as u64
                    {
                        return err(
                            pc,
                            format!(
                                "R{rn} key {} is out of range for array map {} ({} entries): bpf_map_update_elem always fails",
                                k as u32 as i32,
                                map.unwrap_or(0),
                                m.max_entries
                            ),
                        );
                    }
                }
                Arg::FixedMem { size, write } => {
                    self.check_mem_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        *size as i64,
                        *write,
                        &format!("bpf_{}", p.name),
                    )?;
                }
                Arg::CtxOrNull if r.kind == Kind::Scalar && r.var.konst() == Some(0) => {}
                Arg::StackOrNull => {
                    let null = r.kind == Kind::Scalar && r.var.konst() == Some(0);
                    if !null && !matches!(r.kind, Kind::Stack { .. }) {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=fp (argument of bpf_{}: a pointer to the stack, or NULL)",
                                r.kind.name(),
                                p.name
                            ),
                        );
                    }
                }
                Arg::Mem | Arg::UninitMem | Arg::MemOrNull | Arg::MemRw => {
                    let n = size_of_next()?.unwrap_or(0);
                    if *arg == Arg::MemOrNull && r.kind == Kind::Scalar && r.var.konst() == Some(0)
                    {
                        continue;
                    }
                    if n > 1 << 29 {
                        return err(
                            pc,
                            format!(
                                "R{} unbounded size for bpf_{}: bound it first",
                                rn + 1,
                                p.name
                            ),
                        );
                    }
                    let what = format!("bpf_{}", p.name);
                    self.check_mem_arg(path, pc, rn, &r, n as i64, *arg == Arg::UninitMem, &what)?;
                    // Memory the helper reads and writes must also be writable.
                    if *arg == Arg::MemRw {
                        self.check_mem_arg(path, pc, rn, &r, n as i64, true, &what)?;
                    }
                }
                Arg::Size | Arg::SizeOrZero => {
                    if r.kind != Kind::Scalar {
                        return err(
                            pc,
                            format!("R{rn} must be a scalar size for bpf_{}", p.name),
                        );
                    }
                    if *arg == Arg::Size && r.var.umin == 0 && r.var.umax == 0 {
                        return err(
                            pc,
                            format!("R{rn} invalid zero-sized read for bpf_{}", p.name),
                        );
                    }
                }
                Arg::Ctx | Arg::CtxOrNull => {
                    if r.kind == Kind::Ctx && (r.off != 0 || r.var.konst() != Some(0)) {
                        return err(
                            pc,
                            format!(
                                "R{rn} must point to the start of the context, not ctx{:+} (argument of bpf_{}): pass the context pointer unmodified",
                                r.off, p.name
                            ),
                        );
                    }
                    if r.kind != Kind::Ctx || r.off != 0 {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=ctx (argument of bpf_{})",
                                r.kind.name(),
                                p.name
                            ),
                        );
                    }
                }
                Arg::Func => match r.kind {
                    Kind::Func { pc: f } => callback = Some(f),
                    _ => {
                        return err(
                            pc,
                            format!("R{rn} must be a function (callback) for bpf_{}", p.name),
                        );
                    }
                },
                Arg::SpinLock => {
                    self.check_spin_lock_arg(rn, pc, &r)?;
                    lock_arg = Some(r);
                }
                Arg::RingbufMem => {
                    release = Some(self.check_release_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        RefKind::RingbufRecord,
                        p.name,
                    )?);
                }
                Arg::ReleaseSock => {
                    release =
                        Some(self.check_release_arg(path, pc, rn, &r, RefKind::Socket, p.name)?);
                }
                Arg::SockCommonOrNull
                    if r.kind == Kind::Scalar && r.var.konst() == Some(0)
                        || matches!(r.kind, Kind::SockOrNull(_) | Kind::BtfOrNull { .. }) => {}
                Arg::SockCommon | Arg::SockCommonOrNull if matches!(r.kind, Kind::Btf { .. }) => {
                    self.check_btf_arg(pc, rn, &r, "sock_common", p.name)?;
                    sock_arg = Some(r);
                }
                Arg::BtfId { strukt, or_null } => {
                    let null = r.kind == Kind::Scalar && r.var.konst() == Some(0);
                    if !(*or_null && (null || matches!(r.kind, Kind::BtfOrNull { .. }))) {
                        self.check_btf_arg(pc, rn, &r, strukt, p.name)?;
                    }
                }
                Arg::SockCommon | Arg::SockCommonOrNull => {
                    if !matches!(r.kind, Kind::Sock(_)) {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=sock_common, sock, tcp_sock (argument of bpf_{}){}",
                                r.kind.name(),
                                p.name,
                                if r.kind.is_or_null() {
                                    ": compare it with 0 first"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                    sock_arg = Some(r);
                }
                Arg::Dynptr {
                    init,
                    release: rel,
                    local,
                    ringbuf,
                } => {
                    let d = self.dynptr_arg(
                        path,
                        pc,
                        rn,
                        &r,
                        super::dynptrs::Want {
                            init: *init,
                            local: *local,
                            ringbuf: *ringbuf,
                        },
                        &format!("bpf_{}", p.name),
                    )?;
                    if *init
                        && id as u32 == helper::DYNPTR_FROM_MEM
                        && !matches!(regs[0].kind, Kind::MapValue { .. })
                    {
                        return err(
                            pc,
                            format!(
                                "Unsupported reg type {} for bpf_dynptr_from_mem data: a local dynptr points into a map value",
                                regs[0].kind.name()
                            ),
                        );
                    }
                    if *rel {
                        release = Some(d.slot.ref_id);
                    }
                    dyn_arg = Some(d);
                }
                Arg::PercpuBtf => {
                    let ok = matches!(r.kind, Kind::Btf { flags, .. } if flags & crate::state::btf_flag::PERCPU != 0)
                        && r.off == 0
                        && r.var.konst() == Some(0);
                    if !ok {
                        return err(
                            pc,
                            format!(
                                "R{rn} type={} expected=percpu_ptr_ (the address of a per-CPU kernel variable, `extern ... __ksym`, for bpf_{})",
                                r.kind.name(),
                                p.name
                            ),
                        );
                    }
                }
                Arg::ConstStr => {
                    if !matches!(r.kind, Kind::MapValue { .. } | Kind::Stack { .. }) {
                        return err(pc, format!("R{rn} must point to a constant string"));
                    }
                }
            }
        }
        // Specific map-type rules.
        if let Some(m) = map {
            let info = self.map(m, pc)?;
            let mt = info.map_type;
            let ok = map_fits_helper(mt, id as u32);
            if !ok {
                return err(
                    pc,
                    format!("cannot pass map_type {mt} into func bpf_{}#{id}", p.name),
                );
            }
        }
        let ret = match p.ret {
            Ret::Integer => Reg::unknown(),
            // A void helper leaves R0 unreadable (bpf_tail_call's caller
            // must not read it).
            Ret::Void => Reg::NOT_INIT,
            Ret::MapValueOrNull => {
                let m = map.unwrap_or(0);
                let inner_is_map = self.opts.maps.get(m as usize).is_some_and(|i| {
                    matches!(i.map_type, map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS)
                });
                let id = path.state.fresh_id();
                let mut r = Reg::ptr(if inner_is_map {
                    Kind::MapPtrOrNull {
                        map: self.opts.maps[m as usize].inner.unwrap_or(m),
                    }
                } else {
                    Kind::MapValueOrNull { map: m }
                });
                r.id = id;
                r
            }
            Ret::SockOrNull { kind, acquires } => {
                let mut r = Reg::ptr(Kind::SockOrNull(kind));
                if acquires {
                    r.id = path.state.acquire(RefKind::Socket, pc);
                    r.ref_obj_id = r.id;
                } else {
                    r.id = path.state.fresh_id();
                    if let Some(s) = sock_arg {
                        // A view of the argument: released with it.
                        r.ref_obj_id = s.ref_obj_id;
                    }
                }
                r
            }
            Ret::Btf {
                strukt,
                or_null,
                trusted,
            } => {
                let Some(to) = self.kbtf.as_ref().and_then(|k| k.struct_id(strukt)) else {
                    return err(
                        pc,
                        format!(
                            "bpf_{} returns a struct {strukt} pointer: the kernel's BTF is needed to verify it ({})",
                            p.name,
                            if self.kbtf.is_some() {
                                "it has no such struct"
                            } else {
                                "none was given"
                            }
                        ),
                    );
                };
                let flags = if trusted {
                    crate::state::btf_flag::TRUSTED
                } else {
                    0
                };
                let mut r = Reg::ptr(if or_null {
                    Kind::BtfOrNull { id: to, flags }
                } else {
                    Kind::Btf { id: to, flags }
                });
                if or_null {
                    r.id = path.state.fresh_id();
                }
                // A cast of a socket argument shares its reference.
                if let Some(s) = sock_arg {
                    r.ref_obj_id = s.ref_obj_id;
                }
                r
            }
            Ret::PercpuOfArg { null } => {
                use oxbpf_obj::btf::Kind as BK;
                use oxbpf_obj::btfindex::BtfTypes;
                let Kind::Btf { id: t, .. } = regs[0].kind else {
                    return err(pc, format!("bpf_{}: R1 is not a per-CPU variable", p.name));
                };
                let k = self.kbtf.clone();
                let is_struct = k.as_ref().is_some_and(|k| {
                    k.ty(t)
                        .is_some_and(|x| matches!(x.kind, BK::Struct { .. } | BK::Union { .. }))
                });
                let kind = if is_struct {
                    if null {
                        Kind::BtfOrNull { id: t, flags: 0 }
                    } else {
                        Kind::Btf { id: t, flags: 0 }
                    }
                } else {
                    let size = k
                        .as_ref()
                        .and_then(|k| BtfTypes::size_of(k.idx(), t))
                        .filter(|&n| n > 0 && n < 1 << 29)
                        .unwrap_or(0) as u32;
                    if null {
                        Kind::MemOrNull {
                            size,
                            writable: false,
                            pkt: false,
                        }
                    } else {
                        Kind::Mem {
                            size,
                            writable: false,
                            pkt: false,
                        }
                    }
                };
                let mut r = Reg::ptr(kind);
                if null {
                    r.id = path.state.fresh_id();
                }
                r
            }
            Ret::DynptrMemOrNull => {
                let len = regs[2];
                let Some(n) = len.var.konst().filter(|_| len.kind == Kind::Scalar) else {
                    return err(
                        pc,
                        format!("R3 is not a known constant (the length of bpf_{})", p.name),
                    );
                };
                let d = dyn_arg.map(|d| d.slot);
                let mut r = Reg::ptr(Kind::MemOrNull {
                    size: n.min(1 << 29) as u32,
                    writable: !d.is_some_and(|d| d.rdonly),
                    pkt: false,
                });
                r.id = path.state.fresh_id();
                // A ring buffer record's memory goes with its reference.
                r.ref_obj_id = d.map_or(0, |d| d.ref_id);
                r
            }
            Ret::MemOrNullSizeArg(a) => {
                let s = regs[a];
                match s.var.konst() {
                    Some(n) if s.kind == Kind::Scalar && n > 0 && n < 1 << 29 => {
                        let mut r = Reg::ptr(Kind::MemOrNull {
                            size: n as u32,
                            writable: true,
                            pkt: false,
                        });
                        // The record is a reference: it must be submitted or
                        // discarded on every path (a NULL result holds nothing).
                        r.id = path.state.acquire(RefKind::RingbufRecord, pc);
                        r.ref_obj_id = r.id;
                        r
                    }
                    _ => {
                        return err(
                            pc,
                            format!("R{} must be a constant size for bpf_{}", a + 1, p.name),
                        );
                    }
                }
            }
        };
        if id == TAIL_CALL {
            // A successful tail call never returns: nothing held may be left.
            self.check_leaks(path, pc, "tail_call", None)?;
        }
        if let Some(id) = release {
            path.state.release(id, pc, self.opts.privileged);
        }
        if let Some(r) = lock_arg {
            self.lock_or_unlock(path, pc, id, &r)?;
        }
        // A tail call from a subprogram that succeeds returns to the
        // subprogram's caller from another program, which may have changed
        // the packet (from the main program it never returns).
        // Writing through an skb or xdp dynptr may change the packet.
        let dyn_pkt_write = id as u32 == helper::DYNPTR_WRITE
            && dyn_arg.is_some_and(|d| {
                matches!(
                    d.slot.kind,
                    crate::state::DynKind::Skb | crate::state::DynKind::Xdp
                )
            });
        if p.changes_packet || dyn_pkt_write || (id == TAIL_CALL && path.state.frames.len() > 1) {
            invalidate_packet(&mut path.state, pc, self.opts.privileged);
        }
        {
            let f = path.state.cur_mut();
            for r in 1..=5 {
                f.regs[r] = Reg::NOT_INIT;
            }
            f.regs[0] = ret;
        }
        // Callbacks run zero or more times: explore the body as a call from
        // here, returning to the instruction after the helper call.
        if let Some(cb) = callback {
            let mut other = Path {
                pc,
                state: path.state.clone(),
                last: path.last,
                trail: path.trail.clone(),
                hist: path.hist.clone(),
                wrote: path.wrote,
            };
            let args = match id as u32 {
                helper::LOOP => [
                    Reg::scalar(Scalar::urange(0, u32::MAX as u64)),
                    regs[2],
                    Reg::NOT_INIT,
                    Reg::NOT_INIT,
                    Reg::NOT_INIT,
                ],
                _ => {
                    let m = map.unwrap_or(0);
                    let info = self.map(m, pc)?.clone();
                    let mut key = Reg::ptr(Kind::Mem {
                        size: info.key_size,
                        writable: false,
                        pkt: false,
                    });
                    key.off = 0;
                    [
                        Reg::ptr(Kind::MapPtr { map: m }),
                        key,
                        Reg::ptr(Kind::MapValue { map: m }),
                        regs[2],
                        Reg::NOT_INIT,
                    ]
                }
            };
            self.push_frame(&mut other, pc, cb as usize, pc, true, Some(args))?;
            let caller = other.state.frames[..other.state.frames.len() - 1].to_vec();
            other.state.cur_mut().site = Some(std::rc::Rc::new(CallbackSite {
                callsite: pc,
                target: cb as usize,
                args,
                caller,
            }));
            path.pc = pc + 1;
            return Ok(Step::Next(vec![other]));
        }
        path.pc = pc + 1;
        Ok(Step::Next(vec![]))
    }

    /// A kernel function call: its prototype from the kernel's BTF, its
    /// flags from the kfunc table, its arguments checked as the kernel's
    /// `check_kfunc_args` does (scalars, constants, memory and sizes, typed
    /// pointers with the trust the flags demand), references acquired and
    /// released, RCU read sections entered and left.
    pub(super) fn kfunc(
        &mut self,
        path: &mut Path,
        pc: usize,
        btf_id: i32,
        module: i16,
    ) -> VResult<Step> {
        use crate::kfuncs::{Special, kf};
        use crate::state::btf_flag as F;
        use oxbpf_obj::btf::Kind as BK;
        let named = self
            .opts
            .kfunc_names
            .iter()
            .find(|(at, _)| *at == pc)
            .map(|(_, n)| n.clone());
        if module != 0 {
            return err(
                pc,
                format!(
                    "kernel function {}: kfuncs of kernel modules (BTF object fd {module}) are not supported by oxbpf's verifier yet",
                    named.unwrap_or_else(|| format!("#{btf_id}"))
                ),
            );
        }
        let Some(k) = self.kbtf.clone() else {
            return err(
                pc,
                format!(
                    "kernel function {}: kfunc calls are checked against the kernel's BTF, and none was given",
                    named.unwrap_or_else(|| format!("#{btf_id}"))
                ),
            );
        };
        let func = u32::try_from(btf_id).ok().filter(|&id| id != 0);
        let ft = func.and_then(|id| k.ty(id));
        let (name, proto) = match ft.as_deref().map(|t| (t.name.clone(), t.kind.clone())) {
            Some((n, BK::Func { proto, .. })) => (n, proto),
            _ => {
                return err(
                    pc,
                    match named {
                        Some(n) => format!(
                            "kernel function {n} is not in the kernel's BTF (declare it __weak and guard the call with bpf_ksym_exists)"
                        ),
                        None => format!("kernel btf_id {btf_id} is not a function"),
                    },
                );
            }
        };
        let func = func.unwrap_or(0);
        if !k.kernel.is_kfunc(func) {
            return err(
                pc,
                format!(
                    "calling kernel function {name} is not allowed: it is not a kfunc (no bpf_kfunc tag in the kernel's BTF)"
                ),
            );
        }
        let Some(meta) = crate::kfuncs::lookup(&name) else {
            return err(
                pc,
                format!(
                    "kernel function {name} is not modelled by oxbpf's verifier yet (its flags are not in oxbpf's kfunc table)"
                ),
            );
        };
        if !meta.set.allows(self.opts.prog_type) {
            return err(
                pc,
                format!(
                    "calling kernel function {name} is not allowed in a {} program",
                    self.opts.prog_type.name()
                ),
            );
        }
        if !self.opts.gpl {
            return err(
                pc,
                "cannot call kernel function from non-GPL compatible program",
            );
        }
        if let Special::Unmodelled(what) = meta.special {
            return err(
                pc,
                format!("kernel function {name}: {what} are not supported by oxbpf's verifier yet"),
            );
        }
        if meta.flags & kf::SLEEPABLE != 0 {
            return err(
                pc,
                format!("program must be sleepable to call sleepable kfunc {name}"),
            );
        }
        if let Some(l) = path.state.lock {
            self.relate_lock(l);
            return err(
                pc,
                format!(
                    "function calls are not allowed while holding a lock: {name} is called while the bpf_spin_lock taken at insn {} is held",
                    l.pc
                ),
            );
        }
        let Some(BK::FuncProto { ret, params }) = k.ty(proto).map(|t| t.kind.clone()) else {
            return err(pc, format!("kernel function {name} has no prototype"));
        };
        if params.len() > 5 {
            return err(pc, format!("Function {name} has {} > 5 args", params.len()));
        }
        let skip = |id: u32| -> u32 {
            let mut id = id;
            for _ in 0..32 {
                match k.ty(id).map(|t| t.kind.clone()) {
                    Some(
                        BK::Typedef { target }
                        | BK::Const { target }
                        | BK::Volatile { target }
                        | BK::Restrict { target }
                        | BK::TypeTag { target },
                    ) => id = target,
                    _ => break,
                }
            }
            id
        };
        let is_scalar = |id: u32| {
            k.ty(skip(id)).is_some_and(|t| {
                matches!(t.kind, BK::Int { .. } | BK::Enum { .. } | BK::Enum64 { .. })
            }) && skip(id) != 0
        };
        let mut regs = [Reg::NOT_INIT; 5];
        let mut release: Option<u32> = None;
        let mut iter: Option<super::iters::IterArg> = None;
        let mut dyn_args: Vec<super::dynptrs::DynArg> = Vec::new();
        for (i, (pname, ptype)) in params.iter().enumerate() {
            let rn = i + 1;
            let r = self
                .read(path, pc, rn)
                .map_err(|(pc, m)| (pc, format!("{m} (argument {rn} of {name})")))?;
            regs[i] = r;
            if i == 0
                && matches!(
                    meta.special,
                    Special::IterNew | Special::IterNext | Special::IterDestroy
                )
            {
                let pointee = match k.ty(skip(*ptype)).map(|t| t.kind.clone()) {
                    Some(BK::Ptr { target }) => skip(target),
                    _ => {
                        return err(pc, format!("{name}: arg#0 is not a pointer to an iterator"));
                    }
                };
                let size =
                    oxbpf_obj::btfindex::BtfTypes::size_of(k.idx(), pointee).unwrap_or(0) as usize;
                iter = Some(self.iter_arg(path, pc, rn, &r, pointee, size, meta.special, &name)?);
                continue;
            }
            if pname.ends_with("__ign") {
                continue;
            }
            if pname.ends_with("__alloc") {
                let held = path
                    .state
                    .refs
                    .iter()
                    .find(|x| r.ref_obj_id != 0 && x.id == r.ref_obj_id && x.kind == RefKind::Alloc)
                    .copied();
                let Some(h) = held.filter(|_| matches!(r.kind, Kind::Mem { .. })) else {
                    self.relate_gone(r.gone);
                    return err(
                        pc,
                        format!(
                            "arg#{i} expected pointer to allocated object: R{rn} is {}{}{}",
                            r.kind.name(),
                            if r.kind.is_or_null() {
                                " (it may be NULL: compare it with 0 first)"
                            } else {
                                ""
                            },
                            r.gone.explain()
                        ),
                    );
                };
                if r.off != 0 || r.var.konst() != Some(0) {
                    self.relate_acquired(&h);
                    return err(
                        pc,
                        format!("R{rn} must have zero offset when passed to release func {name}"),
                    );
                }
                release = Some(h.id);
                continue;
            }
            if is_scalar(*ptype) {
                if r.kind != Kind::Scalar {
                    return err(
                        pc,
                        format!(
                            "R{rn} is {} but arg#{i} of {name} is a scalar",
                            r.kind.name()
                        ),
                    );
                }
                if (pname.ends_with("__k") || pname.ends_with("__szk")) && r.var.konst().is_none() {
                    return err(
                        pc,
                        format!("R{rn} must be a known constant (arg#{i} {pname} of {name})"),
                    );
                }
                continue;
            }
            let t = skip(*ptype);
            let Some(BK::Ptr { target }) = k.ty(t).map(|x| x.kind.clone()) else {
                return err(
                    pc,
                    format!("{name}: arg#{i} has a type oxbpf's verifier cannot check"),
                );
            };
            if meta.special == Special::CastToKernCtx {
                if r.kind != Kind::Ctx || r.off != 0 || r.var.konst() != Some(0) {
                    return err(
                        pc,
                        format!("arg#{i} expected pointer to ctx, but got {}", r.kind.name()),
                    );
                }
                continue;
            }
            let nullable = pname.ends_with("__nullable") || pname.ends_with("__opt");
            if nullable && r.kind == Kind::Scalar && r.var.konst() == Some(0) {
                continue;
            }
            let pointee = skip(target);
            let pt = k.ty(pointee);
            let is_struct = pt
                .as_ref()
                .is_some_and(|x| matches!(x.kind, BK::Struct { .. } | BK::Union { .. }));
            let sized_by_next = params
                .get(i + 1)
                .is_some_and(|(n, _)| n.ends_with("__sz") || n.ends_with("__szk"));
            // The program's own context (`struct __sk_buff *`, `struct
            // xdp_md *`), as the kernel's KF_ARG_PTR_TO_CTX.
            if is_struct && matches!(k.name(pointee).as_str(), "__sk_buff" | "xdp_md") {
                if r.kind != Kind::Ctx || r.off != 0 || r.var.konst() != Some(0) {
                    return err(
                        pc,
                        format!(
                            "arg#{i} expected pointer to ctx, but got {} ({name} takes the program's context)",
                            r.kind.name()
                        ),
                    );
                }
                continue;
            }
            if is_struct && k.name(pointee) == "bpf_dynptr" {
                let init = pname.ends_with("__uninit");
                let want = super::dynptrs::Want {
                    init,
                    local: false,
                    ringbuf: false,
                };
                let d = self.dynptr_arg(path, pc, rn, &r, want, &name)?;
                // A clone is the same kind of dynptr, holding the same
                // reference (released with it).
                if init && let Some(src) = dyn_args.first() {
                    let src: super::dynptrs::DynArg = *src;
                    self.make_dynptr(path, d.frame, d.at, src.slot);
                }
                dyn_args.push(d);
                continue;
            }
            if is_struct && !sized_by_next {
                let want = pointee;
                let (id, flags) = match r.kind {
                    Kind::Btf { id, flags } => (id, flags),
                    kd => {
                        return err(
                            pc,
                            format!(
                                "arg#{i} expected pointer to btf or socket, but R{rn} is {}{}",
                                kd.name(),
                                if kd.is_or_null() {
                                    ": compare it with 0 first"
                                } else {
                                    ""
                                }
                            ),
                        );
                    }
                };
                let referenced = r.ref_obj_id != 0;
                let trusted = referenced || (flags & F::TRUSTED != 0 && flags & F::UNTRUSTED == 0);
                let rcu = flags & F::RCU != 0 && flags & F::UNTRUSTED == 0;
                if meta.flags & kf::RELEASE != 0 && !referenced {
                    self.relate_gone(r.gone);
                    return err(
                        pc,
                        format!(
                            "release kernel function {name} expects refcounted PTR_TO_BTF_ID: R{rn} is {}, which nothing acquired",
                            r.kind.name()
                        ),
                    );
                }
                if meta.flags & (kf::TRUSTED_ARGS | kf::RELEASE) != 0 && !trusted {
                    return err(
                        pc,
                        format!(
                            "R{rn} must be referenced or trusted (arg#{i} of {name}; it is {})",
                            r.kind.name()
                        ),
                    );
                }
                if meta.flags & kf::RCU != 0 && !trusted && !rcu {
                    return err(
                        pc,
                        format!(
                            "R{rn} must be a rcu pointer (arg#{i} of {name}; it is {})",
                            r.kind.name()
                        ),
                    );
                }
                if flags & (F::UNTRUSTED | F::USER | F::PERCPU) != 0 || id == 0 {
                    return err(
                        pc,
                        format!(
                            "R{rn} must be referenced or trusted (arg#{i} of {name}; it is {})",
                            r.kind.name()
                        ),
                    );
                }
                if r.var.konst() != Some(0) {
                    return err(
                        pc,
                        format!("R{rn} has a variable offset: pass the pointer itself to {name}"),
                    );
                }
                let strict = meta.flags & (kf::ACQUIRE | kf::RELEASE) != 0;
                let ok = if strict {
                    r.off == 0 && id == want
                } else {
                    k.ids_match(id, r.off, want)
                };
                if !ok {
                    return err(
                        pc,
                        format!(
                            "kernel function {name} args#{i} expected pointer to struct {} but R{rn} has a pointer to struct {}{}",
                            k.name(want),
                            k.name(id),
                            if r.off != 0 {
                                format!(" (at offset {})", r.off)
                            } else {
                                String::new()
                            }
                        ),
                    );
                }
                if meta.flags & kf::RELEASE != 0 {
                    let held = path
                        .state
                        .refs
                        .iter()
                        .find(|x| x.id == r.ref_obj_id)
                        .copied();
                    match held {
                        Some(h) if matches!(h.kind, RefKind::Kernel(_)) => {
                            if r.off != 0 {
                                self.relate_acquired(&h);
                                return err(
                                    pc,
                                    format!(
                                        "R{rn} must have zero offset when passed to release func {name}"
                                    ),
                                );
                            }
                            release = Some(h.id);
                        }
                        _ => {
                            return err(
                                pc,
                                format!(
                                    "release kernel function {name} expects refcounted PTR_TO_BTF_ID"
                                ),
                            );
                        }
                    }
                }
                continue;
            }
            // Memory: sized by the next argument, or by the pointee's type.
            let size = if sized_by_next {
                let s = path.state.cur().regs[rn + 1];
                if s.kind != Kind::Scalar {
                    return err(
                        pc,
                        format!("R{} must be a size (scalar) for {name}", rn + 1),
                    );
                }
                if s.var.umax > 1 << 29 {
                    return err(
                        pc,
                        format!("R{} unbounded size for {name}: bound it first", rn + 1),
                    );
                }
                s.var.umax as i64
            } else {
                match oxbpf_obj::btfindex::BtfTypes::size_of(k.idx(), pointee) {
                    Some(n) if n > 0 => n as i64,
                    _ => {
                        return err(
                            pc,
                            format!(
                                "arg#{i} pointer type {} must point to scalar, or struct with scalar",
                                oxbpf_obj::btfindex::BtfTypes::type_name(k.idx(), target)
                            ),
                        );
                    }
                }
            };
            if nullable && r.kind.is_or_null() {
                continue;
            }
            self.check_mem_arg(path, pc, rn, &r, size, false, &name)?;
        }
        match meta.special {
            Special::RcuLock => {
                if let Some((_, at)) = path.state.rcu {
                    self.related = vec![(at as usize, "the section was entered".into())];
                    return err(
                        pc,
                        format!(
                            "nested rcu read lock (kernel function bpf_rcu_read_lock): the section entered at insn {at} is still open"
                        ),
                    );
                }
                path.state.rcu = Some((1, pc as u32));
            }
            Special::RcuUnlock => match path.state.rcu {
                None => {
                    return err(
                        pc,
                        "unmatched rcu read unlock (kernel function bpf_rcu_read_unlock)",
                    );
                }
                Some((n, at)) if n > 1 => path.state.rcu = Some((n - 1, at)),
                Some(_) => {
                    path.state.rcu = None;
                    // Pointers valid only inside the section are no longer.
                    path.state.for_each_reg(|x| {
                        if let Kind::Btf { id, flags } | Kind::BtfOrNull { id, flags } = x.kind
                            && flags & F::RCU != 0
                        {
                            x.kind = Kind::Btf {
                                id,
                                flags: (flags & !F::RCU) | F::UNTRUSTED,
                            };
                        }
                    });
                }
            },
            _ => {}
        }
        if let Some(id) = release {
            path.state.release(id, pc, self.opts.privileged);
        }
        let rt = skip(ret);
        if let (Special::DynptrFrom { xdp }, Some(d)) = (meta.special, dyn_args.last()) {
            use crate::state::{DynKind, DynSlot};
            use ProgramType as T;
            // The packet is writable through it where the program may
            // write packet data (the kernel's may_access_direct_pkt_data).
            let writable = xdp
                || matches!(
                    self.opts.prog_type,
                    T::SchedCls | T::SchedAct | T::LwtXmit | T::SkSkb | T::SkMsg
                );
            let slot = DynSlot {
                kind: if xdp { DynKind::Xdp } else { DynKind::Skb },
                ref_id: 0,
                rdonly: !writable,
            };
            self.make_dynptr(path, d.frame, d.at, slot);
        }
        if let Special::DynptrSlice { rdwr } = meta.special {
            let d = dyn_args.first().map(|d| d.slot);
            let len = regs[3];
            let Some(n) = len.var.konst().filter(|_| len.kind == Kind::Scalar) else {
                return err(
                    pc,
                    format!("R4 must be a known constant (the size of {name})"),
                );
            };
            if rdwr && d.is_some_and(|d| d.rdonly) {
                return err(pc, format!("{name}: the dynptr is read-only"));
            }
            let pkt = d.is_some_and(|d| {
                matches!(
                    d.kind,
                    crate::state::DynKind::Skb | crate::state::DynKind::Xdp
                )
            });
            if rdwr && pkt && !self.prog_writes_packet() {
                return err(
                    pc,
                    format!("{name}: the prog does not allow writes to packet data"),
                );
            }
            let mut r0 = Reg::ptr(Kind::MemOrNull {
                size: n.min(1 << 29) as u32,
                writable: rdwr,
                pkt,
            });
            r0.id = path.state.fresh_id();
            r0.ref_obj_id = d.map_or(0, |d| d.ref_id);
            let f = path.state.cur_mut();
            for r in 1..=5 {
                f.regs[r] = Reg::NOT_INIT;
            }
            f.regs[0] = r0;
            path.pc = pc + 1;
            return Ok(Step::Next(vec![]));
        }
        if let Some(it) = iter {
            match meta.special {
                Special::IterDestroy => self.iter_destroy(path, pc, it),
                Special::IterNext => {
                    let pointee = match k.ty(rt).map(|t| t.kind.clone()) {
                        Some(BK::Ptr { target }) => skip(target),
                        _ => return err(pc, format!("{name} does not return a pointer")),
                    };
                    let is_struct = k
                        .ty(pointee)
                        .is_some_and(|x| matches!(x.kind, BK::Struct { .. } | BK::Union { .. }));
                    let elem = if is_struct {
                        // Elements of an RCU-protected iterator are valid
                        // in the RCU read section; the others are trusted.
                        let rcu = crate::kfuncs::lookup(&name.replace("_next", "_new"))
                            .is_some_and(|n| n.flags & kf::RCU_PROTECTED != 0);
                        Reg::ptr(Kind::Btf {
                            id: pointee,
                            flags: if rcu { F::RCU } else { F::TRUSTED },
                        })
                    } else {
                        match oxbpf_obj::btfindex::BtfTypes::size_of(k.idx(), pointee) {
                            Some(n) if n > 0 && n < 1 << 29 => Reg::ptr(Kind::Mem {
                                size: n as u32,
                                writable: false,
                                pkt: false,
                            }),
                            _ => {
                                return err(
                                    pc,
                                    format!(
                                        "kernel function {name} returns a pointer to memory oxbpf's verifier cannot size"
                                    ),
                                );
                            }
                        }
                    };
                    let extra = self.iter_next(path, pc, it, elem);
                    return Ok(Step::Next(extra));
                }
                _ => {}
            }
        }
        let r0 = if rt == 0 {
            Reg::NOT_INIT
        } else if is_scalar(rt) {
            Reg::unknown()
        } else {
            let pointee = match k.ty(rt).map(|t| t.kind.clone()) {
                Some(BK::Ptr { target }) => skip(target),
                _ => {
                    return err(
                        pc,
                        format!(
                            "kernel function {name} returns a type oxbpf's verifier cannot model"
                        ),
                    );
                }
            };
            match meta.special {
                Special::ObjNew => {
                    let id = regs[0].var.konst().unwrap_or(0) as u32;
                    let size = self.alloc_type_size(pc, id)?;
                    let mut r = Reg::ptr(Kind::MemOrNull {
                        size,
                        writable: true,
                        pkt: false,
                    });
                    r.id = path.state.acquire(RefKind::Alloc, pc);
                    r.ref_obj_id = r.id;
                    r
                }
                Special::RdonlyCast => {
                    let to = regs[1].var.konst().unwrap_or(0) as u32;
                    let is_struct = k
                        .ty(to)
                        .is_some_and(|x| matches!(x.kind, BK::Struct { .. } | BK::Union { .. }));
                    Reg::ptr(Kind::Btf {
                        id: if is_struct { to } else { 0 },
                        flags: F::UNTRUSTED,
                    })
                }
                Special::CastToKernCtx => {
                    let strukt = match self.opts.prog_type {
                        ProgramType::Xdp => "xdp_buff",
                        ProgramType::Kprobe => "pt_regs",
                        ProgramType::PerfEvent => "bpf_perf_event_data_kern",
                        ProgramType::Tracepoint | ProgramType::RawTracepoint => {
                            "bpf_raw_tracepoint_args"
                        }
                        ProgramType::SockOps => "bpf_sock_ops_kern",
                        ProgramType::CgroupSockAddr => "bpf_sock_addr_kern",
                        ProgramType::CgroupSock => "sock",
                        ProgramType::CgroupDevice => "bpf_cgroup_dev_ctx",
                        ProgramType::CgroupSysctl => "bpf_sysctl_kern",
                        ProgramType::CgroupSockopt => "bpf_sockopt_kern",
                        ProgramType::SkMsg => "sk_msg",
                        ProgramType::SkLookup => "bpf_sk_lookup_kern",
                        ProgramType::FlowDissector => "bpf_flow_dissector",
                        _ => "sk_buff",
                    };
                    let Some(id) = k.struct_id(strukt) else {
                        return err(pc, format!("the kernel's BTF has no struct {strukt}"));
                    };
                    Reg::ptr(Kind::Btf {
                        id,
                        flags: F::TRUSTED,
                    })
                }
                _ => {
                    let is_struct = k
                        .ty(pointee)
                        .is_some_and(|x| matches!(x.kind, BK::Struct { .. } | BK::Union { .. }));
                    if !is_struct {
                        // Read-only memory of the pointee's size, as the
                        // kernel's check_kfunc_call (a `void *` has none).
                        let size = oxbpf_obj::btfindex::BtfTypes::size_of(k.idx(), pointee)
                            .filter(|&n| n > 0 && n < 1 << 29)
                            .map(|n| n as u32);
                        let Some(size) = size else {
                            return err(
                                pc,
                                format!(
                                    "kernel function {name} returns pointer type {} is not supported",
                                    oxbpf_obj::btfindex::BtfTypes::type_name(k.idx(), rt)
                                ),
                            );
                        };
                        let mut r = if meta.flags & kf::RET_NULL != 0 {
                            let mut r = Reg::ptr(Kind::MemOrNull {
                                size,
                                writable: false,
                                pkt: false,
                            });
                            r.id = path.state.fresh_id();
                            r
                        } else {
                            Reg::ptr(Kind::Mem {
                                size,
                                writable: false,
                                pkt: false,
                            })
                        };
                        r.off = 0;
                        r
                    } else {
                        let acquire = meta.flags & kf::ACQUIRE != 0;
                        let null = meta.flags & kf::RET_NULL != 0;
                        let flags = if acquire { F::TRUSTED } else { 0 };
                        let mut r = Reg::ptr(if null {
                            Kind::BtfOrNull { id: pointee, flags }
                        } else {
                            Kind::Btf { id: pointee, flags }
                        });
                        if acquire {
                            r.id = path.state.acquire(RefKind::Kernel(pointee), pc);
                            r.ref_obj_id = r.id;
                        } else if null {
                            r.id = path.state.fresh_id();
                        }
                        r
                    }
                }
            }
        };
        {
            let f = path.state.cur_mut();
            for r in 1..=5 {
                f.regs[r] = Reg::NOT_INIT;
            }
            f.regs[0] = r0;
        }
        path.pc = pc + 1;
        Ok(Step::Next(vec![]))
    }

    /// Whether the program type may write packet data (the kernel's
    /// may_access_direct_pkt_data for BPF_WRITE).
    fn prog_writes_packet(&self) -> bool {
        use ProgramType as T;
        matches!(
            self.opts.prog_type,
            T::SchedCls | T::SchedAct | T::Xdp | T::LwtXmit | T::SkSkb | T::SkMsg
        )
    }

    /// The size of the program's struct `id` that `bpf_obj_new` allocates:
    /// a struct of plain data (special fields — lists, trees, reference
    /// counts, locks, timers, kptrs — are not modelled).
    fn alloc_type_size(&self, pc: usize, id: u32) -> VResult<u32> {
        use oxbpf_obj::btf::Kind as BK;
        use oxbpf_obj::btfindex::BtfTypes;
        let Some(btf) = self.opts.prog_btf.clone() else {
            return err(
                pc,
                "bpf_obj_new needs the program's BTF (its type id names one of the program's structs)",
            );
        };
        let b: &oxbpf_obj::Btf = &btf;
        let t = b.resolve(id);
        let Some(ty) = b
            .get_type(t)
            .filter(|x| matches!(x.kind, BK::Struct { .. }))
        else {
            return err(
                pc,
                format!("bpf_obj_new type ID argument must be of a struct (type {id} is not)"),
            );
        };
        // Special fields anywhere inside (a bounded walk of nested structs).
        let mut todo = vec![(t, 0)];
        while let Some((x, depth)) = todo.pop() {
            let Some(BK::Struct { members, .. } | BK::Union { members, .. }) =
                b.get_type(x).map(|y| y.kind)
            else {
                continue;
            };
            for m in members {
                let mut mt = m.type_id;
                let mut tagged = false;
                for _ in 0..16 {
                    match b.get_type(mt).map(|y| y.kind) {
                        Some(BK::TypeTag { target }) => {
                            tagged = true;
                            mt = target;
                        }
                        Some(
                            BK::Typedef { target }
                            | BK::Const { target }
                            | BK::Volatile { target }
                            | BK::Restrict { target },
                        ) => mt = target,
                        Some(BK::Array { elem, .. }) => mt = elem,
                        Some(BK::Ptr { target }) => {
                            tagged |= matches!(
                                b.get_type(target).map(|y| y.kind),
                                Some(BK::TypeTag { .. })
                            );
                            break;
                        }
                        _ => break,
                    }
                }
                let name = b.get_type(mt).map(|y| y.name).unwrap_or_default();
                if tagged
                    || matches!(
                        name.as_str(),
                        "bpf_list_head"
                            | "bpf_list_node"
                            | "bpf_rb_root"
                            | "bpf_rb_node"
                            | "bpf_refcount"
                            | "bpf_spin_lock"
                            | "bpf_res_spin_lock"
                            | "bpf_timer"
                            | "bpf_wq"
                            | "bpf_task_work"
                    )
                {
                    return err(
                        pc,
                        format!(
                            "bpf_obj_new of struct {}: objects holding {} are not supported by oxbpf's verifier yet",
                            ty.name,
                            if tagged { "kptrs" } else { name.as_str() }
                        ),
                    );
                }
                if depth < 8 {
                    todo.push((mt, depth + 1));
                }
            }
        }
        match b.size_of(t) {
            Some(n) if n > 0 && n <= 4096 => Ok(n as u32),
            n => err(
                pc,
                format!(
                    "bpf_obj_new of struct {}: size {} is not allocatable",
                    ty.name,
                    n.unwrap_or(0)
                ),
            ),
        }
    }

    /// A typed kernel pointer argument that must point to struct `want`
    /// (or hold it at its offset, as a `struct tcp_sock *` holds a
    /// `sock_common`), the kernel's `check_reg_type` for BTF ids.
    pub(super) fn check_btf_arg(
        &mut self,
        pc: usize,
        rn: usize,
        r: &Reg,
        want: &str,
        helper: &str,
    ) -> VResult<()> {
        let (id, flags) = match r.kind {
            Kind::Btf { id, flags } => (id, flags),
            k => {
                return err(
                    pc,
                    format!(
                        "R{rn} type={} expected=ptr_{want} (argument of bpf_{helper}){}",
                        k.name(),
                        if k.is_or_null() {
                            ": compare it with 0 first"
                        } else {
                            ""
                        }
                    ),
                );
            }
        };
        use crate::state::btf_flag as F;
        if flags & (F::UNTRUSTED | F::USER | F::PERCPU) != 0 || id == 0 {
            return err(
                pc,
                format!(
                    "R{rn} type={} expected=ptr_{want} (argument of bpf_{helper}): an untrusted pointer cannot be passed to a helper",
                    r.kind.name()
                ),
            );
        }
        if r.var.konst() != Some(0) {
            return err(
                pc,
                format!(
                    "R{rn} is {} with a variable offset: pass the pointer itself to bpf_{helper}",
                    r.kind.name()
                ),
            );
        }
        let Some(k) = &self.kbtf else {
            return err(
                pc,
                format!("R{rn} is a kernel pointer but no kernel BTF is loaded"),
            );
        };
        let Some(w) = k.struct_id(want) else {
            return err(pc, format!("the kernel's BTF has no struct {want}"));
        };
        if !k.ids_match(id, r.off, w) {
            return err(
                pc,
                format!(
                    "R{rn} is of type {}{} but bpf_{helper} expects struct {want}",
                    k.name(id),
                    if r.off != 0 {
                        format!(" at offset {}", r.off)
                    } else {
                        String::new()
                    }
                ),
            );
        }
        Ok(())
    }

    /// A pointer argument to `n` bytes, readable (and initialized) or writable.
    /// Where a pointer spilled in the `n` stack bytes at `r` lives, as
    /// "fp-8 holds a ctx pointer".
    pub(super) fn spilled_pointer_in(&self, path: &Path, r: &Reg, n: i64) -> Option<String> {
        let Kind::Stack { frame } = r.kind else {
            return None;
        };
        let a = r.off + r.var.smin.max(-STACK) + STACK;
        let b = r.off + r.var.smax.min(0) + STACK + n;
        let st = &path.state.frames.get(frame as usize)?.stack;
        st.spills.iter().find_map(|(k, v)| {
            let k = *k as i64;
            (k < b && k + 8 > a && v.kind.is_pointer())
                .then(|| format!("stack fp{} holds a {} pointer", k - STACK, v.kind.name()))
        })
    }

    /// The constant stored at the stack address in `r` with a store of
    /// exactly `size` bytes, if the verifier knows it.
    pub(super) fn stack_const(&self, path: &Path, r: &Reg, size: u32) -> Option<u64> {
        let Kind::Stack { frame } = r.kind else {
            return None;
        };
        let a = usize::try_from(r.off + r.var.konst()? as i64 + STACK).ok()?;
        let st = &path.state.frames.get(frame as usize)?.stack;
        match st.consts.get(&a) {
            Some(&(n, v)) if n as u32 == size => Some(v),
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_mem_arg(
        &mut self,
        path: &mut Path,
        pc: usize,
        rn: usize,
        r: &Reg,
        n: i64,
        write: bool,
        helper: &str,
    ) -> VResult<()> {
        if n == 0 {
            return Ok(());
        }
        match r.kind {
            Kind::Stack { .. } => {
                // Writable memory need not be initialized; mark it written.
                if write {
                    for i in 0..n {
                        self.mem_access(path, pc, rn, r, i, 1, Some(Reg::unknown()))
                            .map_err(|(pc, m)| {
                                (pc, format!("{m} (argument {rn} of {helper}, {n} bytes)"))
                            })?;
                    }
                } else {
                    for i in 0..n {
                        self.mem_access(path, pc, rn, r, i, 1, None)
                            .map_err(|(pc, m)| {
                                (pc, format!("{m} (argument {rn} of {helper}, {n} bytes)"))
                            })?;
                    }
                }
                Ok(())
            }
            Kind::MapValue { .. } | Kind::Packet | Kind::PacketMeta | Kind::Mem { .. } => self
                .mem_access(
                    path,
                    pc,
                    rn,
                    r,
                    0,
                    n,
                    if write { Some(Reg::unknown()) } else { None },
                )
                .map(|_| ())
                .map_err(|(pc, m)| (pc, format!("{m} (argument {rn} of {helper}, {n} bytes)"))),
            Kind::Scalar if r.var.konst() == Some(0) => err(
                pc,
                format!("R{rn} type=scalar: {helper} needs a pointer here, not NULL"),
            ),
            k => err(
                pc,
                format!(
                    "R{rn} type={} expected=pointer to memory (argument of {helper})",
                    k.name()
                ),
            ),
        }
    }
}

impl Verifier<'_> {
    /// A pointer given to a releasing helper: it must carry a reference of
    /// `kind` that this path still holds, unmodified. Returns the id.
    pub(super) fn check_release_arg(
        &mut self,
        path: &Path,
        pc: usize,
        rn: usize,
        r: &Reg,
        kind: RefKind,
        helper: &str,
    ) -> VResult<u32> {
        let (expected, right_kind) = match kind {
            RefKind::RingbufRecord => ("ringbuf_mem", matches!(r.kind, Kind::Mem { .. })),
            RefKind::Socket => (
                "sock_common, sock, tcp_sock",
                matches!(r.kind, Kind::Sock(_)),
            ),
            RefKind::Kernel(_) | RefKind::Iter(_) | RefKind::RingbufDynptr | RefKind::Alloc => {
                ("a referenced kernel pointer", false)
            }
        };
        let held = path
            .state
            .refs
            .iter()
            .find(|x| r.ref_obj_id != 0 && x.id == r.ref_obj_id)
            .copied();
        let Some(held) = held.filter(|h| h.kind == kind && right_kind) else {
            let why = match r.gone {
                Gone::No if r.kind.is_or_null() => {
                    " (it may be NULL: compare it with 0 first)".to_string()
                }
                Gone::No => {
                    format!(" (bpf_{helper} takes only a pointer returned by the acquiring helper)")
                }
                g => g.explain(),
            };
            self.relate_gone(r.gone);
            return err(
                pc,
                format!("R{rn} type={} expected={expected}{why}", r.kind.name()),
            );
        };
        if r.off != 0 || r.var.konst() != Some(0) {
            self.relate_acquired(&held);
            return err(
                pc,
                format!(
                    "R{rn} must have zero offset when passed to release func: bpf_{helper} needs the pointer the acquiring helper returned, not {}",
                    r
                ),
            );
        }
        if let Some(k) = path.state.callback_frame()
            && held.callback_frame != Some(k)
        {
            self.relate_acquired(&held);
            return err(
                pc,
                format!(
                    "R{rn} releases a reference acquired outside this callback (at insn {}): a callback may run any number of times, so it may release only what it acquired itself",
                    held.pc
                ),
            );
        }
        Ok(held.id)
    }

    /// `bpf_spin_lock` / `bpf_spin_unlock`'s argument, as the kernel's
    /// `process_spin_lock` checks it: the map value's own lock, at a
    /// constant offset, in a map with BTF.
    pub(super) fn check_spin_lock_arg(&self, rn: usize, pc: usize, r: &Reg) -> VResult<()> {
        let Kind::MapValue { map } = r.kind else {
            return err(
                pc,
                format!(
                    "R{rn} type={} expected=map_value: bpf_spin_lock needs a pointer to the lock in a map value",
                    r.kind.name()
                ),
            );
        };
        let Some(c) = r.var.konst() else {
            return err(
                pc,
                format!(
                    "R{rn} doesn't have constant offset. bpf_spin_lock has to be at the constant offset"
                ),
            );
        };
        let m = self.map(map, pc)?;
        if !m.has_btf {
            return err(
                pc,
                format!(
                    "map '{}' has to have BTF in order to use bpf_spin_lock (declare it with __type(value, ...))",
                    m.name
                ),
            );
        }
        let Some(at) = m.spin_lock else {
            return err(
                pc,
                format!(
                    "map '{}' has no valid spin_lock: its value type holds no struct bpf_spin_lock",
                    m.name
                ),
            );
        };
        let off = r.off + c as i64;
        if off != at as i64 {
            return err(
                pc,
                format!("off {off} doesn't point to 'struct bpf_spin_lock' that is at {at}"),
            );
        }
        Ok(())
    }

    pub(super) fn lock_or_unlock(
        &mut self,
        path: &mut Path,
        pc: usize,
        id: i32,
        r: &Reg,
    ) -> VResult<()> {
        let Kind::MapValue { map } = r.kind else {
            return Ok(());
        };
        if id == SPIN_LOCK {
            if let Some(l) = path.state.lock {
                self.relate_lock(l);
                return err(pc, "Locking two bpf_spin_locks are not allowed");
            }
            path.state.lock = Some(LockState {
                map,
                id: r.id,
                pc: pc as u32,
            });
            return Ok(());
        }
        match path.state.lock {
            None => err(
                pc,
                "bpf_spin_unlock without taking a lock: no bpf_spin_lock is held on this path",
            ),
            Some(l) if l.map != map || l.id != r.id => {
                self.relate_lock(l);
                err(
                    pc,
                    format!(
                        "bpf_spin_unlock of different lock: the lock held was taken at insn {} through another map value",
                        l.pc
                    ),
                )
            }
            Some(_) => {
                path.state.lock = None;
                Ok(())
            }
        }
    }
}

/// Every packet pointer (and length measured against the packet) becomes
/// invalid: the helper at `pc` may have moved or resized the packet.
pub(super) fn invalidate_packet(st: &mut State, pc: usize, privileged: bool) {
    let gone = Gone::PacketChanged { at: pc as u32 };
    st.for_each_reg(|r| {
        if matches!(
            r.kind,
            Kind::Packet
                | Kind::PacketMeta
                | Kind::PacketEnd
                | Kind::Mem { pkt: true, .. }
                | Kind::MemOrNull { pkt: true, .. }
        ) {
            *r = Reg::invalid(privileged, gone);
        }
        r.plen = None;
    });
}

/// Whether code reachable from `entry` (its function and every function it
/// calls) may change packet data: a packet-changing helper or a tail call.
pub(super) fn may_change_packet(decoded: &[Option<Instruction>], n: usize, entry: usize) -> bool {
    let seen = reachable(decoded, n, entry);
    decoded.iter().zip(&seen).any(|(insn, &reached)| {
        reached
            && matches!(insn, Some(Instruction::Call(oxbpf_isa::CallTarget::Helper(id)))
                if *id == TAIL_CALL
                    || u32::try_from(*id)
                        .ok()
                        .and_then(oxbpf_abi::helpers::proto)
                        .is_some_and(|p| p.changes_pkt_data))
    })
}

pub(super) const TAIL_CALL: i32 = helper::TAIL_CALL as i32;
pub(super) const SPIN_LOCK: i32 = helper::SPIN_LOCK as i32;
pub(super) const SPIN_UNLOCK: i32 = helper::SPIN_UNLOCK as i32;

/// Whether helper `id` accepts a map of type `mt` (the kernel's
/// `check_map_func_compatibility`, for the helpers oxbpf knows).
pub(super) fn map_fits_helper(mt: u32, id: u32) -> bool {
    use helper as h;
    use map_type as m;
    // Local storage maps go only with their own helpers, and those only
    // with them (check_map_func_compatibility, both ways).
    let storage = |ids: [u32; 2]| ids.contains(&id);
    match mt {
        m::SK_STORAGE => return storage([h::SK_STORAGE_GET, h::SK_STORAGE_DELETE]),
        m::TASK_STORAGE => return storage([h::TASK_STORAGE_GET, h::TASK_STORAGE_DELETE]),
        m::INODE_STORAGE => return storage([h::INODE_STORAGE_GET, h::INODE_STORAGE_DELETE]),
        m::CGRP_STORAGE => return storage([h::CGRP_STORAGE_GET, h::CGRP_STORAGE_DELETE]),
        _ => {}
    }
    match id {
        h::SK_STORAGE_GET
        | h::SK_STORAGE_DELETE
        | h::TASK_STORAGE_GET
        | h::TASK_STORAGE_DELETE
        | h::INODE_STORAGE_GET
        | h::INODE_STORAGE_DELETE
        | h::CGRP_STORAGE_GET
        | h::CGRP_STORAGE_DELETE => false,
        h::MAP_LOOKUP_ELEM | h::MAP_UPDATE_ELEM | h::MAP_DELETE_ELEM => !matches!(
            mt,
            m::QUEUE
                | m::STACK
                | m::RINGBUF
                | m::BLOOM_FILTER
                | m::PERF_EVENT_ARRAY
                | m::PROG_ARRAY
        ),
        h::MAP_PUSH_ELEM | h::MAP_POP_ELEM | h::MAP_PEEK_ELEM => {
            matches!(mt, m::QUEUE | m::STACK | m::BLOOM_FILTER)
        }
        h::RINGBUF_OUTPUT | h::RINGBUF_RESERVE | h::RINGBUF_QUERY | h::RINGBUF_RESERVE_DYNPTR => {
            mt == m::RINGBUF
        }
        h::TAIL_CALL => mt == m::PROG_ARRAY,
        h::PERF_EVENT_OUTPUT => mt == m::PERF_EVENT_ARRAY,
        h::REDIRECT_MAP => matches!(mt, m::DEVMAP | m::CPUMAP | m::XSKMAP | m::DEVMAP_HASH),
        h::SK_REDIRECT_MAP | h::SOCK_MAP_UPDATE | h::MSG_REDIRECT_MAP => mt == m::SOCKMAP,
        h::SOCK_HASH_UPDATE | h::MSG_REDIRECT_HASH | h::SK_REDIRECT_HASH => mt == m::SOCKHASH,
        _ => true,
    }
}
