//! The abstract state: register types and values, stack slots, call frames.

use std::collections::BTreeMap;
use std::fmt;

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
    },
    MemOrNull {
        size: u32,
    },
    /// A subprogram's address (callback), by instruction index.
    Func {
        pc: u32,
    },
}

impl Kind {
    pub fn is_pointer(self) -> bool {
        !matches!(self, Kind::NotInit | Kind::Scalar)
    }

    pub fn is_or_null(self) -> bool {
        matches!(
            self,
            Kind::MapValueOrNull { .. } | Kind::MemOrNull { .. } | Kind::MapPtrOrNull { .. }
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
            Kind::MemOrNull { size } => format!("mem_or_null(size={size})"),
            Kind::Func { pc } => format!("func(insn {pc})"),
        }
    }
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
}

impl Reg {
    pub const NOT_INIT: Reg = Reg {
        kind: Kind::NotInit,
        off: 0,
        var: Scalar::UNKNOWN,
        id: 0,
        range: 0,
        plen: None,
    };

    pub fn scalar(var: Scalar) -> Reg {
        Reg {
            kind: Kind::Scalar,
            var,
            ..Reg::NOT_INIT
        }
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
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            bytes: [byte::UNINIT; 512],
            spills: BTreeMap::new(),
            consts: BTreeMap::new(),
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
        }
    }
}

/// The whole abstract machine state on one path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub frames: Vec<Frame>,
    /// Next id for linking copies.
    pub next_id: u32,
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

/// Whether `old` (already proven safe) covers `cur`: every concrete state
/// `cur` describes is described by `old`. Ids are matched up consistently.
pub fn covers(old: &State, cur: &State, live: u16) -> bool {
    if old.frames.len() != cur.frames.len() {
        return false;
    }
    let mut idmap: BTreeMap<u32, u32> = BTreeMap::new();
    let mut id_ok = |a: u32, b: u32| -> bool {
        if a == 0 && b == 0 {
            return true;
        }
        match idmap.get(&a) {
            Some(&x) => x == b,
            None => {
                idmap.insert(a, b);
                true
            }
        }
    };
    let mut reg_ok = |o: &Reg, c: &Reg| -> bool {
        match (o.kind, c.kind) {
            (Kind::NotInit, _) => true,
            (Kind::Scalar, Kind::Scalar) => o.var.contains(&c.var),
            (ok, ck) if ok == ck => {
                o.off == c.off
                    && o.var.contains(&c.var)
                    && c.range >= o.range
                    && (!ok.is_or_null() && !matches!(ok, Kind::Packet | Kind::PacketMeta)
                        || id_ok(o.id, c.id))
            }
            _ => false,
        }
    };
    let top = old.frames.len() - 1;
    for (fi, (fo, fc)) in old.frames.iter().zip(&cur.frames).enumerate() {
        if fo.ret_pc != fc.ret_pc || fo.callback != fc.callback {
            return false;
        }
        for (ri, (ro, rc)) in fo.regs.iter().zip(&fc.regs).enumerate() {
            // Registers the code ahead never reads do not matter.
            if fi == top && live & (1 << ri) == 0 {
                continue;
            }
            if !reg_ok(ro, rc) {
                return false;
            }
        }
        for (i, (bo, bc)) in fo.stack.bytes.iter().zip(&fc.stack.bytes).enumerate() {
            let ok = *bo == byte::UNINIT
                || (*bo == byte::MISC && *bc != byte::UNINIT)
                || (*bo == byte::ZERO && *bc == byte::ZERO);
            if !ok {
                return false;
            }
            let _ = i;
        }
        for (slot, rc) in &fc.stack.spills {
            if rc.kind.is_pointer() && !fo.stack.spills.contains_key(slot) {
                return false;
            }
        }
        for (slot, ro) in &fo.stack.spills {
            match fc.stack.spills.get(slot) {
                Some(rc) => {
                    if !reg_ok(ro, rc) {
                        return false;
                    }
                }
                // A spilled scalar is covered by plain initialized bytes
                // only if it was unknown; a spilled pointer never is.
                None => {
                    if ro.kind != Kind::Scalar || ro.var != Scalar::UNKNOWN {
                        return false;
                    }
                }
            }
        }
    }
    true
}
