//! The abstract state: register types and values, stack slots, call frames.

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use crate::scalar::Scalar;

/// What a register holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    NotInit,
    Scalar,
    /// The program's context.
    Ctx,
    /// A pointer into the stack frame `frame`.
    Stack {
        frame: u8,
    },
    /// A map (`lddw rX, map`), by index.
    MapPtr {
        map: u32,
    },
    /// A map from a map-of-maps lookup, not yet checked for null.
    MapPtrOrNull {
        map: u32,
    },
    MapValue {
        map: u32,
    },
    MapValueOrNull {
        map: u32,
    },
    Packet,
    PacketMeta,
    PacketEnd,
    /// Memory of a known size (ring buffer reservation, raw input).
    Mem {
        size: u32,
        writable: bool,
        /// A slice of an skb or xdp dynptr: packet data, invalid once a
        /// helper may have changed the packet.
        pkt: bool,
    },
    MemOrNull {
        size: u32,
        writable: bool,
        pkt: bool,
    },
    /// A subprogram's address (callback), by instruction index.
    Func {
        pc: u32,
    },
    /// A socket (`struct bpf_sock`, the kernel's PTR_TO_SOCKET), its
    /// `sock_common` part only (PTR_TO_SOCK_COMMON), or a TCP socket
    /// (`struct bpf_tcp_sock`), each possibly NULL.
    Sock(SockKind),
    SockOrNull(SockKind),
    /// A kernel object typed by the kernel's BTF (the kernel's
    /// PTR_TO_BTF_ID): `id` is the struct's type id in vmlinux BTF, `flags`
    /// its trust ([`btf_flag`]). Id 0 is memory of no known type (a pointer
    /// to a scalar read out of a kernel struct): any read of it gives a
    /// scalar, as the kernel's untrusted PTR_TO_MEM.
    Btf {
        id: u32,
        flags: u8,
    },
    BtfOrNull {
        id: u32,
        flags: u8,
    },
}

/// Flags of a BTF-typed pointer, as the kernel's `bpf_type_flag` bits.
pub mod btf_flag {
    /// PTR_TRUSTED: valid for the whole program (tp_btf arguments,
    /// bpf_get_current_task_btf, acquired references).
    pub const TRUSTED: u8 = 1;
    /// MEM_RCU: valid inside the RCU read section.
    pub const RCU: u8 = 2;
    /// PTR_UNTRUSTED: reads are fault-tolerant, nothing may take it.
    pub const UNTRUSTED: u8 = 4;
    /// MEM_USER: a user-space address (`__user`): no direct reads.
    pub const USER: u8 = 8;
    /// MEM_PERCPU: a per-CPU address (`__percpu`): no direct reads.
    pub const PERCPU: u8 = 16;
}

/// Which socket view a pointer gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockKind {
    Full,
    Common,
    Tcp,
}

impl SockKind {
    fn name(self) -> &'static str {
        match self {
            SockKind::Full => "sock",
            SockKind::Common => "sock_common",
            SockKind::Tcp => "tcp_sock",
        }
    }
}

impl Kind {
    pub fn is_pointer(self) -> bool {
        !matches!(self, Kind::NotInit | Kind::Scalar)
    }

    pub fn is_or_null(self) -> bool {
        matches!(
            self,
            Kind::MapValueOrNull { .. }
                | Kind::MemOrNull { .. }
                | Kind::MapPtrOrNull { .. }
                | Kind::SockOrNull(_)
                | Kind::BtfOrNull { .. }
        )
    }

    pub fn name(self) -> String {
        match self {
            Kind::NotInit => "uninitialized".into(),
            Kind::Scalar => "scalar".into(),
            Kind::Ctx => "ctx".into(),
            Kind::Stack { frame } => format!("fp{frame}"),
            Kind::MapPtr { map } => format!("map_ptr(map{map})"),
            Kind::MapPtrOrNull { map } => format!("map_ptr_or_null(map{map})"),
            Kind::MapValue { map } => format!("map_value(map{map})"),
            Kind::MapValueOrNull { map } => format!("map_value_or_null(map{map})"),
            Kind::Packet => "pkt".into(),
            Kind::PacketMeta => "pkt_meta".into(),
            Kind::PacketEnd => "pkt_end".into(),
            Kind::Mem { size, .. } => format!("mem(size={size})"),
            Kind::MemOrNull { size, .. } => format!("mem_or_null(size={size})"),
            Kind::Func { pc } => format!("func(insn {pc})"),
            Kind::Sock(k) => k.name().to_string(),
            Kind::SockOrNull(k) => format!("{}_or_null", k.name()),
            Kind::Btf { id, flags } => format!("{}ptr_{}", btf_prefix(flags), btf_struct(id)),
            Kind::BtfOrNull { id, flags } => {
                format!("{}ptr_or_null_{}", btf_prefix(flags), btf_struct(id))
            }
        }
    }
}

/// The kernel's prefix for a BTF pointer's flags (`trusted_`, `rcu_`,
/// `untrusted_`, `user_`, `percpu_`).
fn btf_prefix(flags: u8) -> String {
    let mut s = String::new();
    for (f, n) in [
        (btf_flag::USER, "user_"),
        (btf_flag::PERCPU, "percpu_"),
        (btf_flag::RCU, "rcu_"),
        (btf_flag::UNTRUSTED, "untrusted_"),
        (btf_flag::TRUSTED, "trusted_"),
    ] {
        if flags & f != 0 {
            s.push_str(n);
        }
    }
    s
}

thread_local! {
    /// Struct names of the kernel BTF in use, for register names (set by
    /// the verifier for the length of a run).
    pub(crate) static BTF_NAMES: std::cell::RefCell<Option<std::sync::Arc<oxbpf_obj::core::KernelBtf>>> =
        const { std::cell::RefCell::new(None) };
}

/// The kernel's name for an iterator type: `iter_num` for `struct
/// bpf_iter_num`.
pub(crate) fn iter_name(id: u32) -> String {
    let s = btf_struct(id);
    s.strip_prefix("bpf_").map(str::to_string).unwrap_or(s)
}

pub(crate) fn btf_struct(id: u32) -> String {
    if id == 0 {
        return "mem".into();
    }
    BTF_NAMES.with(|b| {
        b.borrow()
            .as_ref()
            .and_then(|i| i.index.get(id))
            .map(|t| t.name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("btf#{id}"))
    })
}

/// A register's abstract value. For scalars `var` is the value; for
/// pointers the address is `base + off + var`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg {
    pub kind: Kind,
    pub off: i64,
    pub var: Scalar,
    /// Links copies: null checks and packet range checks apply to every
    /// register with the same id.
    pub id: u32,
    /// Packet pointers: bytes known to be in the packet from `base + var`.
    pub range: i64,
    /// Scalars computed as `pkt_end - pkt`: the packet pointer's id and
    /// fixed offset, so that a bound on this length bounds that packet.
    pub plen: Option<(u32, i64)>,
    /// The acquired reference (see [`State::refs`]) this pointer belongs
    /// to: releasing it invalidates every register and spill that carries
    /// the same id, in every frame.
    pub ref_obj_id: u32,
    /// Diagnostics only (never read by pruning): why a register that held
    /// a pointer no longer does.
    pub gone: Gone,
}

/// Why a pointer was invalidated, for messages about a later use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Gone {
    #[default]
    No,
    /// The reference acquired at instruction `acquired` was released by the
    /// helper call at instruction `at`.
    Released { at: u32, acquired: u32 },
    /// A helper (or tail call, or global function) at `at` may have moved
    /// or resized the packet.
    PacketChanged { at: u32 },
}

impl Gone {
    /// A sentence for an error message, or "" when nothing is known.
    pub fn explain(self) -> String {
        match self {
            Gone::No => String::new(),
            Gone::Released { at, acquired } => format!(
                " (it pointed to the reference acquired at insn {acquired}, which insn {at} released; every copy of the pointer is invalid from there on)"
            ),
            Gone::PacketChanged { at } => format!(
                " (it was a packet pointer, invalidated by insn {at}, which may move or resize the packet; reload ctx->data and check the bounds again)"
            ),
        }
    }
}

/// What kind of object an acquired reference is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// A `bpf_ringbuf_reserve` record: released by submit or discard.
    RingbufRecord,
    /// A socket from `bpf_sk_lookup_tcp/udp` or `bpf_skc_lookup_tcp`:
    /// released by `bpf_sk_release`.
    Socket,
    /// A kernel object from an acquiring kfunc (`bpf_task_acquire`…), by
    /// its struct's BTF id: released by the matching release kfunc.
    Kernel(u32),
    /// An open-coded iterator on the stack (`bpf_iter_num_new`…), by its
    /// struct's BTF id: released by its `_destroy`.
    Iter(u32),
    /// A ring buffer record reserved as a dynptr: released by
    /// `bpf_ringbuf_submit_dynptr` or `bpf_ringbuf_discard_dynptr`.
    RingbufDynptr,
    /// An object the program allocated (`bpf_obj_new`): freed by
    /// `bpf_obj_drop`.
    Alloc,
}

impl RefKind {
    pub fn describe(self) -> String {
        match self {
            RefKind::RingbufRecord => "ring buffer record (bpf_ringbuf_reserve)".into(),
            RefKind::Socket => "socket (bpf_sk_lookup_*)".into(),
            RefKind::Kernel(id) => format!("{} reference (an acquiring kfunc)", btf_struct(id)),
            RefKind::Iter(id) => format!("iterator {} ({}_new)", iter_name(id), btf_struct(id)),
            RefKind::RingbufDynptr => "ring buffer dynptr (bpf_ringbuf_reserve_dynptr)".into(),
            RefKind::Alloc => "allocated object (bpf_obj_new)".into(),
        }
    }

    pub fn release_hint(self) -> String {
        match self {
            RefKind::RingbufRecord => "bpf_ringbuf_submit or bpf_ringbuf_discard".into(),
            RefKind::Socket => "bpf_sk_release".into(),
            RefKind::Kernel(id) => crate::kfuncs::release_for(&btf_struct(id)).into(),
            RefKind::Iter(id) => format!("{}_destroy", btf_struct(id)),
            RefKind::RingbufDynptr => {
                "bpf_ringbuf_submit_dynptr or bpf_ringbuf_discard_dynptr".into()
            }
            RefKind::Alloc => "bpf_obj_drop".into(),
        }
    }
}

/// A reference the program holds and must release on every path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefState {
    pub id: u32,
    pub kind: RefKind,
    /// The acquiring instruction.
    pub pc: u32,
    /// Index of the innermost callback frame when it was acquired (a
    /// callback may release only what it acquired itself).
    pub callback_frame: Option<u8>,
}

/// The `bpf_spin_lock` held on this path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LockState {
    /// The map whose value holds the lock.
    pub map: u32,
    /// The id of the map-value pointer it was taken through (0 for a
    /// global-data map value): unlock must go through the same value.
    pub id: u32,
    /// The `bpf_spin_lock` call.
    pub pc: u32,
}

impl Reg {
    pub const NOT_INIT: Reg = Reg {
        kind: Kind::NotInit,
        off: 0,
        var: Scalar::UNKNOWN,
        id: 0,
        range: 0,
        plen: None,
        ref_obj_id: 0,
        gone: Gone::No,
    };

    pub fn scalar(var: Scalar) -> Reg {
        Reg {
            kind: Kind::Scalar,
            var,
            ..Reg::NOT_INIT
        }
    }

    /// What an invalidated pointer becomes.
    pub fn invalid(privileged: bool, gone: Gone) -> Reg {
        let mut r = if privileged {
            Reg::unknown()
        } else {
            Reg::NOT_INIT
        };
        r.gone = gone;
        r
    }

    pub fn konst(v: u64) -> Reg {
        Reg::scalar(Scalar::from_const(v))
    }

    pub fn unknown() -> Reg {
        Reg::scalar(Scalar::UNKNOWN)
    }

    pub fn ptr(kind: Kind) -> Reg {
        Reg {
            kind,
            var: Scalar::from_const(0),
            ..Reg::NOT_INIT
        }
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::NotInit => f.write_str("uninitialized"),
            Kind::Scalar => write!(f, "scalar({})", self.var),
            k => {
                write!(f, "{}", k.name())?;
                let mut extra = Vec::new();
                if self.off != 0 {
                    extra.push(format!("off={}", self.off));
                }
                if self.var.konst() != Some(0) {
                    extra.push(format!("var={}", self.var));
                }
                if matches!(k, Kind::Packet | Kind::PacketMeta) {
                    extra.push(format!("r={}", self.range));
                }
                if !extra.is_empty() {
                    write!(f, "({})", extra.join(","))?;
                }
                Ok(())
            }
        }
    }
}

/// What a stack byte holds: one of [`byte::UNINIT`], [`byte::MISC`],
/// [`byte::ZERO`] (a plain byte, so stacks copy, compare and hash fast).
pub type Byte = u8;

/// Stack byte states.
pub mod byte {
    pub const UNINIT: u8 = 0;
    pub const MISC: u8 = 1;
    pub const ZERO: u8 = 2;
    /// Part of an open-coded iterator (see [`super::Stack::iters`]): not
    /// readable as data.
    pub const ITER: u8 = 3;
    /// Part of a dynptr (see [`super::Stack::dynptrs`]): not readable as
    /// data.
    pub const DYNPTR: u8 = 4;
}

/// What a dynptr points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DynKind {
    /// A map value (`bpf_dynptr_from_mem`).
    Local,
    /// A ring buffer record (`bpf_ringbuf_reserve_dynptr`): a reference,
    /// submitted or discarded on every path.
    Ringbuf,
    /// The packet of an skb (`bpf_dynptr_from_skb`) or of an xdp_buff
    /// (`bpf_dynptr_from_xdp`): its slices are packet data.
    Skb,
    Xdp,
}

impl DynKind {
    pub fn name(self) -> &'static str {
        match self {
            DynKind::Local => "local",
            DynKind::Ringbuf => "ringbuf",
            DynKind::Skb => "skb",
            DynKind::Xdp => "xdp",
        }
    }
}

/// A `struct bpf_dynptr` on the stack (16 bytes, two slots), as the
/// kernel's STACK_DYNPTR slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DynSlot {
    pub kind: DynKind,
    /// The reference of a ring buffer dynptr (0 for a local one); its
    /// clones share it, and releasing one releases them all.
    pub ref_id: u32,
    pub rdonly: bool,
}

/// An open-coded iterator (`struct bpf_iter_num` …) on the stack, as the
/// kernel's STACK_ITER slots: created by its `_new` kfunc, advanced by
/// `_next`, released by `_destroy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IterSlot {
    /// The iterator struct's BTF id.
    pub btf: u32,
    /// Its size in bytes (a multiple of 8).
    pub size: u16,
    /// ACTIVE (`_next` may return an element) or DRAINED (it returned
    /// NULL, and will again).
    pub active: bool,
    /// Iterations of `_next` on this path: never compared when states
    /// prune (a loop's iterations meet), only when a loop is searched for
    /// an unchanged state (iterations differ: it is not an infinite loop).
    pub depth: u32,
    /// The reference `_new` acquired.
    pub ref_id: u32,
}

/// One frame's 512-byte stack: per-byte state and full 8-byte spills.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Stack {
    /// Index 0 is fp-512, index 511 is fp-1.
    pub bytes: [Byte; 512],
    /// Spilled registers by slot (fp-8*(k+1)), key = byte index of slot start.
    pub spills: BTreeMap<usize, Reg>,
    /// Known constants stored with narrower than 8-byte stores, by byte
    /// index: (size, value). Used only for lints such as constant array
    /// keys out of range, never for safety (pruning ignores them).
    pub consts: BTreeMap<usize, (u8, u64)>,
    /// Open-coded iterators by the byte index of their first byte; their
    /// bytes are [`byte::ITER`].
    pub iters: BTreeMap<usize, IterSlot>,
    /// Dynptrs by the byte index of their first byte; their bytes are
    /// [`byte::DYNPTR`].
    pub dynptrs: BTreeMap<usize, DynSlot>,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            bytes: [byte::UNINIT; 512],
            spills: BTreeMap::new(),
            consts: BTreeMap::new(),
            iters: BTreeMap::new(),
            dynptrs: BTreeMap::new(),
        }
    }
}

impl Stack {
    /// A store into bytes `a..b` destroys the dynptrs it touches (their
    /// bytes become uninitialized), as the kernel's
    /// destroy_if_dynptr_stack_slot; a referenced one is refused: its
    /// first byte is returned and nothing changes.
    pub fn destroy_dynptrs(&mut self, a: usize, b: usize) -> Option<usize> {
        let hit: Vec<usize> = self
            .dynptrs
            .range(a.saturating_sub(15)..b)
            .filter(|(k, _)| **k + 16 > a)
            .map(|(k, _)| *k)
            .collect();
        if let Some(k) = hit.iter().find(|k| self.dynptrs[k].ref_id != 0) {
            return Some(*k);
        }
        for k in hit {
            self.dynptrs.remove(&k);
            self.bytes[k..k + 16].fill(byte::UNINIT);
        }
        None
    }

    /// A store into bytes `a..b` ends every iterator it touches, as the
    /// kernel's scrub of STACK_ITER slots: the written 8-byte slots become
    /// plain data, the iterator's other bytes stay unusable, and its
    /// reference is still held (a leak unless something destroys it —
    /// nothing can).
    pub fn clobber_iters(&mut self, a: usize, b: usize) {
        let hit: Vec<usize> = self
            .iters
            .range(..b)
            .filter(|(k, it)| **k + it.size as usize > a)
            .map(|(k, _)| *k)
            .collect();
        let any = !hit.is_empty() || self.bytes[a..b].contains(&byte::ITER);
        for k in hit {
            self.iters.remove(&k);
        }
        if any {
            let (s, e) = (a / 8 * 8, b.div_ceil(8) * 8);
            for x in &mut self.bytes[s..e.min(512)] {
                if *x == byte::ITER {
                    *x = byte::MISC;
                }
            }
        }
    }
}

/// One call frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub regs: [Reg; 11],
    pub stack: Stack,
    /// Where to continue in the caller when this frame exits.
    pub ret_pc: usize,
    /// Callback frames return to the helper's caller with r0 = scalar and
    /// must return 0 or 1.
    pub callback: bool,
    /// Deepest stack byte used (for the combined-depth check).
    pub depth: i64,
    /// For a callback frame: where it was called from, to call it again.
    pub site: Option<Rc<CallbackSite>>,
}

/// How a callback frame was entered: a helper (`bpf_loop`,
/// `bpf_for_each_map_elem`) calls it any number of times, so when it
/// returns the verifier both continues after the helper and enters it
/// again, until the caller's state stops changing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallbackSite {
    /// The helper call.
    pub callsite: usize,
    /// The callback's first instruction.
    pub target: usize,
    /// r1..r5 of each call.
    pub args: [Reg; 5],
    /// The caller's frames when this call started (what the next call's
    /// state is widened against).
    pub caller: Vec<Frame>,
}

/// Widens the caller frames `cur` (after a callback call) against `prev`
/// (before it): a spilled scalar the callback changed becomes unknown, so
/// repeated calls converge instead of counting up one call at a time
/// (the kernel widens imprecise scalars the same way).
pub fn widen_frames(prev: &[Frame], cur: &mut [Frame]) {
    for (p, c) in prev.iter().zip(cur.iter_mut()) {
        for (slot, rc) in c.stack.spills.iter_mut() {
            if let Some(ro) = p.stack.spills.get(slot)
                && ro.kind == Kind::Scalar
                && rc.kind == Kind::Scalar
                && ro.var != rc.var
            {
                rc.var = Scalar::UNKNOWN;
                rc.id = 0;
            }
        }
        let pc = &p.stack.consts;
        c.stack.consts.retain(|k, v| pc.get(k) == Some(v));
    }
}

/// One register of two states at a loop head joined (`widen`: bounds that
/// moved sent to their extremes): a register that is a different kind of
/// thing in each, or linked differently, becomes unusable.
fn join_reg(o: &Reg, c: &Reg, widen: Option<&[i64]>) -> Reg {
    let j = |a: &Scalar, b: &Scalar| match widen {
        Some(t) => a.widen(b, t),
        None => a.join(b),
    };
    match (o.kind, c.kind) {
        (Kind::Scalar, Kind::Scalar) => {
            let mut r = Reg::scalar(j(&o.var, &c.var));
            if o.id == c.id {
                r.id = o.id;
            }
            if o.plen == c.plen {
                r.plen = o.plen;
            }
            r
        }
        (a, b) if a == b && a.is_pointer() => {
            if o.id != c.id || o.ref_obj_id != c.ref_obj_id {
                return Reg::NOT_INIT;
            }
            let mut r = *o;
            if o.off == c.off {
                r.var = j(&o.var, &c.var);
            } else {
                // Different fixed offsets: the difference becomes variable.
                let at = |x: &Reg| x.var.add(&Scalar::from_const(x.off as u64));
                r.off = 0;
                r.var = j(&at(o), &at(c));
            }
            r.range = o.range.min(c.range);
            r.gone = Gone::No;
            r
        }
        _ => Reg::NOT_INIT,
    }
}

/// The state that holds both `old` (a loop head's state on this path) and
/// `cur` (the same head reached again): registers and stack joined, or
/// widened when `widen` gives the thresholds to widen to. `None` when they cannot be joined (other frames,
/// references, locks): the loop is then walked as the kernel walks it.
pub fn join_states(old: &State, cur: &State, widen: Option<&[i64]>) -> Option<State> {
    if old.frames.len() != cur.frames.len()
        || old.refs != cur.refs
        || old.lock != cur.lock
        || old.rcu != cur.rcu
    {
        return None;
    }
    let mut out = old.clone();
    out.next_id = old.next_id.max(cur.next_id);
    for (fo, (o, c)) in out
        .frames
        .iter_mut()
        .zip(old.frames.iter().zip(&cur.frames))
    {
        if o.ret_pc != c.ret_pc
            || o.callback != c.callback
            || o.site != c.site
            || o.stack.iters != c.stack.iters
            || o.stack.dynptrs != c.stack.dynptrs
        {
            return None;
        }
        for (r, (ro, rc)) in fo.regs.iter_mut().zip(o.regs.iter().zip(&c.regs)) {
            *r = join_reg(ro, rc, widen);
        }
        fo.depth = o.depth.max(c.depth);
        for (b, (bo, bc)) in fo
            .stack
            .bytes
            .iter_mut()
            .zip(o.stack.bytes.iter().zip(&c.stack.bytes))
        {
            *b = if bo == bc {
                *bo
            } else if *bo == byte::UNINIT || *bc == byte::UNINIT {
                byte::UNINIT
            } else {
                byte::MISC
            };
        }
        let mut spills = BTreeMap::new();
        for (slot, ro) in &o.stack.spills {
            if let Some(rc) = c.stack.spills.get(slot) {
                let r = join_reg(ro, rc, widen);
                if r.kind != Kind::NotInit {
                    spills.insert(*slot, r);
                    continue;
                }
            }
            // Spilled in one state only (or not joinable): plain bytes.
            for b in &mut fo.stack.bytes[*slot..(*slot + 8).min(512)] {
                if *b != byte::UNINIT {
                    *b = byte::MISC;
                }
            }
        }
        for slot in c.stack.spills.keys() {
            if !o.stack.spills.contains_key(slot) {
                for b in &mut fo.stack.bytes[*slot..(*slot + 8).min(512)] {
                    if *b != byte::UNINIT {
                        *b = byte::MISC;
                    }
                }
            }
        }
        fo.stack.spills = spills;
        let cc = &c.stack.consts;
        fo.stack.consts.retain(|k, v| cc.get(k) == Some(v));
    }
    Some(out)
}

impl Frame {
    pub fn new(ret_pc: usize, frame: u8) -> Frame {
        let mut regs = [Reg::NOT_INIT; 11];
        regs[10] = Reg::ptr(Kind::Stack { frame });
        Frame {
            regs,
            stack: Stack::default(),
            ret_pc,
            callback: false,
            depth: 0,
            site: None,
        }
    }
}

/// The whole abstract machine state on one path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub frames: Vec<Frame>,
    /// Next id for linking copies.
    pub next_id: u32,
    /// References acquired and not yet released, oldest first.
    pub refs: Vec<RefState>,
    /// The spin lock held, if any.
    pub lock: Option<LockState>,
    /// `bpf_rcu_read_lock` sections entered and not left, and where the
    /// outermost was entered.
    pub rcu: Option<(u8, u32)>,
}

impl State {
    pub fn cur(&self) -> &Frame {
        self.frames.last().expect("a state always has a frame")
    }

    pub fn cur_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a state always has a frame")
    }

    pub fn fresh_id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// A state with one frame (the entry), nothing acquired or locked.
    pub fn entry() -> State {
        State {
            frames: vec![Frame::new(usize::MAX, 0)],
            next_id: 0,
            refs: Vec::new(),
            lock: None,
            rcu: None,
        }
    }

    /// The innermost callback frame, if the path is inside a callback.
    pub fn callback_frame(&self) -> Option<u8> {
        self.frames
            .iter()
            .rposition(|f| f.callback)
            .map(|i| i as u8)
    }

    /// Acquires a new reference of `kind` at instruction `pc` (owned by
    /// the innermost callback frame, if any) and returns its id.
    pub fn acquire(&mut self, kind: RefKind, pc: usize) -> u32 {
        let id = self.fresh_id();
        let callback_frame = self.callback_frame();
        self.refs.push(RefState {
            id,
            kind,
            pc: pc as u32,
            callback_frame,
        });
        id
    }

    /// Releases reference `id`: it leaves the reference table and every
    /// register or spill carrying it becomes invalid (an unknown scalar
    /// when `privileged`, unreadable otherwise, as the kernel's
    /// `mark_reg_invalid`). Returns the released entry.
    pub fn release(&mut self, id: u32, at: usize, privileged: bool) -> Option<RefState> {
        let i = self.refs.iter().position(|r| r.id == id)?;
        let r = self.refs.remove(i);
        let gone = Gone::Released {
            at: at as u32,
            acquired: r.pc,
        };
        self.for_each_reg(|x| {
            if x.ref_obj_id == id {
                *x = Reg::invalid(privileged, gone);
            }
        });
        // A ring buffer dynptr and its clones go with their reference.
        for f in &mut self.frames {
            let gone: Vec<usize> = f
                .stack
                .dynptrs
                .iter()
                .filter(|(_, d)| d.ref_id == id)
                .map(|(k, _)| *k)
                .collect();
            for k in gone {
                f.stack.dynptrs.remove(&k);
                f.stack.bytes[k..k + 16].fill(byte::UNINIT);
            }
        }
        Some(r)
    }

    /// Applies `f` to every register (and spilled register) of every frame.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for fr in &mut self.frames {
            for r in &mut fr.regs {
                f(r);
            }
            for r in fr.stack.spills.values_mut() {
                f(r);
            }
        }
    }
}

/// Ids of an old state matched to ids of the current one while comparing
/// (a few pairs at most: linear vectors beat maps here, and pruning
/// compares states constantly).
#[derive(Default)]
struct IdMap {
    /// Links of copies (null checks, packet ranges): an old id may stand
    /// for one current id; several old ids may meet in one current id
    /// (the current state then knows more links, which is sound).
    links: Vec<(u32, u32)>,
    /// References and lock owners: a one-to-one correspondence, as the
    /// kernel's `check_ids` (two old references in one current one would
    /// let a path release the same object twice).
    exact: Vec<(u32, u32)>,
    /// Scalars linked by copies (`r8 = r7`: a test of one bounds both),
    /// one-to-one as the kernel's `check_scalar_ids`: an unlinked scalar
    /// (id 0) counts as linked to nothing, so a state where two scalars
    /// are linked covers only states where they are linked too (its proof
    /// may rest on a test of one bounding the other).
    scalars: Vec<(u64, u64)>,
    /// Stand-ins for id 0, unique, above every real id.
    fresh: u64,
}

impl IdMap {
    fn link(&mut self, a: u32, b: u32) -> bool {
        if a == 0 && b == 0 {
            return true;
        }
        match self.links.iter().find(|p| p.0 == a) {
            Some(&(_, x)) => x == b,
            None => {
                self.links.push((a, b));
                true
            }
        }
    }

    /// Both ids set or both zero, and set ids in one-to-one correspondence.
    fn exact(&mut self, a: u32, b: u32) -> bool {
        if (a == 0) != (b == 0) {
            return false;
        }
        if a == 0 {
            return true;
        }
        match self.exact.iter().find(|p| p.0 == a || p.1 == b) {
            Some(&(x, y)) => x == a && y == b,
            None => {
                self.exact.push((a, b));
                true
            }
        }
    }

    fn scalar_ids(&mut self, a: u32, b: u32) -> bool {
        let mut stand_in = |id: u32| {
            if id == 0 {
                self.fresh += 1;
                (1u64 << 32) + self.fresh
            } else {
                u64::from(id)
            }
        };
        let (a, b) = (stand_in(a), stand_in(b));
        match self.scalars.iter().find(|p| p.0 == a || p.1 == b) {
            Some(&(x, y)) => x == a && y == b,
            None => {
                self.scalars.push((a, b));
                true
            }
        }
    }

    fn reg_ok(&mut self, o: &Reg, c: &Reg) -> bool {
        match (o.kind, c.kind) {
            (Kind::NotInit, _) => true,
            (Kind::Scalar, Kind::Scalar) => {
                o.var.contains(&c.var)
                    && self.scalar_ids(o.id, c.id)
                    // A length `data_end - data` bounds its packet when
                    // tested: a state whose proof may rest on that covers
                    // only states where the scalar is the same length.
                    && match (o.plen, c.plen) {
                        (None, _) => true,
                        (Some((po, oo)), Some((pc, oc))) => oo == oc && self.link(po, pc),
                        (Some(_), None) => false,
                    }
            }
            (ok, ck) if ok == ck => {
                o.off == c.off
                    && o.var.contains(&c.var)
                    && c.range >= o.range
                    && (!ok.is_or_null() && !matches!(ok, Kind::Packet | Kind::PacketMeta)
                        || self.link(o.id, c.id))
                    // Map values keep an id only where it names a lock owner.
                    && (!matches!(ok, Kind::MapValue { .. }) || o.id == 0 && c.id == 0
                        || self.exact(o.id, c.id))
                    && self.exact(o.ref_obj_id, c.ref_obj_id)
            }
            _ => false,
        }
    }
}

/// Whether `old` (already proven safe) covers `cur`: every concrete state
/// `cur` describes is described by `old`. Ids are matched up consistently;
/// both must hold the same references and the same lock.
pub fn covers(
    old: &State,
    cur: &State,
    live: u16,
    prec: Option<&crate::check::precise::Prec>,
    reads: Option<&[u64; 8]>,
) -> bool {
    if old.frames.len() != cur.frames.len()
        || old.refs.len() != cur.refs.len()
        || old.lock.is_some() != cur.lock.is_some()
        || old.rcu.map(|r| r.0) != cur.rcu.map(|r| r.0)
    {
        return false;
    }
    let mut ids = IdMap::default();
    for (o, c) in old.refs.iter().zip(&cur.refs) {
        if o.kind != c.kind || o.callback_frame != c.callback_frame || !ids.exact(o.id, c.id) {
            return false;
        }
    }
    if let (Some(o), Some(c)) = (old.lock, cur.lock)
        && (o.map != c.map || !ids.exact(o.id, c.id))
    {
        return false;
    }
    let top = old.frames.len() - 1;
    for (fi, (fo, fc)) in old.frames.iter().zip(&cur.frames).enumerate() {
        // (Frames' stack depths need not match: the combined stack of
        // calls is checked over all paths at the end.)
        if fo.ret_pc != fc.ret_pc || fo.callback != fc.callback {
            return false;
        }
        for (ri, (ro, rc)) in fo.regs.iter().zip(&fc.regs).enumerate() {
            // Registers the code ahead never reads do not matter.
            if fi == top && live & (1 << ri) == 0 {
                continue;
            }
            // An imprecise scalar stands for any scalar (unless it is a
            // packet length, whose tests bound its packet).
            if ro.kind == Kind::Scalar && ro.plen.is_none() && prec.is_some_and(|p| !p.reg(fi, ri))
            {
                if rc.kind != Kind::Scalar {
                    return false;
                }
                continue;
            }
            if !ids.reg_ok(ro, rc) {
                return false;
            }
        }
        // Slots the code after `old` never read before writing do not
        // matter (with no marks given, all do).
        let read = reads.map_or(u64::MAX, |r| r.get(fi).copied().unwrap_or(u64::MAX));
        let unread = |byte: usize| read >> (byte / 8) & 1 == 0;
        // Known zero bytes, like a spilled constant, matter only where the
        // proof from `old` needed them precise.
        let loose = |slot: usize| prec.is_some_and(|p| !p.slot(fi, slot));
        for (i, (bo, bc)) in fo.stack.bytes.iter().zip(&fc.stack.bytes).enumerate() {
            if unread(i) {
                continue;
            }
            // An iterator's bytes are covered only by the same iterator
            // (compared below), and cover nothing else.
            let special = |b: u8| b == byte::ITER || b == byte::DYNPTR;
            if (special(*bo) || special(*bc)) && *bo != *bc && *bo != byte::UNINIT {
                return false;
            }
            let ok = *bo == byte::UNINIT
                || special(*bo)
                || (*bo == byte::MISC && *bc != byte::UNINIT)
                || (*bo == byte::ZERO
                    && (*bc == byte::ZERO || (*bc != byte::UNINIT && loose(i / 8 * 8))));
            if !ok {
                return false;
            }
        }
        // Iterators, read or not: the same type in the same place, in the
        // same state, holding corresponding references (their depths do not
        // matter: iterations meet).
        if fo.stack.iters.len() != fc.stack.iters.len() {
            return false;
        }
        for ((ko, io), (kc, ic)) in fo.stack.iters.iter().zip(&fc.stack.iters) {
            if ko != kc
                || io.btf != ic.btf
                || io.size != ic.size
                || io.active != ic.active
                || !ids.exact(io.ref_id, ic.ref_id)
            {
                return false;
            }
        }
        if fo.stack.dynptrs.len() != fc.stack.dynptrs.len() {
            return false;
        }
        for ((ko, o), (kc, c)) in fo.stack.dynptrs.iter().zip(&fc.stack.dynptrs) {
            if ko != kc
                || o.kind != c.kind
                || o.rdonly != c.rdonly
                || !ids.exact(o.ref_id, c.ref_id)
            {
                return false;
            }
        }
        for (slot, rc) in &fc.stack.spills {
            if rc.kind.is_pointer() && !unread(*slot) && !fo.stack.spills.contains_key(slot) {
                return false;
            }
        }
        for (slot, ro) in &fo.stack.spills {
            if unread(*slot) {
                continue;
            }
            match fc.stack.spills.get(slot) {
                Some(rc)
                    if ro.kind == Kind::Scalar
                        && ro.plen.is_none()
                        && rc.kind == Kind::Scalar
                        && prec.is_some_and(|p| !p.slot(fi, *slot)) => {}
                Some(rc) => {
                    if !ids.reg_ok(ro, rc) {
                        return false;
                    }
                }
                // A spilled scalar is covered by plain initialized bytes
                // only if it was unknown; a spilled pointer never is.
                // (or an imprecise one, by initialized bytes).
                None => {
                    let imprecise = ro.kind == Kind::Scalar && ro.plen.is_none() && loose(*slot);
                    if ro.kind != Kind::Scalar || (ro.var != Scalar::UNKNOWN && !imprecise) {
                        return false;
                    }
                }
            }
        }
    }
    true
}
