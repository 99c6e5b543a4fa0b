//! Writing BTF: types and strings encoded as a `.BTF` section, the inverse
//! of [`Btf::parse`]. Compilers that generate programs (the tracing
//! language) describe their maps and functions with it, so the kernel's
//! verifier log, `bpftool map dump` and line info read as source.

use std::collections::HashMap;

use crate::btf::{Btf, BtfError, BtfType, Kind};

/// Types and strings being collected; [`Builder::finish`] encodes them.
#[derive(Clone, Debug)]
pub struct Builder {
    /// Index 0 is `void` (never encoded).
    types: Vec<BtfType>,
    strings: Vec<u8>,
    offsets: HashMap<String, u32>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            types: vec![BtfType::void()],
            strings: vec![0],
            offsets: HashMap::from([(String::new(), 0)]),
        }
    }

    /// Adds a type; its id.
    pub fn add(&mut self, t: BtfType) -> u32 {
        self.types.push(t);
        (self.types.len() - 1) as u32
    }

    /// Adds a type of this name and kind (`kind_flag` clear).
    pub fn add_kind(&mut self, name: &str, kind: Kind) -> u32 {
        self.add(BtfType {
            name: name.to_string(),
            kind,
            kind_flag: false,
        })
    }

    /// The offset of `s` in the string section (added once).
    pub fn string(&mut self, s: &str) -> u32 {
        if let Some(&off) = self.offsets.get(s) {
            return off;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        self.offsets.insert(s.to_string(), off);
        off
    }

    /// The type `id` (0 is `void`).
    pub fn get(&self, id: u32) -> Option<&BtfType> {
        self.types.get(id as usize)
    }

    /// Whether a DATASEC of this name is among the types.
    pub fn get_datasec(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.name == name && matches!(t.kind, Kind::Datasec { .. }))
            .map(|i| i as u32)
    }

    /// The encoded section, parsed back (which checks every reference).
    pub fn finish(mut self) -> Result<Btf, BtfError> {
        let mut words: Vec<u32> = Vec::new();
        let types = std::mem::take(&mut self.types);
        for t in &types[1..] {
            self.encode(t, &mut words);
        }
        let type_bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut raw = Vec::with_capacity(24 + type_bytes.len() + self.strings.len());
        raw.extend_from_slice(&0xeb9fu16.to_le_bytes());
        raw.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            self.strings.len() as u32,
        ] {
            raw.extend_from_slice(&w.to_le_bytes());
        }
        raw.extend_from_slice(&type_bytes);
        raw.extend_from_slice(&self.strings);
        Btf::parse(&raw)
    }

    fn encode(&mut self, t: &BtfType, w: &mut Vec<u32>) {
        let name = self.string(&t.name);
        let head = |w: &mut Vec<u32>, kind: u32, vlen: usize, size_or_type: u32| {
            w.push(name);
            w.push((u32::from(t.kind_flag) << 31) | (kind << 24) | (vlen as u32 & 0xffff));
            w.push(size_or_type);
        };
        match &t.kind {
            Kind::Int {
                size,
                encoding,
                offset,
                bits,
            } => {
                head(w, 1, 0, *size);
                w.push((encoding & 0xf) << 24 | (offset & 0xff) << 16 | (bits & 0xff));
            }
            Kind::Ptr { target } => head(w, 2, 0, *target),
            Kind::Array {
                elem,
                index,
                nelems,
            } => {
                head(w, 3, 0, 0);
                w.extend([*elem, *index, *nelems]);
            }
            Kind::Struct { size, members } | Kind::Union { size, members } => {
                let kind = if matches!(t.kind, Kind::Struct { .. }) {
                    4
                } else {
                    5
                };
                head(w, kind, members.len(), *size);
                for m in members {
                    let n = self.string(&m.name);
                    let off = if t.kind_flag {
                        m.bitfield_size << 24 | (m.offset & 0x00ff_ffff)
                    } else {
                        m.offset
                    };
                    w.extend([n, m.type_id, off]);
                }
            }
            Kind::Enum { size, values } => {
                head(w, 6, values.len(), *size);
                for (n, v) in values {
                    let n = self.string(n);
                    w.extend([n, *v as i32 as u32]);
                }
            }
            Kind::Fwd => head(w, 7, 0, 0),
            Kind::Typedef { target } => head(w, 8, 0, *target),
            Kind::Volatile { target } => head(w, 9, 0, *target),
            Kind::Const { target } => head(w, 10, 0, *target),
            Kind::Restrict { target } => head(w, 11, 0, *target),
            Kind::Func { proto, linkage } => head(w, 12, *linkage as usize, *proto),
            Kind::FuncProto { ret, params } => {
                head(w, 13, params.len(), *ret);
                for (n, ty) in params {
                    let n = self.string(n);
                    w.extend([n, *ty]);
                }
            }
            Kind::Var { target, linkage } => {
                head(w, 14, 0, *target);
                w.push(*linkage);
            }
            Kind::Datasec { size, vars } => {
                head(w, 15, vars.len(), *size);
                for v in vars {
                    w.extend([v.type_id, v.offset, v.size]);
                }
            }
            Kind::Float { size } => head(w, 16, 0, *size),
            Kind::DeclTag { target, component } => {
                head(w, 17, 0, *target);
                w.push(*component as u32);
            }
            Kind::TypeTag { target } => head(w, 18, 0, *target),
            Kind::Enum64 { size, values } => {
                head(w, 19, values.len(), *size);
                for (n, v) in values {
                    let n = self.string(n);
                    w.extend([n, *v as u64 as u32, (*v as u64 >> 32) as u32]);
                }
            }
        }
    }
}

impl Btf {
    /// A builder holding these types and strings (string offsets kept, so
    /// records that point into the strings stay valid), to add to.
    pub fn to_builder(&self) -> Builder {
        let mut b = Builder::new();
        b.strings = self.strings.clone();
        if b.strings.is_empty() {
            b.strings.push(0);
        }
        let mut at = 0;
        for s in self.strings.split(|&c| c == 0) {
            b.offsets
                .entry(String::from_utf8_lossy(s).into_owned())
                .or_insert(at as u32);
            at += s.len() + 1;
        }
        b.types = self.types.clone();
        if b.types.is_empty() {
            b.types.push(BtfType::void());
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{Member, VarSecInfo};

    #[test]
    fn every_kind_survives_encoding_and_parsing() {
        let mut b = Builder::new();
        let int = b.add_kind(
            "int",
            Kind::Int {
                size: 4,
                encoding: 1,
                offset: 0,
                bits: 32,
            },
        );
        let ptr = b.add_kind("", Kind::Ptr { target: int });
        let arr = b.add_kind(
            "",
            Kind::Array {
                elem: int,
                index: int,
                nelems: 7,
            },
        );
        let st = b.add(BtfType {
            name: "s".into(),
            kind: Kind::Struct {
                size: 16,
                members: vec![
                    Member {
                        name: "a".into(),
                        type_id: int,
                        offset: 0,
                        bitfield_size: 3,
                    },
                    Member {
                        name: "b".into(),
                        type_id: ptr,
                        offset: 64,
                        bitfield_size: 0,
                    },
                ],
            },
            kind_flag: true,
        });
        b.add_kind(
            "u",
            Kind::Union {
                size: 4,
                members: vec![],
            },
        );
        b.add_kind(
            "e",
            Kind::Enum {
                size: 4,
                values: vec![("A".into(), -1), ("B".into(), 7)],
            },
        );
        b.add_kind("f", Kind::Fwd);
        let td = b.add_kind("t", Kind::Typedef { target: st });
        b.add_kind("", Kind::Volatile { target: td });
        b.add_kind("", Kind::Const { target: td });
        b.add_kind("", Kind::Restrict { target: ptr });
        let proto = b.add_kind(
            "",
            Kind::FuncProto {
                ret: int,
                params: vec![("x".into(), ptr)],
            },
        );
        b.add_kind("fn", Kind::Func { proto, linkage: 1 });
        let var = b.add_kind(
            "v",
            Kind::Var {
                target: arr,
                linkage: 1,
            },
        );
        b.add_kind(
            ".data",
            Kind::Datasec {
                size: 28,
                vars: vec![VarSecInfo {
                    type_id: var,
                    offset: 0,
                    size: 28,
                }],
            },
        );
        b.add_kind("d", Kind::Float { size: 8 });
        b.add_kind(
            "tag",
            Kind::DeclTag {
                target: st,
                component: -1,
            },
        );
        b.add_kind("user", Kind::TypeTag { target: int });
        b.add_kind(
            "e64",
            Kind::Enum64 {
                size: 8,
                values: vec![("BIG".into(), i64::MIN + 5)],
            },
        );
        let line = b.string("the source line");
        let want = b.types.clone();
        let btf = b.finish().expect("parses");
        assert_eq!(btf.types, want);
        assert_eq!(btf.string(line).unwrap(), "the source line");
        // Again, from the parsed form.
        let again = btf.to_builder().finish().expect("parses");
        assert_eq!(again.raw, btf.raw);
    }
}
