//! CO-RE (compile once, run everywhere) relocation against a kernel's BTF,
//! as libbpf and the kernel do it before verification: each
//! `bpf_core_relo` record names a local type and an access string
//! (`0:1:2`: an index on the root pointer, then member and array indices);
//! the access is matched by name in the target kernel's types of the same
//! essential name (`task_struct___old` matches `task_struct`), and the
//! instruction gets the target's offset, size, existence, signedness,
//! bitfield shifts, type id or enumerator value. A field the kernel lacks
//! poisons its instruction (`call 0xbad2310`, "bad relo"), so that only a
//! path that reaches it fails, as with libbpf.
//!
//! Specification: the kernel's Documentation/bpf/btf.rst and
//! `enum bpf_core_relo_kind` (include/uapi/linux/bpf.h); the matching
//! rules are libbpf's (relo_core.c) as documented there.

use std::collections::HashMap;
use std::sync::OnceLock;

use oxbpf_isa::RawInsn;

use crate::btf::{CoreRelo, Kind};
use crate::btfindex::{BtfIndex, BtfTypes};

/// `enum bpf_core_relo_kind`.
pub mod relo {
    pub const FIELD_BYTE_OFFSET: u32 = 0;
    pub const FIELD_BYTE_SIZE: u32 = 1;
    pub const FIELD_EXISTS: u32 = 2;
    pub const FIELD_SIGNED: u32 = 3;
    pub const FIELD_LSHIFT_U64: u32 = 4;
    pub const FIELD_RSHIFT_U64: u32 = 5;
    pub const TYPE_ID_LOCAL: u32 = 6;
    pub const TYPE_ID_TARGET: u32 = 7;
    pub const TYPE_EXISTS: u32 = 8;
    pub const TYPE_SIZE: u32 = 9;
    pub const ENUMVAL_EXISTS: u32 = 10;
    pub const ENUMVAL_VALUE: u32 = 11;
    pub const TYPE_MATCHES: u32 = 12;

    pub fn name(kind: u32) -> &'static str {
        match kind {
            FIELD_BYTE_OFFSET => "byte_off",
            FIELD_BYTE_SIZE => "byte_sz",
            FIELD_EXISTS => "field_exists",
            FIELD_SIGNED => "signed",
            FIELD_LSHIFT_U64 => "lshift_u64",
            FIELD_RSHIFT_U64 => "rshift_u64",
            TYPE_ID_LOCAL => "local_type_id",
            TYPE_ID_TARGET => "target_type_id",
            TYPE_EXISTS => "type_exists",
            TYPE_SIZE => "type_size",
            ENUMVAL_EXISTS => "enumval_exists",
            ENUMVAL_VALUE => "enumval_value",
            TYPE_MATCHES => "type_matches",
            _ => "unknown",
        }
    }
}

/// The immediate libbpf writes into an instruction whose relocation
/// failed: a call of helper 0xbad2310 ("bad relo"), which no kernel has.
pub const POISON_HELPER: i32 = 0x0bad_2310;

/// A kernel's BTF with its types indexed by essential name, for CO-RE
/// candidate lookups (built on first use).
#[derive(Debug)]
pub struct KernelBtf {
    pub index: BtfIndex,
    names: OnceLock<HashMap<String, Vec<u32>>>,
    kfuncs: OnceLock<std::collections::HashSet<u32>>,
}

impl KernelBtf {
    pub fn new(index: BtfIndex) -> KernelBtf {
        KernelBtf {
            index,
            names: OnceLock::new(),
            kfuncs: OnceLock::new(),
        }
    }

    /// Whether function `id` is a kfunc (its FUNC record carries the
    /// `bpf_kfunc` declaration tag).
    pub fn is_kfunc(&self, id: u32) -> bool {
        self.kfuncs
            .get_or_init(|| {
                (1..self.index.len() as u32)
                    .filter(|&t| {
                        self.index.kind_of(t) == Some(17) && self.index.name_of(t) == "bpf_kfunc"
                    })
                    .filter_map(|t| match self.index.get(t)?.kind {
                        Kind::DeclTag { target, .. } => Some(target),
                        _ => None,
                    })
                    .collect()
            })
            .contains(&id)
    }

    /// The function named `name`.
    pub fn func(&self, name: &str) -> Option<u32> {
        self.candidates(name)
            .iter()
            .copied()
            .find(|&id| self.index.kind_of(id) == Some(12) && self.index.name_of(id) == name)
    }

    /// The variable named `name` (vmlinux BTF describes the per-CPU
    /// ones) and whether it is per-CPU (in the `.data..percpu` DATASEC).
    pub fn var(&self, name: &str) -> Option<(u32, bool)> {
        let id = self
            .candidates(name)
            .iter()
            .copied()
            .find(|&id| self.index.kind_of(id) == Some(14) && self.index.name_of(id) == name)?;
        let percpu = self.candidates(".data..percpu").iter().any(|&t| {
            self.index.kind_of(t) == Some(15)
                && matches!(self.index.get(t).map(|x| x.kind),
                    Some(Kind::Datasec { vars, .. }) if vars.iter().any(|v| v.type_id == id))
        });
        Some((id, percpu))
    }

    /// Types whose essential name is `name`.
    fn candidates(&self, name: &str) -> &[u32] {
        let names = self.names.get_or_init(|| {
            let mut m: HashMap<String, Vec<u32>> = HashMap::new();
            for id in 1..self.index.len() as u32 {
                let n = self.index.name_of(id);
                if !n.is_empty() {
                    m.entry(essential(n).to_string()).or_default().push(id);
                }
            }
            m
        });
        names.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A name without its `___flavor` suffix.
pub fn essential(name: &str) -> &str {
    match name.find("___") {
        Some(i) if i > 0 => &name[..i],
        _ => name,
    }
}

/// A relocation that could not be applied (malformed, or ambiguous).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CO-RE relocation #{index} ({kind} of `{what}`) at insn {insn}: {message}")]
pub struct CoreError {
    pub index: usize,
    pub insn: u32,
    pub kind: &'static str,
    pub what: String,
    pub message: String,
}

/// What one relocation did, for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub insn: u32,
    pub kind: &'static str,
    pub what: String,
    /// The new value, or `None` when the instruction was poisoned.
    pub value: Option<u64>,
}

/// A parsed access: the field (or array element) reached and its bit
/// offset from the root.
#[derive(Clone, Debug)]
struct Spec {
    /// The first index: on the root pointer (`p[N]`).
    first: u32,
    /// Named member and array accessors after the first, in order.
    acc: Vec<Acc>,
    bit_off: u64,
    /// The field's type, and its bit width if it is a bitfield.
    field: u32,
    bitfield: u32,
}

#[derive(Clone, Debug)]
enum Acc {
    Member(String),
    Index(u32),
}

fn kind_num(k: &Kind) -> u32 {
    match k {
        Kind::Int { .. } => 1,
        Kind::Ptr { .. } => 2,
        Kind::Array { .. } => 3,
        Kind::Struct { .. } => 4,
        Kind::Union { .. } => 5,
        Kind::Enum { .. } => 6,
        Kind::Fwd => 7,
        Kind::Typedef { .. } => 8,
        Kind::Volatile { .. } => 9,
        Kind::Const { .. } => 10,
        Kind::Restrict { .. } => 11,
        Kind::Func { .. } => 12,
        Kind::FuncProto { .. } => 13,
        Kind::Var { .. } => 14,
        Kind::Datasec { .. } => 15,
        Kind::Float { .. } => 16,
        Kind::DeclTag { .. } => 17,
        Kind::TypeTag { .. } => 18,
        Kind::Enum64 { .. } => 19,
    }
}

fn is_composite(b: &dyn BtfTypes, id: u32) -> bool {
    matches!(
        b.get_type(b.resolve(id)).map(|t| t.kind),
        Some(Kind::Struct { .. } | Kind::Union { .. })
    )
}

fn parse_spec(b: &dyn BtfTypes, root: u32, raw: &[u32]) -> Result<Spec, String> {
    let Some((&first, rest)) = raw.split_first() else {
        return Err("empty access string".into());
    };
    let root_size = b
        .size_of(root)
        .ok_or_else(|| format!("type {root} has no size"))?;
    let mut spec = Spec {
        first,
        acc: Vec::new(),
        bit_off: u64::from(first) * root_size * 8,
        field: root,
        bitfield: 0,
    };
    let mut cur = root;
    for &idx in rest {
        let t = b
            .get_type(b.resolve(cur))
            .ok_or_else(|| format!("type {cur} does not exist"))?;
        match t.kind {
            Kind::Struct { members, .. } | Kind::Union { members, .. } => {
                let m = members.get(idx as usize).ok_or_else(|| {
                    format!("member index {idx} is out of range for `{}`", t.name)
                })?;
                spec.bit_off += u64::from(m.offset);
                if !m.name.is_empty() {
                    spec.acc.push(Acc::Member(m.name.clone()));
                }
                cur = m.type_id;
                spec.bitfield = m.bitfield_size;
            }
            Kind::Array { elem, .. } => {
                let es = b.size_of(elem).ok_or("array element without size")?;
                spec.acc.push(Acc::Index(idx));
                spec.bit_off += u64::from(idx) * es * 8;
                cur = elem;
                spec.bitfield = 0;
            }
            _ => {
                return Err(format!(
                    "index {idx} into a type that is not a struct or array"
                ));
            }
        }
    }
    spec.field = cur;
    Ok(spec)
}

/// Whether local field type `l` and target field type `t` may be the
/// same field (libbpf's `bpf_core_fields_are_compat`).
fn fields_compat(lb: &dyn BtfTypes, l: u32, tb: &dyn BtfTypes, t: u32, depth: u32) -> bool {
    if depth > 8 {
        return false;
    }
    let (Some(lt), Some(tt)) = (lb.get_type(lb.resolve(l)), tb.get_type(tb.resolve(t))) else {
        return false;
    };
    let comp = |k: &Kind| matches!(k, Kind::Struct { .. } | Kind::Union { .. });
    if comp(&lt.kind) && comp(&tt.kind) {
        return true;
    }
    let en = |k: &Kind| matches!(k, Kind::Enum { .. } | Kind::Enum64 { .. });
    match (&lt.kind, &tt.kind) {
        (a, b) if en(a) && en(b) => true,
        (Kind::Int { .. }, Kind::Int { .. }) => true,
        (Kind::Float { .. }, Kind::Float { .. }) => true,
        (Kind::Ptr { .. }, Kind::Ptr { .. }) => true,
        (Kind::Fwd, Kind::Fwd) => essential(&lt.name) == essential(&tt.name),
        (Kind::Array { elem: le, .. }, Kind::Array { elem: te, .. }) => {
            fields_compat(lb, *le, tb, *te, depth + 1)
        }
        _ => false,
    }
}

/// The member `name` of composite `id`, looked for through anonymous
/// members: its bit offset, type and bitfield width.
fn find_member(b: &dyn BtfTypes, id: u32, name: &str, depth: u32) -> Option<(u64, u32, u32)> {
    if depth > 16 {
        return None;
    }
    let (Kind::Struct { members, .. } | Kind::Union { members, .. }) =
        b.get_type(b.resolve(id))?.kind
    else {
        return None;
    };
    for m in &members {
        if m.name == name {
            return Some((u64::from(m.offset), m.type_id, m.bitfield_size));
        }
        if m.name.is_empty()
            && is_composite(b, m.type_id)
            && let Some((o, t, bf)) = find_member(b, m.type_id, name, depth + 1)
        {
            return Some((u64::from(m.offset) + o, t, bf));
        }
    }
    None
}

/// The local access matched against target root `cand`.
fn match_spec(local: &Spec, lb: &dyn BtfTypes, tb: &dyn BtfTypes, cand: u32) -> Option<Spec> {
    let size = tb.size_of(cand)?;
    let mut spec = Spec {
        first: local.first,
        acc: local.acc.clone(),
        bit_off: u64::from(local.first) * size * 8,
        field: cand,
        bitfield: 0,
    };
    let mut cur = cand;
    for a in &local.acc {
        match a {
            Acc::Member(name) => {
                let (o, t, bf) = find_member(tb, cur, name, 0)?;
                spec.bit_off += o;
                cur = t;
                spec.bitfield = bf;
            }
            Acc::Index(i) => {
                let Kind::Array { elem, nelems, .. } = tb.get_type(tb.resolve(cur))?.kind else {
                    return None;
                };
                if *i >= nelems && nelems != 0 {
                    return None;
                }
                spec.bit_off += u64::from(*i) * tb.size_of(elem)? * 8;
                cur = elem;
                spec.bitfield = 0;
            }
        }
    }
    if !local.acc.is_empty() && !fields_compat(lb, local.field, tb, cur, 0) {
        return None;
    }
    spec.field = cur;
    Some(spec)
}

/// The value a field relocation of `kind` gives for `spec`, with the
/// field's byte size (for load-size adjustment).
fn field_value(b: &dyn BtfTypes, spec: &Spec, kind: u32) -> Result<(u64, u64), String> {
    if kind == relo::FIELD_EXISTS {
        return Ok((1, 0));
    }
    let ft = b.resolve(spec.field);
    let t = b.get_type(ft).ok_or("field type does not exist")?;
    let mut byte_sz = b.size_of(ft).ok_or("field without size")?;
    let bit_off = spec.bit_off;
    let (byte_off, bit_sz) = if spec.bitfield != 0 {
        let bit_sz = u64::from(spec.bitfield);
        if byte_sz == 0 {
            return Err("bitfield of a type without size".into());
        }
        let mut byte_off = bit_off / 8 / byte_sz * byte_sz;
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8 {
            if byte_sz >= 8 {
                return Err("bitfield spans more than 8 bytes".into());
            }
            byte_sz *= 2;
            byte_off = bit_off / 8 / byte_sz * byte_sz;
        }
        (byte_off, bit_sz)
    } else {
        if !bit_off.is_multiple_of(8) {
            return Err("field is not byte-aligned".into());
        }
        (bit_off / 8, byte_sz * 8)
    };
    let v = match kind {
        relo::FIELD_BYTE_OFFSET => byte_off,
        relo::FIELD_BYTE_SIZE => byte_sz,
        relo::FIELD_SIGNED => u64::from(match t.kind {
            Kind::Int { encoding, .. } => encoding & 1 != 0,
            Kind::Enum { .. } | Kind::Enum64 { .. } => t.kind_flag,
            _ => false,
        }),
        relo::FIELD_LSHIFT_U64 => 64u64.wrapping_sub(bit_off + bit_sz - byte_off * 8),
        relo::FIELD_RSHIFT_U64 => 64 - bit_sz.min(64),
        _ => return Err(format!("kind {kind} is not a field relocation")),
    };
    Ok((v, byte_sz))
}

fn enum_values(b: &dyn BtfTypes, id: u32) -> Option<Vec<(String, i64)>> {
    match b.get_type(b.resolve(id))?.kind {
        Kind::Enum { values, .. } | Kind::Enum64 { values, .. } => Some(values),
        _ => None,
    }
}

/// Whether two types are compatible for type-based relocations (libbpf's
/// `bpf_core_types_are_compat`, names already matched at the root).
fn types_compat(lb: &dyn BtfTypes, l: u32, tb: &dyn BtfTypes, t: u32, depth: u32) -> bool {
    if depth > 2 {
        return true;
    }
    let skip = |b: &dyn BtfTypes, mut id: u32| {
        for _ in 0..32 {
            match b.get_type(id).map(|x| x.kind) {
                Some(
                    Kind::Const { target } | Kind::Volatile { target } | Kind::Restrict { target },
                ) => id = target,
                _ => break,
            }
        }
        id
    };
    let (l, t) = (skip(lb, l), skip(tb, t));
    let (Some(lt), Some(tt)) = (lb.get_type(l), tb.get_type(t)) else {
        return false;
    };
    let en = |k: &Kind| matches!(k, Kind::Enum { .. } | Kind::Enum64 { .. });
    match (&lt.kind, &tt.kind) {
        (a, b) if en(a) && en(b) => true,
        (Kind::Typedef { target: a }, Kind::Typedef { target: b })
        | (Kind::Ptr { target: a }, Kind::Ptr { target: b }) => {
            types_compat(lb, *a, tb, *b, depth + 1)
        }
        (Kind::Array { elem: a, .. }, Kind::Array { elem: b, .. }) => {
            types_compat(lb, *a, tb, *b, depth + 1)
        }
        (Kind::FuncProto { ret: a, params: pa }, Kind::FuncProto { ret: b, params: pb }) => {
            pa.len() == pb.len()
                && types_compat(lb, *a, tb, *b, depth + 1)
                && pa
                    .iter()
                    .zip(pb)
                    .all(|(x, y)| types_compat(lb, x.1, tb, y.1, depth + 1))
        }
        (a, b) => kind_num(a) == kind_num(b),
    }
}

/// Whether target type `t` matches local `l` member by member (a
/// simplified `bpf_core_types_match`: same kind, every local member or
/// enumerator present by name).
fn types_match(lb: &dyn BtfTypes, l: u32, tb: &dyn BtfTypes, t: u32) -> bool {
    let (Some(lt), Some(tt)) = (lb.get_type(lb.resolve(l)), tb.get_type(tb.resolve(t))) else {
        return false;
    };
    match (&lt.kind, &tt.kind) {
        (
            Kind::Struct { members: lm, .. } | Kind::Union { members: lm, .. },
            Kind::Struct { .. } | Kind::Union { .. },
        ) if kind_num(&lt.kind) == kind_num(&tt.kind) => lm
            .iter()
            .all(|m| m.name.is_empty() || find_member(tb, t, &m.name, 0).is_some()),
        (Kind::Enum { values: lv, .. } | Kind::Enum64 { values: lv, .. }, _) => enum_values(tb, t)
            .is_some_and(|tv| {
                lv.iter()
                    .all(|(n, _)| tv.iter().any(|(m, _)| essential(m) == essential(n)))
            }),
        _ => types_compat(lb, l, tb, t, 0),
    }
}

/// Applies `relos` to `insns` (one program's instructions, relocation
/// records indexed by instruction), with `local` the object's BTF and
/// `target` the kernel's.
pub fn relocate(
    insns: &mut [RawInsn],
    relos: &[CoreRelo],
    local: &crate::Btf,
    target: &KernelBtf,
) -> Result<Vec<Applied>, CoreError> {
    let tb: &dyn BtfTypes = &target.index;
    let lb: &dyn BtfTypes = local;
    let mut out = Vec::new();
    for (index, r) in relos.iter().enumerate() {
        let kind = relo::name(r.kind);
        let lt = local.get(r.type_id);
        let what = lt
            .map(|_| {
                let n = lb.type_name(r.type_id);
                if r.access.is_empty() || r.access == "0" {
                    n
                } else {
                    format!("{n} {}", r.access)
                }
            })
            .unwrap_or_else(|| format!("type {}", r.type_id));
        let fail = |message: String| CoreError {
            index,
            insn: r.insn,
            kind,
            what: what.clone(),
            message,
        };
        let Some(lt) = lt else {
            return Err(fail(format!("local type {} does not exist", r.type_id)));
        };
        if r.kind > relo::TYPE_MATCHES {
            return Err(fail(format!("unknown relocation kind {}", r.kind)));
        }
        let raw: Vec<u32> = if r.access.is_empty() {
            vec![0]
        } else {
            r.access
                .split(':')
                .map(|x| x.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| fail(format!("bad access string `{}`", r.access)))?
        };
        let name = essential(&lt.name).to_string();
        let lkind = kind_num(&lt.kind);
        let cands: Vec<u32> = if name.is_empty() {
            Vec::new()
        } else {
            target
                .candidates(&name)
                .iter()
                .copied()
                .filter(|&c| {
                    target.index.kind_of(c) == Some(lkind)
                        || (matches!(lkind, 6 | 19)
                            && matches!(target.index.kind_of(c), Some(6 | 19)))
                })
                .collect()
        };
        // (local value, target value or None when the target lacks it,
        // local byte size, target byte size)
        // Bitfield values are not checked against the instruction: the
        // compiler may compute a wider load than the smallest one (libbpf
        // does not check them either).
        let mut validate = true;
        let (lv, tv, lsz, tsz): (u64, Option<u64>, u64, u64) = match r.kind {
            relo::FIELD_BYTE_OFFSET..=relo::FIELD_RSHIFT_U64 => {
                if name.is_empty() {
                    return Err(fail(
                        "the root type of a field relocation has no name".into(),
                    ));
                }
                let spec = parse_spec(lb, r.type_id, &raw).map_err(fail)?;
                validate = spec.bitfield == 0;
                let (lv, lsz) = field_value(lb, &spec, r.kind).map_err(fail)?;
                let mut found: Option<(u64, u64)> = None;
                for &c in &cands {
                    if let Some(ts) = match_spec(&spec, lb, tb, c) {
                        let v = field_value(tb, &ts, r.kind).map_err(fail)?;
                        match found {
                            Some(f) if f.0 != v.0 => {
                                return Err(fail(format!(
                                    "ambiguous: kernel types give {} and {}",
                                    f.0, v.0
                                )));
                            }
                            _ => found = Some(v),
                        }
                    }
                }
                match (r.kind, found) {
                    (relo::FIELD_EXISTS, f) => (1, Some(u64::from(f.is_some())), 0, 0),
                    (_, Some((v, sz))) => (lv, Some(v), lsz, sz),
                    (_, None) => (lv, None, lsz, 0),
                }
            }
            relo::TYPE_ID_LOCAL => (u64::from(r.type_id), Some(u64::from(r.type_id)), 0, 0),
            relo::TYPE_ID_TARGET | relo::TYPE_EXISTS | relo::TYPE_SIZE | relo::TYPE_MATCHES => {
                let ok: Vec<u32> = cands
                    .iter()
                    .copied()
                    .filter(|&c| {
                        if r.kind == relo::TYPE_MATCHES {
                            types_match(lb, r.type_id, tb, c)
                        } else {
                            types_compat(lb, r.type_id, tb, c, 0)
                        }
                    })
                    .collect();
                let l = match r.kind {
                    relo::TYPE_SIZE => lb.size_of(r.type_id).unwrap_or(0),
                    relo::TYPE_ID_TARGET => u64::from(r.type_id),
                    _ => 1,
                };
                let t = match r.kind {
                    relo::TYPE_EXISTS | relo::TYPE_MATCHES => Some(u64::from(!ok.is_empty())),
                    relo::TYPE_SIZE => ok.first().and_then(|&c| tb.size_of(c)),
                    _ => ok.first().map(|&c| u64::from(c)),
                };
                (l, t, 0, 0)
            }
            _ => {
                // Enumerator relocations: the access is the enumerator's index.
                let values =
                    enum_values(lb, r.type_id).ok_or_else(|| fail("not an enum".into()))?;
                let (ename, evalue) = values
                    .get(raw[0] as usize)
                    .cloned()
                    .ok_or_else(|| fail(format!("enumerator {} is out of range", raw[0])))?;
                let found = cands.iter().find_map(|&c| {
                    enum_values(tb, c)?
                        .into_iter()
                        .find(|(n, _)| essential(n) == essential(&ename))
                        .map(|(_, v)| v)
                });
                if r.kind == relo::ENUMVAL_EXISTS {
                    (1, Some(u64::from(found.is_some())), 0, 0)
                } else {
                    (evalue as u64, found.map(|v| v as u64), 0, 0)
                }
            }
        };
        let at = r.insn as usize;
        let Some(insn) = insns.get(at).copied() else {
            return Err(fail(format!("instruction {at} is outside the program")));
        };
        let ldimm = insn.code == 0x18;
        let Some(new) = tv else {
            // The kernel lacks it: poison the instruction.
            insns[at] = RawInsn::new(0x85, 0, 0, 0, POISON_HELPER);
            if ldimm && at + 1 < insns.len() {
                insns[at + 1] = RawInsn::new(0x85, 0, 0, 0, POISON_HELPER);
            }
            out.push(Applied {
                insn: r.insn,
                kind,
                what,
                value: None,
            });
            continue;
        };
        let class = insn.code & 7;
        let mismatch = |have: i64| {
            fail(format!(
                "the instruction holds {have}, the local type gives {lv}: the object's BTF does not describe its code"
            ))
        };
        match class {
            // ALU, ALU64 with an immediate operand.
            4 | 7 if insn.code & 0x08 == 0 => {
                if validate && insn.imm as i64 as u64 != lv && insn.imm as u32 as u64 != lv {
                    return Err(mismatch(insn.imm as i64));
                }
                let v = i32::try_from(new as i64)
                    .or_else(|_| u32::try_from(new).map(|u| u as i32))
                    .map_err(|_| fail(format!("value {new} does not fit the instruction")))?;
                insns[at].imm = v;
            }
            // LDX, ST, STX: the offset.
            1..=3 if insn.code & 0xe0 == 0x60 || insn.code & 0xe0 == 0x80 => {
                if r.kind != relo::FIELD_BYTE_OFFSET {
                    return Err(fail("a memory instruction takes only a byte offset".into()));
                }
                if validate && insn.off as i64 as u64 != lv {
                    return Err(mismatch(insn.off as i64));
                }
                insns[at].off = i16::try_from(new)
                    .map_err(|_| fail(format!("offset {new} does not fit the instruction")))?;
                // A load of a field whose size changed loads the new size.
                if class == 1 && tsz != lsz && tsz != 0 {
                    let bytes = match insn.code & 0x18 {
                        0x00 => 4,
                        0x08 => 2,
                        0x10 => 1,
                        _ => 8,
                    };
                    if bytes == lsz {
                        let sz = match tsz {
                            1 => 0x10,
                            2 => 0x08,
                            4 => 0x00,
                            8 => 0x18,
                            _ => {
                                return Err(fail(format!(
                                    "the kernel's field is {tsz} bytes, which no load has"
                                )));
                            }
                        };
                        insns[at].code = (insn.code & !0x18) | sz;
                    }
                }
            }
            // LD_IMM64: both halves.
            0 if ldimm => {
                let next = insns
                    .get(at + 1)
                    .copied()
                    .ok_or_else(|| fail("a 64-bit load without its second half".into()))?;
                let have = (insn.imm as u32 as u64) | ((next.imm as u32 as u64) << 32);
                if validate && have != lv {
                    return Err(mismatch(have as i64));
                }
                insns[at].imm = new as u32 as i32;
                insns[at + 1].imm = (new >> 32) as u32 as i32;
            }
            _ => {
                return Err(fail(format!(
                    "instruction {at} (opcode {:#04x}) cannot take a relocated value",
                    insn.code
                )));
            }
        }
        out.push(Applied {
            insn: r.insn,
            kind,
            what,
            value: Some(new),
        });
    }
    Ok(out)
}
