//! BTF (BPF Type Format): the `.BTF` section's types and strings.
//!
//! Layout per the kernel documentation (Documentation/bpf/btf.rst): a header
//! (magic 0xeB9F, version 1), then a type section of `struct btf_type`
//! records (12 bytes each, followed by kind-specific data) and a string
//! section. Type ids start at 1; id 0 is `void`. Every offset, count and
//! reference is checked; nothing here panics on malformed input.

/// A BTF kind with its kind-specific data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Int {
        size: u32,
        encoding: u32,
        offset: u32,
        bits: u32,
    },
    Ptr {
        target: u32,
    },
    Array {
        elem: u32,
        index: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        values: Vec<(String, i64)>,
    },
    Fwd,
    Typedef {
        target: u32,
    },
    Volatile {
        target: u32,
    },
    Const {
        target: u32,
    },
    Restrict {
        target: u32,
    },
    Func {
        proto: u32,
        linkage: u32,
    },
    FuncProto {
        ret: u32,
        params: Vec<(String, u32)>,
    },
    Var {
        target: u32,
        linkage: u32,
    },
    Datasec {
        size: u32,
        vars: Vec<VarSecInfo>,
    },
    Float {
        size: u32,
    },
    DeclTag {
        target: u32,
        component: i32,
    },
    TypeTag {
        target: u32,
    },
    Enum64 {
        size: u32,
        values: Vec<(String, i64)>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    /// Bit offset from the start of the struct or union.
    pub offset: u32,
    /// Width in bits of a bitfield member (the high 8 bits of the raw
    /// offset when the type's kind_flag is set), 0 otherwise.
    pub bitfield_size: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarSecInfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfType {
    pub name: String,
    pub kind: Kind,
    /// The `kind_flag` bit of the record's info word: bitfield offsets in
    /// structs and unions, a union forward declaration, a signed enum.
    pub kind_flag: bool,
}

impl BtfType {
    /// Type id 0, `void`: an `Int` of size 0, unnamed.
    pub fn void() -> BtfType {
        BtfType {
            name: String::new(),
            kind: Kind::Int {
                size: 0,
                encoding: 0,
                offset: 0,
                bits: 0,
            },
            kind_flag: false,
        }
    }
}

/// Parsed BTF.
#[derive(Clone, Debug, Default)]
pub struct Btf {
    /// Index 0 is `void`.
    pub types: Vec<BtfType>,
    /// The raw section, kept for loading into the kernel.
    pub raw: Vec<u8>,
    /// The string section.
    pub strings: Vec<u8>,
}

/// A malformed `.BTF` or `.BTF.ext` section: what is wrong, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BtfError {
    pub message: String,
}

impl BtfError {
    fn new(message: impl Into<String>) -> BtfError {
        BtfError {
            message: message.into(),
        }
    }
}

pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

impl Reader<'_> {
    fn u32(&mut self) -> Result<u32, BtfError> {
        let s = self
            .b
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| BtfError::new(format!("truncated at byte {}", self.pos)))?;
        self.pos += 4;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

fn string_at(strings: &[u8], off: u32) -> Result<String, BtfError> {
    let off = off as usize;
    let tail = strings.get(off..).ok_or_else(|| {
        BtfError::new(format!(
            "string offset {off} is past the string section ({} bytes)",
            strings.len()
        ))
    })?;
    let end = tail
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| BtfError::new(format!("string at {off} is not terminated")))?;
    Ok(String::from_utf8_lossy(&tail[..end]).into_owned())
}

/// Decodes the type record at the reader's position (type `id`, for
/// messages).
pub(crate) fn decode_type(r: &mut Reader, strings: &[u8], id: usize) -> Result<BtfType, BtfError> {
    let name_off = r.u32()?;
    let info = r.u32()?;
    let size_or_type = r.u32()?;
    let vlen = info & 0xffff;
    let kind_num = (info >> 24) & 0x1f;
    let kind_flag = info >> 31 == 1;
    let name = string_at(strings, name_off)?;
    let members = |r: &mut Reader| -> Result<Vec<Member>, BtfError> {
        (0..vlen)
            .map(|_| {
                let name = string_at(strings, r.u32()?)?;
                let type_id = r.u32()?;
                let raw = r.u32()?;
                let (offset, bitfield_size) = if kind_flag {
                    (raw & 0x00ff_ffff, raw >> 24)
                } else {
                    (raw, 0)
                };
                Ok(Member {
                    name,
                    type_id,
                    offset,
                    bitfield_size,
                })
            })
            .collect()
    };
    let kind = match kind_num {
        1 => {
            let v = r.u32()?;
            Kind::Int {
                size: size_or_type,
                encoding: (v >> 24) & 0xf,
                offset: (v >> 16) & 0xff,
                bits: v & 0xff,
            }
        }
        2 => Kind::Ptr {
            target: size_or_type,
        },
        3 => Kind::Array {
            elem: r.u32()?,
            index: r.u32()?,
            nelems: r.u32()?,
        },
        4 => Kind::Struct {
            size: size_or_type,
            members: members(r)?,
        },
        5 => Kind::Union {
            size: size_or_type,
            members: members(r)?,
        },
        6 => Kind::Enum {
            size: size_or_type,
            values: (0..vlen)
                .map(|_| Ok((string_at(strings, r.u32()?)?, r.u32()? as i32 as i64)))
                .collect::<Result<_, BtfError>>()?,
        },
        7 => Kind::Fwd,
        8 => Kind::Typedef {
            target: size_or_type,
        },
        9 => Kind::Volatile {
            target: size_or_type,
        },
        10 => Kind::Const {
            target: size_or_type,
        },
        11 => Kind::Restrict {
            target: size_or_type,
        },
        12 => Kind::Func {
            proto: size_or_type,
            linkage: vlen,
        },
        13 => Kind::FuncProto {
            ret: size_or_type,
            params: (0..vlen)
                .map(|_| Ok((string_at(strings, r.u32()?)?, r.u32()?)))
                .collect::<Result<_, BtfError>>()?,
        },
        14 => Kind::Var {
            target: size_or_type,
            linkage: r.u32()?,
        },
        15 => Kind::Datasec {
            size: size_or_type,
            vars: (0..vlen)
                .map(|_| {
                    Ok(VarSecInfo {
                        type_id: r.u32()?,
                        offset: r.u32()?,
                        size: r.u32()?,
                    })
                })
                .collect::<Result<_, BtfError>>()?,
        },
        16 => Kind::Float { size: size_or_type },
        17 => Kind::DeclTag {
            target: size_or_type,
            component: r.u32()? as i32,
        },
        18 => Kind::TypeTag {
            target: size_or_type,
        },
        19 => Kind::Enum64 {
            size: size_or_type,
            values: (0..vlen)
                .map(|_| {
                    let n = string_at(strings, r.u32()?)?;
                    let lo = r.u32()? as u64;
                    let hi = r.u32()? as u64;
                    Ok((n, (hi << 32 | lo) as i64))
                })
                .collect::<Result<_, BtfError>>()?,
        },
        k => return Err(BtfError::new(format!("type {id}: unknown kind {k}"))),
    };
    Ok(BtfType {
        name,
        kind,
        kind_flag,
    })
}

/// Upper bound on types, against absurd counts in corrupt input.
const MAX_TYPES: usize = 1 << 20;

impl Btf {
    /// Parses a `.BTF` section.
    pub fn parse(raw: &[u8]) -> Result<Btf, BtfError> {
        let mut r = Reader { b: raw, pos: 0 };
        let magic_ver = r.u32()?;
        if magic_ver & 0xffff != 0xeb9f {
            return Err(BtfError::new(format!(
                "bad magic {:#x}",
                magic_ver & 0xffff
            )));
        }
        if (magic_ver >> 16) & 0xff != 1 {
            return Err(BtfError::new(format!(
                "unsupported version {}",
                (magic_ver >> 16) & 0xff
            )));
        }
        let hdr_len = r.u32()? as usize;
        let type_off = r.u32()? as usize;
        let type_len = r.u32()? as usize;
        let str_off = r.u32()? as usize;
        let str_len = r.u32()? as usize;
        let section = |off: usize, len: usize, what: &str| -> Result<&[u8], BtfError> {
            hdr_len
                .checked_add(off)
                .and_then(|s| s.checked_add(len).map(|e| (s, e)))
                .and_then(|(s, e)| raw.get(s..e))
                .ok_or_else(|| {
                    BtfError::new(format!("{what} section ({off}+{len}) is outside the data"))
                })
        };
        let types_raw = section(type_off, type_len, "type")?;
        let strings = section(str_off, str_len, "string")?;
        let mut types = vec![BtfType::void()];
        let mut r = Reader {
            b: types_raw,
            pos: 0,
        };
        while r.pos < types_raw.len() {
            if types.len() > MAX_TYPES {
                return Err(BtfError::new("too many types"));
            }
            let id = types.len();
            types.push(decode_type(&mut r, strings, id)?);
        }
        let btf = Btf {
            types,
            raw: raw.to_vec(),
            strings: strings.to_vec(),
        };
        btf.check_references()?;
        Ok(btf)
    }

    fn check_references(&self) -> Result<(), BtfError> {
        let n = self.types.len() as u32;
        let check = |id: usize, t: u32| {
            if t < n {
                Ok(())
            } else {
                Err(BtfError::new(format!(
                    "type {id} refers to type {t}, but there are {n}"
                )))
            }
        };
        for (id, t) in self.types.iter().enumerate() {
            match &t.kind {
                Kind::Ptr { target }
                | Kind::Typedef { target }
                | Kind::Volatile { target }
                | Kind::Const { target }
                | Kind::Restrict { target }
                | Kind::Var { target, .. }
                | Kind::DeclTag { target, .. }
                | Kind::TypeTag { target } => check(id, *target)?,
                Kind::Func { proto, .. } => check(id, *proto)?,
                Kind::Array { elem, index, .. } => {
                    check(id, *elem)?;
                    check(id, *index)?;
                }
                Kind::Struct { members, .. } | Kind::Union { members, .. } => {
                    for m in members {
                        check(id, m.type_id)?;
                    }
                }
                Kind::FuncProto { ret, params } => {
                    check(id, *ret)?;
                    for p in params {
                        check(id, p.1)?;
                    }
                }
                Kind::Datasec { vars, .. } => {
                    for v in vars {
                        check(id, v.type_id)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn get(&self, id: u32) -> Option<&BtfType> {
        self.types.get(id as usize)
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..64 {
            match self.get(id).map(|t| &t.kind) {
                Some(
                    Kind::Typedef { target }
                    | Kind::Volatile { target }
                    | Kind::Const { target }
                    | Kind::Restrict { target }
                    | Kind::TypeTag { target },
                ) => id = *target,
                _ => return id,
            }
        }
        id
    }

    /// Size in bytes of a type, if it has one.
    pub fn size_of(&self, id: u32) -> Option<u64> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: u32, depth: u32) -> Option<u64> {
        if depth > 64 {
            return None;
        }
        let id = self.resolve(id);
        match &self.get(id)?.kind {
            Kind::Int { size, .. }
            | Kind::Struct { size, .. }
            | Kind::Union { size, .. }
            | Kind::Enum { size, .. }
            | Kind::Enum64 { size, .. }
            | Kind::Float { size }
            | Kind::Datasec { size, .. } => Some(*size as u64),
            Kind::Ptr { .. } => Some(8),
            Kind::Array { elem, nelems, .. } => self
                .size_of_depth(*elem, depth + 1)?
                .checked_mul(*nelems as u64),
            Kind::Var { target, .. } => self.size_of_depth(*target, depth + 1),
            _ => None,
        }
    }

    /// Finds a DATASEC by name (e.g. `.maps`).
    /// The id of the type a C declaration names: `struct NAME`, `union
    /// NAME`, `enum NAME`, or a bare `NAME` (a typedef, or any named type).
    pub fn named(&self, decl: &str) -> Option<u32> {
        let decl = decl.trim();
        let (want, name): (fn(&Kind) -> bool, &str) = if let Some(n) = decl.strip_prefix("struct ")
        {
            (|k| matches!(k, Kind::Struct { .. }), n.trim())
        } else if let Some(n) = decl.strip_prefix("union ") {
            (|k| matches!(k, Kind::Union { .. }), n.trim())
        } else if let Some(n) = decl.strip_prefix("enum ") {
            (
                |k| matches!(k, Kind::Enum { .. } | Kind::Enum64 { .. }),
                n.trim(),
            )
        } else {
            (
                |k| {
                    !matches!(
                        k,
                        Kind::Func { .. }
                            | Kind::FuncProto { .. }
                            | Kind::Var { .. }
                            | Kind::Datasec { .. }
                    )
                },
                decl,
            )
        };
        if name.is_empty() {
            return None;
        }
        let found = |pred: &dyn Fn(&Kind) -> bool| {
            self.types
                .iter()
                .position(|t| t.name == name && pred(&t.kind))
                .map(|i| i as u32)
        };
        // A bare name prefers its typedef, as C would.
        if !decl.contains(' ')
            && let Some(id) = found(&|k| matches!(k, Kind::Typedef { .. }))
        {
            return Some(id);
        }
        found(&want)
    }

    /// Byte offset of the (first) `struct NAME` inside type `id`, searching
    /// nested structs and unions and one-element arrays, as the kernel's
    /// `btf_parse_fields` finds `struct bpf_spin_lock` in a map value.
    pub fn find_struct(&self, id: u32, name: &str) -> Option<u32> {
        self.find_struct_depth(id, name, 0)
    }

    fn find_struct_depth(&self, id: u32, name: &str, depth: u32) -> Option<u32> {
        if depth > 16 {
            return None;
        }
        let t = self.get(self.resolve(id))?;
        match &t.kind {
            Kind::Struct { .. } if t.name == name => Some(0),
            Kind::Struct { members, .. } | Kind::Union { members, .. } => {
                members.iter().find_map(|m| {
                    let bits = m.offset;
                    if bits % 8 != 0 {
                        return None;
                    }
                    self.find_struct_depth(m.type_id, name, depth + 1)
                        .map(|o| o + bits / 8)
                })
            }
            Kind::Array {
                elem, nelems: 1, ..
            } => self.find_struct_depth(*elem, name, depth + 1),
            _ => None,
        }
    }

    pub fn datasec(&self, name: &str) -> Option<(u32, &Vec<VarSecInfo>)> {
        self.types
            .iter()
            .enumerate()
            .find_map(|(i, t)| match &t.kind {
                Kind::Datasec { vars, .. } if t.name == name => Some((i as u32, vars)),
                _ => None,
            })
    }

    /// The raw section as the kernel accepts it (libbpf's sanitizing of
    /// an object's BTF): every DATASEC's size and variable offsets filled
    /// in (clang leaves them zero in object files; `section_size` gives a
    /// section's size by name and `var_offset` a variable's offset in its
    /// section); extern variables made allocated globals; extern functions
    /// made global, their unnamed parameters named; and the `.ksyms`
    /// section, whose externs have no storage, turned into 4-byte `int`
    /// variables one after the other (a function member is replaced by a
    /// dummy variable, since a DATASEC may hold variables only).
    pub fn with_fixed_datasecs(
        &self,
        section_size: impl Fn(&str) -> Option<u32>,
        var_offset: impl Fn(&str, &str) -> Option<u32>,
    ) -> Vec<u8> {
        let mut raw = self.raw.clone();
        let rd = |b: &[u8], o: usize| -> u32 {
            b.get(o..o + 4)
                .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                .unwrap_or(0)
        };
        if raw.len() < 24 {
            return raw;
        }
        let hdr_len = rd(&raw, 4) as usize;
        let type_off = rd(&raw, 8) as usize;
        let type_len = rd(&raw, 12) as usize;
        let (at, end) = record_offsets(&raw);
        let kind_of = |raw: &[u8], id: usize| at.get(id).map(|&p| (rd(raw, p + 4) >> 24) & 0x1f);
        // A 4-byte int for the `.ksyms` stand-ins, and a dummy variable for
        // function members; appended when the object has none.
        let ksyms = self.datasec(".ksyms").map(|(id, _)| id as usize);
        let mut appended: Vec<u8> = Vec::new();
        let mut new_strings: Vec<u8> = Vec::new();
        let str_len = rd(&raw, 20) as usize;
        let mut next_id = at.len() as u32;
        let mut dummy_var = 0u32;
        let mut int_id = 0u32;
        if ksyms.is_some() {
            int_id = self
                .types
                .iter()
                .position(|t| {
                    matches!(
                        t.kind,
                        Kind::Int {
                            size: 4,
                            bits: 32,
                            ..
                        }
                    )
                })
                .map(|i| i as u32)
                .unwrap_or(0);
            if int_id == 0 {
                let name = (str_len + new_strings.len()) as u32;
                new_strings.extend_from_slice(b"int\0");
                appended.extend_from_slice(&name.to_le_bytes());
                appended.extend_from_slice(&(1u32 << 24).to_le_bytes());
                appended.extend_from_slice(&4u32.to_le_bytes());
                appended.extend_from_slice(&(0x0100_0020u32).to_le_bytes());
                int_id = next_id;
                next_id += 1;
            }
            let name = (str_len + new_strings.len()) as u32;
            new_strings.extend_from_slice(b"__oxbpf_ksym_dummy\0");
            appended.extend_from_slice(&name.to_le_bytes());
            appended.extend_from_slice(&(14u32 << 24).to_le_bytes());
            appended.extend_from_slice(&int_id.to_le_bytes());
            appended.extend_from_slice(&1u32.to_le_bytes());
            dummy_var = next_id;
        }
        for (id, &pos) in at.iter().enumerate().skip(1) {
            let info = rd(&raw, pos + 4);
            let vlen = (info & 0xffff) as usize;
            match (info >> 24) & 0x1f {
                // FUNC: extern linkage is not for the kernel; global then,
                // with every parameter named (the kernel requires names
                // for global functions).
                12 if vlen == 2 => {
                    raw[pos + 4..pos + 8].copy_from_slice(&((info & !0xffff) | 1).to_le_bytes());
                    let name_off = rd(&raw, pos);
                    let proto = rd(&raw, pos + 8) as usize;
                    if let Some(&pp) = at.get(proto).filter(|_| kind_of(&raw, proto) == Some(13)) {
                        let n = (rd(&raw, pp + 4) & 0xffff) as usize;
                        for k in 0..n {
                            let p = pp + 12 + 8 * k;
                            if p + 8 <= end && rd(&raw, p) == 0 && rd(&raw, p + 4) != 0 {
                                raw[p..p + 4].copy_from_slice(&name_off.to_le_bytes());
                            }
                        }
                    }
                }
                // VAR with extern linkage: an allocated global.
                14 if rd(&raw, pos + 12) == 2 => {
                    raw[pos + 12..pos + 16].copy_from_slice(&1u32.to_le_bytes());
                }
                15 => {
                    let name = self
                        .types
                        .get(id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default();
                    if Some(id) == ksyms {
                        for v in 0..vlen {
                            let p = pos + 12 + 12 * v;
                            if p + 12 > end {
                                break;
                            }
                            let member = rd(&raw, p) as usize;
                            match kind_of(&raw, member) {
                                Some(14) => {
                                    let vp = at[member];
                                    raw[vp + 8..vp + 12].copy_from_slice(&int_id.to_le_bytes());
                                }
                                _ => raw[p..p + 4].copy_from_slice(&dummy_var.to_le_bytes()),
                            }
                            raw[p + 4..p + 8].copy_from_slice(&(4 * v as u32).to_le_bytes());
                            raw[p + 8..p + 12].copy_from_slice(&4u32.to_le_bytes());
                        }
                        raw[pos + 8..pos + 12].copy_from_slice(&(4 * vlen as u32).to_le_bytes());
                        continue;
                    }
                    if let Some(size) = section_size(&name) {
                        raw[pos + 8..pos + 12].copy_from_slice(&size.to_le_bytes());
                    }
                    for v in 0..vlen {
                        let p = pos + 12 + 12 * v;
                        if p + 12 > end {
                            break;
                        }
                        let var_id = rd(&raw, p);
                        let var_name = self
                            .types
                            .get(var_id as usize)
                            .map(|t| t.name.clone())
                            .unwrap_or_default();
                        if let Some(off) = var_offset(&name, &var_name) {
                            raw[p + 4..p + 8].copy_from_slice(&off.to_le_bytes());
                        }
                    }
                }
                _ => {}
            }
        }
        if !appended.is_empty() {
            // Types end where the strings begin (clang's layout); the new
            // records go after the last type and the new strings last.
            let str_off = rd(&raw, 16) as usize;
            let types_end = hdr_len + type_off + type_len;
            raw.splice(types_end..types_end, appended.iter().copied());
            let grow = appended.len() as u32;
            raw[12..16].copy_from_slice(&((type_len as u32) + grow).to_le_bytes());
            if str_off >= type_off + type_len {
                raw[16..20].copy_from_slice(&((str_off as u32) + grow).to_le_bytes());
            }
            let strings_end = hdr_len + rd(&raw, 16) as usize + str_len;
            raw.splice(strings_end..strings_end, new_strings.iter().copied());
            raw[20..24].copy_from_slice(&((str_len + new_strings.len()) as u32).to_le_bytes());
        }
        raw
    }

    /// The same BTF with the functions `named` given static linkage:
    /// libbpf's rule for global functions of hidden visibility
    /// (`__hidden`, as `usdt.bpf.h` declares its helpers), which are then
    /// verified with their caller's context like static ones.
    pub fn with_static_funcs(&self, named: impl Fn(&str) -> bool) -> Result<Btf, BtfError> {
        let mut raw = self.raw.clone();
        let (at, _) = record_offsets(&raw);
        for (id, t) in self.types.iter().enumerate() {
            if let (Kind::Func { linkage: 1.., .. }, Some(&pos)) = (&t.kind, at.get(id))
                && id > 0
                && named(&t.name)
            {
                raw[pos + 4..pos + 6].copy_from_slice(&0u16.to_le_bytes());
            }
        }
        Btf::parse(&raw)
    }

    /// The string at `off` in the string section.
    pub fn string(&self, off: u32) -> Result<String, BtfError> {
        string_at(&self.strings, off)
    }

    /// Number of types excluding `void`.
    pub fn len(&self) -> usize {
        self.types.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where each type's record starts in raw BTF (index = type id; 0 for
/// `void`), and where the type section ends.
pub(crate) fn record_offsets(raw: &[u8]) -> (Vec<usize>, usize) {
    let rd = |o: usize| -> u32 {
        raw.get(o..o + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .unwrap_or(0)
    };
    let mut at = vec![0usize];
    if raw.len() < 24 {
        return (at, 0);
    }
    let mut pos = rd(4) as usize + rd(8) as usize;
    let end = (pos + rd(12) as usize).min(raw.len());
    while pos + 12 <= end {
        at.push(pos);
        let info = rd(pos + 4);
        let vlen = (info & 0xffff) as usize;
        let extra = match (info >> 24) & 0x1f {
            1 | 14 | 17 => 4,
            3 => 12,
            4 | 5 | 15 | 19 => 12 * vlen,
            6 | 13 => 8 * vlen,
            _ => 0,
        };
        pos += 12 + extra;
    }
    (at, end)
}

/// One `bpf_func_info` record: a function starting at `insn` (instruction
/// index within its section) with BTF type `type_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncInfo {
    pub insn: u32,
    pub type_id: u32,
}

/// One `bpf_line_info` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfo {
    /// Instruction index within the section.
    pub insn: u32,
    /// String offsets and packed line/column as in the raw record, for
    /// handing the record to the kernel.
    pub file_off: u32,
    pub text_off: u32,
    pub line_col: u32,
    pub file: String,
    /// The source line's text, as clang recorded it.
    pub text: String,
    pub line: u32,
    pub column: u32,
}

/// One CO-RE relocation record (`bpf_core_relo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreRelo {
    pub insn: u32,
    pub type_id: u32,
    /// String offset of the accessor in the raw record.
    pub access_off: u32,
    /// Accessor string such as `0:1:2`.
    pub access: String,
    /// `enum bpf_core_relo_kind`.
    pub kind: u32,
}

/// Parsed `.BTF.ext`: per section name, its records.
#[derive(Clone, Debug, Default)]
pub struct BtfExt {
    pub func_info: Vec<(String, Vec<FuncInfo>)>,
    pub line_info: Vec<(String, Vec<LineInfo>)>,
    pub core_relos: Vec<(String, Vec<CoreRelo>)>,
}

impl BtfExt {
    /// Parses `.BTF.ext`, resolving strings against `btf`. `section_size`
    /// gives the byte size of a code section by name, so that every record
    /// is checked to point inside its section.
    pub fn parse(
        raw: &[u8],
        btf: &Btf,
        section_size: impl Fn(&str) -> Option<u64>,
    ) -> Result<BtfExt, BtfError> {
        let u16_at = |o: usize| raw.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
        let u32_at = |o: usize| {
            raw.get(o..o + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        };
        let trunc = || BtfError::new(".BTF.ext: truncated header");
        if u16_at(0).ok_or_else(trunc)? != 0xeb9f {
            return Err(BtfError::new(".BTF.ext: bad magic"));
        }
        let hdr_len = u32_at(4).ok_or_else(trunc)? as usize;
        if hdr_len < 24 || hdr_len > raw.len() {
            return Err(BtfError::new(format!(
                ".BTF.ext: header length {hdr_len} is invalid"
            )));
        }
        let part = |off_at: usize| -> Result<Option<&[u8]>, BtfError> {
            if off_at + 8 > hdr_len {
                return Ok(None);
            }
            let off = u32_at(off_at).ok_or_else(trunc)? as usize;
            let len = u32_at(off_at + 4).ok_or_else(trunc)? as usize;
            if len == 0 {
                return Ok(None);
            }
            hdr_len
                .checked_add(off)
                .and_then(|s| s.checked_add(len).map(|e| (s, e)))
                .and_then(|(s, e)| raw.get(s..e))
                .map(Some)
                .ok_or_else(|| {
                    BtfError::new(format!(
                        ".BTF.ext: part at {off}+{len} is outside the section"
                    ))
                })
        };
        let mut ext = BtfExt::default();
        let ntypes = btf.types.len() as u32;
        if let Some(p) = part(8)? {
            ext.func_info = records(p, 8, btf, &section_size, "func_info", |r, _| {
                let type_id = r[1];
                if type_id >= ntypes {
                    return Err(format!("type id {type_id} does not exist"));
                }
                Ok(FuncInfo {
                    insn: r[0] / 8,
                    type_id,
                })
            })?;
        }
        if let Some(p) = part(16)? {
            ext.line_info = records(p, 16, btf, &section_size, "line_info", |r, btf| {
                Ok(LineInfo {
                    insn: r[0] / 8,
                    file_off: r[1],
                    text_off: r[2],
                    line_col: r[3],
                    file: btf.string(r[1]).map_err(|e| e.message)?,
                    text: btf.string(r[2]).map_err(|e| e.message)?,
                    line: r[3] >> 10,
                    column: r[3] & 0x3ff,
                })
            })?;
        }
        if let Some(p) = part(24)? {
            ext.core_relos = records(p, 16, btf, &section_size, "core_relo", |r, btf| {
                if r[1] >= ntypes {
                    return Err(format!("type id {} does not exist", r[1]));
                }
                Ok(CoreRelo {
                    insn: r[0] / 8,
                    type_id: r[1],
                    access_off: r[2],
                    access: btf.string(r[2]).map_err(|e| e.message)?,
                    kind: r[3],
                })
            })?;
        }
        Ok(ext)
    }
}

/// Reads one `.BTF.ext` part: a record size, then per section a name, a
/// count and that many records of which the first `min_size` bytes are
/// decoded as u32 words by `make`.
fn records<T>(
    p: &[u8],
    min_size: usize,
    btf: &Btf,
    section_size: &impl Fn(&str) -> Option<u64>,
    what: &str,
    make: impl Fn(&[u32], &Btf) -> Result<T, String>,
) -> Result<Vec<(String, Vec<T>)>, BtfError> {
    let err = |m: String| BtfError::new(format!(".BTF.ext {what}: {m}"));
    let word = |o: usize| {
        p.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or_else(|| err(format!("truncated at byte {o}")))
    };
    let rec_size = word(0)? as usize;
    if rec_size < min_size || !rec_size.is_multiple_of(4) {
        return Err(err(format!(
            "record size {rec_size} is invalid (at least {min_size})"
        )));
    }
    let mut out = Vec::new();
    let mut pos = 4;
    while pos < p.len() {
        let name = btf.string(word(pos)?).map_err(|e| err(e.message))?;
        let count = word(pos + 4)? as usize;
        pos += 8;
        let bytes = count
            .checked_mul(rec_size)
            .filter(|b| pos + b <= p.len())
            .ok_or_else(|| err(format!("section `{name}`: {count} records do not fit")))?;
        let size = section_size(&name).ok_or_else(|| {
            err(format!(
                "section `{name}` is not a code section of this object"
            ))
        })?;
        let mut recs = Vec::with_capacity(count);
        for i in 0..count {
            let base = pos + i * rec_size;
            let words: Vec<u32> = (0..min_size / 4)
                .map(|k| word(base + 4 * k))
                .collect::<Result<_, _>>()?;
            if !words[0].is_multiple_of(8) || words[0] as u64 >= size {
                return Err(err(format!(
                    "section `{name}`: record {i} points at byte {} (section size {size})",
                    words[0]
                )));
            }
            recs.push(
                make(&words, btf).map_err(|m| err(format!("section `{name}`, record {i}: {m}")))?,
            );
        }
        pos += bytes;
        out.push((name, recs));
    }
    Ok(out)
}
