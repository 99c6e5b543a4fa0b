//! BTF read on demand. Parsing all of a kernel's BTF up front (vmlinux:
//! 5 MB, ~127k types) takes ~70 ms — most of a tracing tool's start-up
//! budget — while a script asks for a handful of types. `BtfIndex` checks
//! the header and records where each type starts (one pass over the info
//! words, about a millisecond), then decodes a type only when asked, and
//! finds names by comparing bytes in the string section.

use crate::btf::{BtfError, BtfType, Kind, Member, Reader, decode_type, record_offsets};

/// BTF indexed by type id, decoded lazily.
#[derive(Clone, Debug)]
pub struct BtfIndex {
    raw: Vec<u8>,
    /// Where each type's record starts (index = id; 0 for `void`).
    offsets: Vec<usize>,
    /// The string section's bounds in `raw`.
    strings: (usize, usize),
}

fn rd(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        .unwrap_or(0)
}

impl BtfIndex {
    /// Indexes raw BTF (a `.BTF` section or /sys/kernel/btf/vmlinux).
    pub fn parse(raw: Vec<u8>) -> Result<BtfIndex, BtfError> {
        let err = |m: String| BtfError { message: m };
        if raw.len() < 24 {
            return Err(err(format!(
                "{} bytes is too short for a BTF header",
                raw.len()
            )));
        }
        if rd(&raw, 0) & 0xffff != 0xeb9f {
            return Err(err(format!("bad magic {:#x}", rd(&raw, 0) & 0xffff)));
        }
        let hdr = rd(&raw, 4) as usize;
        let bounds = |off: u32, len: u32, what: &str| {
            hdr.checked_add(off as usize)
                .and_then(|s| s.checked_add(len as usize).map(|e| (s, e)))
                .filter(|&(_, e)| e <= raw.len())
                .ok_or_else(|| err(format!("{what} section ({off}+{len}) is outside the data")))
        };
        let (ts, te) = bounds(rd(&raw, 8), rd(&raw, 12), "type")?;
        let strings = bounds(rd(&raw, 16), rd(&raw, 20), "string")?;
        let (offsets, end) = record_offsets(&raw);
        // Every record must lie inside the type section.
        if end != te || offsets.iter().skip(1).any(|&o| o < ts || o + 12 > te) {
            return Err(err("the type section's records do not fit it".into()));
        }
        Ok(BtfIndex {
            raw,
            offsets,
            strings,
        })
    }

    /// Type ids in use, `void` included (valid ids are below this).
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.len() <= 1
    }

    /// The raw section.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn strings(&self) -> &[u8] {
        &self.raw[self.strings.0..self.strings.1]
    }

    /// Type `id` decoded (`void`, id 0, is an `Int` of size 0, as in
    /// [`crate::Btf`]).
    pub fn get(&self, id: u32) -> Option<BtfType> {
        if id == 0 {
            return Some(BtfType::void());
        }
        let at = *self.offsets.get(id as usize)?;
        let end = self
            .offsets
            .get(id as usize + 1)
            .copied()
            .unwrap_or(self.raw.len());
        let mut r = Reader {
            b: self.raw.get(..end)?,
            pos: at,
        };
        decode_type(&mut r, self.strings(), id as usize).ok()
    }

    /// The BTF kind number of type `id` (1 = int … 19 = enum64), without
    /// decoding it.
    pub fn kind_of(&self, id: u32) -> Option<u32> {
        let at = *self.offsets.get(id as usize).filter(|_| id > 0)?;
        Some((rd(&self.raw, at + 4) >> 24) & 0x1f)
    }

    /// The name of type `id`, read off its record without decoding it.
    pub fn name_of(&self, id: u32) -> &str {
        let Some(&at) = self.offsets.get(id as usize).filter(|_| id > 0) else {
            return "";
        };
        let off = rd(&self.raw, at) as usize;
        let s = self.strings();
        let Some(rest) = s.get(off..) else {
            return "";
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// Whether type `id` is named `name`.
    fn name_is(&self, id: usize, name: &[u8]) -> bool {
        let off = rd(&self.raw, self.offsets[id]) as usize;
        let s = self.strings();
        s.get(off..off + name.len()) == Some(name) && s.get(off + name.len()) == Some(&0)
    }

    /// The value of the enumerator `name` (a member of any enum, named
    /// or not, e.g. `TCP_ESTABLISHED`), read off the raw records.
    pub fn enumerator(&self, name: &str) -> Option<i64> {
        if name.is_empty() {
            return None;
        }
        let want = name.as_bytes();
        let s = self.strings();
        let is = |off: u32| {
            let off = off as usize;
            s.get(off..off + want.len()) == Some(want) && s.get(off + want.len()) == Some(&0)
        };
        for id in 1..self.offsets.len() {
            let at = self.offsets[id];
            let info = rd(&self.raw, at + 4);
            let (kind, vlen, signed) = (
                (info >> 24) & 0x1f,
                (info & 0xffff) as usize,
                info >> 31 == 1,
            );
            match kind {
                // BTF_KIND_ENUM: {name_off, s32 val} each.
                6 => {
                    for i in 0..vlen {
                        let m = at + 12 + i * 8;
                        if is(rd(&self.raw, m)) {
                            let v = rd(&self.raw, m + 4);
                            return Some(if signed {
                                i64::from(v as i32)
                            } else {
                                i64::from(v)
                            });
                        }
                    }
                }
                // BTF_KIND_ENUM64: {name_off, lo32, hi32} each.
                19 => {
                    for i in 0..vlen {
                        let m = at + 12 + i * 12;
                        if is(rd(&self.raw, m)) {
                            let v = u64::from(rd(&self.raw, m + 4))
                                | (u64::from(rd(&self.raw, m + 8)) << 32);
                            return Some(v as i64);
                        }
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The first type named `name` whose kind number satisfies `kind`.
    pub fn find(&self, name: &str, kind: impl Fn(u32) -> bool) -> Option<u32> {
        if name.is_empty() {
            return None;
        }
        let name = name.as_bytes();
        (1..self.offsets.len())
            .find(|&id| {
                self.name_is(id, name) && kind((rd(&self.raw, self.offsets[id] + 4) >> 24) & 0x1f)
            })
            .map(|id| id as u32)
    }

    /// The type a C declaration names, by [`crate::Btf::named`]'s rule:
    /// `struct NAME`, `union NAME`, `enum NAME`, or a bare name (a typedef
    /// first, then any named type that is not a function or variable).
    pub fn named(&self, decl: &str) -> Option<u32> {
        let decl = decl.trim();
        if let Some(n) = decl.strip_prefix("struct ") {
            return self.find(n.trim(), |k| k == 4);
        }
        if let Some(n) = decl.strip_prefix("union ") {
            return self.find(n.trim(), |k| k == 5);
        }
        if let Some(n) = decl.strip_prefix("enum ") {
            return self.find(n.trim(), |k| k == 6 || k == 19);
        }
        self.find(decl, |k| k == 8)
            .or_else(|| self.find(decl, |k| !matches!(k, 12..=15)))
    }
}

/// Type lookups shared by every holder of BTF types: [`BtfIndex`] (read on
/// demand), [`crate::Btf`] (parsed whole), and users' own type tables
/// layered over either.
pub trait BtfTypes {
    /// Type `id`, decoded (id 0, `void`, as an `Int` of size 0).
    fn get_type(&self, id: u32) -> Option<BtfType>;

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..64 {
            match self.get_type(id).map(|t| t.kind) {
                Some(
                    Kind::Typedef { target }
                    | Kind::Volatile { target }
                    | Kind::Const { target }
                    | Kind::Restrict { target }
                    | Kind::TypeTag { target },
                ) => id = target,
                _ => return id,
            }
        }
        id
    }

    /// Size in bytes of a type, if it has one.
    fn size_of(&self, id: u32) -> Option<u64> {
        let mut id = id;
        let mut mult = 1u64;
        for _ in 0..64 {
            id = self.resolve(id);
            match self.get_type(id)?.kind {
                Kind::Int { size, .. }
                | Kind::Struct { size, .. }
                | Kind::Union { size, .. }
                | Kind::Enum { size, .. }
                | Kind::Enum64 { size, .. }
                | Kind::Float { size }
                | Kind::Datasec { size, .. } => return mult.checked_mul(size as u64),
                Kind::Ptr { .. } => return mult.checked_mul(8),
                Kind::Array { elem, nelems, .. } => {
                    mult = mult.checked_mul(nelems as u64)?;
                    id = elem;
                }
                Kind::Var { target, .. } => id = target,
                _ => return None,
            }
        }
        None
    }

    /// The member `name` of struct or union `id`, looking into anonymous
    /// struct and union members as C does: the member with its bit offset
    /// from the start of `id`.
    fn member(&self, id: u32, name: &str) -> Option<Member> {
        self.member_depth(id, name, 0)
    }

    fn member_depth(&self, id: u32, name: &str, depth: u32) -> Option<Member> {
        if depth > 16 {
            return None;
        }
        let (Kind::Struct { members, .. } | Kind::Union { members, .. }) =
            self.get_type(self.resolve(id))?.kind
        else {
            return None;
        };
        if let Some(m) = members.iter().find(|m| m.name == name) {
            return Some(m.clone());
        }
        members.iter().filter(|m| m.name.is_empty()).find_map(|m| {
            let mut inner = self.member_depth(m.type_id, name, depth + 1)?;
            inner.offset += m.offset;
            Some(inner)
        })
    }

    /// The names of a struct's or union's members, anonymous members'
    /// own members included (for suggestions).
    fn member_names(&self, id: u32) -> Vec<String> {
        let mut out = Vec::new();
        self.member_names_into(id, &mut out, 0);
        out
    }

    fn member_names_into(&self, id: u32, out: &mut Vec<String>, depth: u32) {
        if depth > 16 {
            return;
        }
        if let Some(Kind::Struct { members, .. } | Kind::Union { members, .. }) =
            self.get_type(self.resolve(id)).map(|t| t.kind)
        {
            for m in members {
                if m.name.is_empty() {
                    self.member_names_into(m.type_id, out, depth + 1);
                } else {
                    out.push(m.name);
                }
            }
        }
    }

    /// A type as C names it: `struct task_struct *`, `unsigned int`,
    /// `char[16]`.
    fn type_name(&self, id: u32) -> String {
        self.type_name_depth(id, 0)
    }

    fn type_name_depth(&self, id: u32, depth: u32) -> String {
        if depth > 16 {
            return "…".into();
        }
        let Some(t) = self.get_type(id) else {
            return format!("type {id}");
        };
        match t.kind {
            _ if id == 0 => "void".into(),
            Kind::Ptr { target } => format!("{} *", self.type_name_depth(target, depth + 1)),
            Kind::Const { target }
            | Kind::Volatile { target }
            | Kind::Restrict { target }
            | Kind::TypeTag { target } => self.type_name_depth(target, depth + 1),
            Kind::Array { elem, nelems, .. } => {
                format!("{}[{nelems}]", self.type_name_depth(elem, depth + 1))
            }
            Kind::Struct { .. } => format!("struct {}", t.name),
            Kind::Union { .. } => format!("union {}", t.name),
            Kind::Enum { .. } | Kind::Enum64 { .. } => format!("enum {}", t.name),
            Kind::FuncProto { .. } => "function".into(),
            _ => t.name,
        }
    }
}

impl BtfTypes for BtfIndex {
    fn get_type(&self, id: u32) -> Option<BtfType> {
        self.get(id)
    }
}

impl BtfTypes for crate::Btf {
    fn get_type(&self, id: u32) -> Option<BtfType> {
        self.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little BTF: int, struct s { int a; union { int b; int c; }; },
    /// typedef t = struct s, ptr to t.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0c\0t\0".to_vec();
        let name = |n: &str| {
            let at = strings
                .windows(n.len() + 2)
                .position(|w| w[0] == 0 && &w[1..=n.len()] == n.as_bytes() && w[n.len() + 1] == 0)
                .unwrap();
            at as u32 + 1
        };
        let mut t: Vec<u32> = Vec::new();
        // 1: int
        t.extend([name("int"), 1 << 24, 4, (1 << 24) | 32]);
        // 2: anonymous union { int b; int c; }
        t.extend([0, (5 << 24) | 2, 4, name("b"), 1, 0, name("c"), 1, 0]);
        // 3: struct s { int a; <anon> }
        t.extend([name("s"), (4 << 24) | 2, 8, name("a"), 1, 0, 0, 2, 32]);
        // 4: typedef t
        t.extend([name("t"), 8 << 24, 3]);
        // 5: t *
        t.extend([0, 2 << 24, 4]);
        let types: Vec<u8> = t.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut raw = Vec::new();
        for w in [
            0x0001_eb9fu32,
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            raw.extend(w.to_le_bytes());
        }
        raw.extend(&types);
        raw.extend(&strings);
        raw
    }

    #[test]
    fn decodes_on_demand_as_the_full_parser_does() {
        let raw = sample();
        let full = crate::Btf::parse(&raw).unwrap();
        let idx = BtfIndex::parse(raw).unwrap();
        assert_eq!(idx.len(), full.types.len());
        for id in 0..idx.len() as u32 {
            assert_eq!(idx.get(id).as_ref(), full.get(id));
        }
        assert_eq!(idx.named("struct s"), Some(3));
        assert_eq!(idx.named("t"), Some(4));
        assert_eq!(idx.named("int"), Some(1));
        assert_eq!(idx.named("struct t"), None);
        assert_eq!(idx.resolve(4), 3);
        assert_eq!(idx.size_of(4), Some(8));
        assert_eq!(idx.type_name(5), "t *");
    }

    #[test]
    fn members_of_anonymous_unions_are_found_with_their_offsets() {
        let idx = BtfIndex::parse(sample()).unwrap();
        let c = idx.member(4, "c").unwrap();
        assert_eq!((c.offset, c.type_id), (32, 1));
        assert_eq!(idx.member(3, "a").unwrap().offset, 0);
        assert!(idx.member(3, "d").is_none());
        assert_eq!(idx.member_names(3), ["a", "b", "c"]);
    }

    #[test]
    fn truncated_or_corrupt_input_is_an_error_not_a_panic() {
        let raw = sample();
        for n in 0..raw.len() {
            let _ = BtfIndex::parse(raw[..n].to_vec()).map(|i| {
                for id in 0..i.len() as u32 + 2 {
                    let _ = (i.get(id), i.size_of(id), i.type_name(id), i.member(id, "a"));
                }
            });
        }
        let mut bad = raw.clone();
        bad[12] = 0xff; // type_len
        assert!(BtfIndex::parse(bad).is_err());
    }
}
