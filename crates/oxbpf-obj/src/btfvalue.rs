//! Map keys and values decoded through BTF, as `bpftool map dump` shows
//! them: integers in decimal, `char` arrays as strings, structs and unions
//! with their field names, arrays element by element, enums by name.
//!
//! Decoding never fails on short or odd data: a member beyond the bytes
//! given, a type without a size or a cycle in the type graph ends that
//! branch as [`Value::Bytes`] of what there is.

use std::fmt;

use crate::btf::{Btf, Kind};

/// A decoded value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A signed integer (BTF_INT_SIGNED) or a signed bitfield.
    Int(i128),
    /// An unsigned integer, bitfield or `bool`-less integer.
    Uint(u128),
    Bool(bool),
    /// A `char` array up to its first NUL.
    Str(String),
    Float(f64),
    /// A pointer: an address, printed in hex.
    Ptr(u64),
    /// An enumerator's name, or its number when no enumerator has it.
    Enum(String),
    /// An array.
    Array(Vec<Value>),
    /// A struct or union: fields in order (anonymous members keep an empty
    /// name).
    Struct(Vec<(String, Value)>),
    /// Bytes without a decodable type.
    Bytes(Vec<u8>),
}

/// Deepest nesting followed before giving up (BTF may describe cycles only
/// through pointers, which are not followed, but malformed BTF can do so
/// anywhere).
const MAX_DEPTH: u32 = 32;

/// Most values one decode produces; beyond it the rest is bytes
/// (malformed BTF can describe zero-sized types that nest each other,
/// which would otherwise grow without bound).
const MAX_NODES: u32 = 100_000;

impl Btf {
    /// `bytes` as the type `id` describes it; `None` when `id` names no
    /// sized type (void, a function) or its size is not `bytes.len()`.
    pub fn decode(&self, id: u32, bytes: &[u8]) -> Option<Value> {
        let size = self.size_of(id).filter(|&s| s > 0)?;
        let mut budget = MAX_NODES;
        (size == bytes.len() as u64).then(|| self.decode_at(id, bytes, 0, &mut budget))
    }

    fn decode_at(&self, id: u32, bytes: &[u8], depth: u32, budget: &mut u32) -> Value {
        let raw = || Value::Bytes(bytes.to_vec());
        if depth > MAX_DEPTH || *budget == 0 {
            return raw();
        }
        *budget -= 1;
        let id = self.resolve(id);
        let Some(t) = self.get(id) else {
            return raw();
        };
        match &t.kind {
            Kind::Int {
                size,
                encoding,
                offset,
                bits,
            } => {
                let Some(v) = le_uint(bytes, *size as usize) else {
                    return raw();
                };
                // An int's own bit offset and width must fit its size
                // (malformed BTF can say otherwise).
                if u64::from(*offset + *bits) > u64::from(*size) * 8 {
                    return raw();
                }
                let v = if *bits > 0 && *bits < 128 {
                    (v >> offset) & ((1u128 << bits) - 1)
                } else {
                    v
                };
                int_value(v, *bits, *encoding)
            }
            Kind::Ptr { .. } => le_uint(bytes, 8).map_or_else(raw, |v| Value::Ptr(v as u64)),
            Kind::Float { size } => match (*size, bytes.len()) {
                (4, 4..) => {
                    Value::Float(f32::from_le_bytes(bytes[..4].try_into().unwrap_or([0; 4])) as f64)
                }
                (8, 8..) => {
                    Value::Float(f64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])))
                }
                _ => raw(),
            },
            Kind::Enum { size, values } | Kind::Enum64 { size, values } => {
                let Some(v) = le_uint(bytes, *size as usize) else {
                    return raw();
                };
                let width = *size * 8;
                // Enumerators are stored sign-extended; compare in the
                // enum's width.
                let mask = if width >= 128 {
                    u128::MAX
                } else {
                    (1u128 << width) - 1
                };
                match values
                    .iter()
                    .find(|(_, n)| (*n as i128 as u128) & mask == v)
                {
                    Some((name, _)) => Value::Enum(name.clone()),
                    None => Value::Enum(v.to_string()),
                }
            }
            Kind::Array { elem, nelems, .. } => {
                let Some(esize) = self.size_of(*elem).filter(|&s| s > 0) else {
                    return raw();
                };
                if self.is_char(*elem)
                    && let Some(text) = c_string(&bytes[..(*nelems as usize).min(bytes.len())])
                {
                    return Value::Str(text);
                }
                let n = (*nelems as usize).min(bytes.len() / esize as usize);
                Value::Array(
                    bytes
                        .chunks_exact(esize as usize)
                        .take(n)
                        .map(|c| self.decode_at(*elem, c, depth + 1, budget))
                        .collect(),
                )
            }
            Kind::Struct { members, .. } | Kind::Union { members, .. } => Value::Struct(
                members
                    .iter()
                    .map(|m| (m.name.clone(), self.member(m, bytes, depth, budget)))
                    .collect(),
            ),
            Kind::Var { target, .. } => self.decode_at(*target, bytes, depth + 1, budget),
            // A global-data section (`.data`, `.rodata`, `.bss` maps): its
            // variables by name.
            Kind::Datasec { vars, .. } => Value::Struct(
                vars.iter()
                    .map(|v| {
                        let name = self
                            .get(v.type_id)
                            .map(|t| t.name.clone())
                            .unwrap_or_default();
                        let (start, end) = (v.offset as usize, v.offset as usize + v.size as usize);
                        let value = match bytes.get(start..end) {
                            Some(b) => self.decode_at(v.type_id, b, depth + 1, budget),
                            None => Value::Bytes(Vec::new()),
                        };
                        (name, value)
                    })
                    .collect(),
            ),
            _ => raw(),
        }
    }

    /// One member of a struct or union held in `bytes`.
    fn member(&self, m: &crate::btf::Member, bytes: &[u8], depth: u32, budget: &mut u32) -> Value {
        if m.bitfield_size > 0 {
            // A bitfield: read the bits wherever they fall.
            let (start, width) = (m.offset as usize, m.bitfield_size as usize);
            if width > 64 || start + width > bytes.len() * 8 {
                return Value::Bytes(Vec::new());
            }
            let mut v = 0u128;
            for i in 0..width {
                let bit = start + i;
                v |= (((bytes[bit / 8] >> (bit % 8)) & 1) as u128) << i;
            }
            let signed = matches!(
                self.get(self.resolve(m.type_id)).map(|t| &t.kind),
                Some(Kind::Int { encoding, .. }) if encoding & 1 != 0
            );
            return int_value(v, width as u32, if signed { 1 } else { 0 });
        }
        let start = (m.offset / 8) as usize;
        let Some(size) = self.size_of(m.type_id) else {
            return Value::Bytes(Vec::new());
        };
        match bytes.get(start..start.saturating_add(size as usize)) {
            Some(b) if m.offset.is_multiple_of(8) => {
                self.decode_at(m.type_id, b, depth + 1, budget)
            }
            _ => Value::Bytes(bytes.get(start.min(bytes.len())..).unwrap_or(&[]).to_vec()),
        }
    }

    /// Whether an array of `id` prints as a string, as bpftool decides it:
    /// a one-byte integer named `char` or encoded BTF_INT_CHAR, through
    /// qualifiers but not typedefs (`__u8 pad[3]` stays an array).
    fn is_char(&self, mut id: u32) -> bool {
        for _ in 0..MAX_DEPTH {
            match self.get(id).map(|t| (&t.name, &t.kind)) {
                Some((
                    _,
                    Kind::Volatile { target }
                    | Kind::Const { target }
                    | Kind::Restrict { target }
                    | Kind::TypeTag { target },
                )) => id = *target,
                Some((
                    name,
                    Kind::Int {
                        size: 1, encoding, ..
                    },
                )) => {
                    return name == "char" || encoding & 2 != 0;
                }
                _ => return false,
            }
        }
        false
    }
}

/// The text of a NUL-terminated run of printable ASCII at the start of
/// `bytes`; `None` without a NUL or with any other byte before it.
fn c_string(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0)?;
    let text = &bytes[..end];
    text.iter()
        .all(|&b| (0x20..0x7f).contains(&b))
        .then(|| String::from_utf8_lossy(text).into_owned())
}

/// The little-endian unsigned integer in the first `size` bytes (1..=16).
fn le_uint(bytes: &[u8], size: usize) -> Option<u128> {
    if size == 0 || size > 16 || bytes.len() < size {
        return None;
    }
    let mut b = [0u8; 16];
    b[..size].copy_from_slice(&bytes[..size]);
    Some(u128::from_le_bytes(b))
}

/// An integer of `bits` bits (0: the whole value) with BTF encoding
/// `encoding` (1 = signed, 4 = bool).
fn int_value(v: u128, bits: u32, encoding: u32) -> Value {
    if encoding & 4 != 0 {
        return Value::Bool(v != 0);
    }
    if encoding & 1 != 0 && bits > 0 && bits < 128 && v >> (bits - 1) & 1 == 1 {
        return Value::Int((v | (u128::MAX << bits)) as i128);
    }
    if encoding & 1 != 0 {
        Value::Int(v as i128)
    } else {
        Value::Uint(v)
    }
}

impl Value {
    /// The sum of per-CPU values of one type: integers added (wrapping),
    /// structs and arrays member by member; `None` when they are not all
    /// numbers of the same shape (strings, pointers, enums do not add).
    pub fn sum(values: &[Value]) -> Option<Value> {
        let first = values.first()?;
        match first {
            Value::Uint(_) => values
                .iter()
                .try_fold(0u128, |acc, v| match v {
                    Value::Uint(x) => Some(acc.wrapping_add(*x)),
                    _ => None,
                })
                .map(Value::Uint),
            Value::Int(_) => values
                .iter()
                .try_fold(0i128, |acc, v| match v {
                    Value::Int(x) => Some(acc.wrapping_add(*x)),
                    _ => None,
                })
                .map(Value::Int),
            Value::Struct(fields) => {
                let mut out = Vec::with_capacity(fields.len());
                for (i, (name, _)) in fields.iter().enumerate() {
                    let column: Option<Vec<Value>> = values
                        .iter()
                        .map(|v| match v {
                            Value::Struct(f) if f.len() == fields.len() && f[i].0 == *name => {
                                Some(f[i].1.clone())
                            }
                            _ => None,
                        })
                        .collect();
                    out.push((name.clone(), Value::sum(&column?)?));
                }
                Some(Value::Struct(out))
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in 0..items.len() {
                    let column: Option<Vec<Value>> = values
                        .iter()
                        .map(|v| match v {
                            Value::Array(a) if a.len() == items.len() => Some(a[i].clone()),
                            _ => None,
                        })
                        .collect();
                    out.push(Value::sum(&column?)?);
                }
                Some(Value::Array(out))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Uint(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Ptr(v) => write!(f, "{v:#x}"),
            Value::Enum(s) => f.write_str(s),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Struct(fields) => {
                f.write_str("{")?;
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if name.is_empty() {
                        write!(f, "{v}")?;
                    } else {
                        write!(f, "{name}: {v}")?;
                    }
                }
                f.write_str("}")
            }
            Value::Bytes(b) => {
                f.write_str("0x")?;
                b.iter().try_for_each(|x| write!(f, "{x:02x}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Value;
    use crate::btf::Btf;

    /// A BTF blob from type records (kind, name, info's vlen and kind_flag,
    /// size-or-type, extra words) and the names they use.
    /// A type record: kind, name, vlen, kind_flag, size-or-type, extra words.
    type Record<'a> = (u32, &'a str, u32, bool, u32, Vec<u32>);

    fn btf(types: &[Record<'_>], extra_names: &[&str]) -> Btf {
        let mut strings = vec![0u8];
        let name_off = |n: &str, strings: &mut Vec<u8>| -> u32 {
            if n.is_empty() {
                return 0;
            }
            let off = strings.len() as u32;
            strings.extend_from_slice(n.as_bytes());
            strings.push(0);
            off
        };
        let mut offs = std::collections::HashMap::new();
        for n in extra_names {
            offs.insert(n.to_string(), name_off(n, &mut strings));
        }
        let mut t = Vec::new();
        for (kind, name, vlen, kflag, size, extra) in types {
            let info = (kind << 24) | vlen | if *kflag { 1 << 31 } else { 0 };
            for w in [name_off(name, &mut strings), info, *size] {
                t.extend_from_slice(&w.to_le_bytes());
            }
            for w in extra {
                // Name references in member and enum records: an index
                // into `extra_names` encoded as u32::MAX - i.
                let w = if *w >= u32::MAX - 16 {
                    offs[extra_names[(u32::MAX - w) as usize]]
                } else {
                    *w
                };
                t.extend_from_slice(&w.to_le_bytes());
            }
        }
        let mut raw = Vec::new();
        raw.extend_from_slice(&0xeb9fu16.to_le_bytes());
        raw.extend_from_slice(&[1, 0]);
        for w in [
            24u32,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            raw.extend_from_slice(&w.to_le_bytes());
        }
        raw.extend_from_slice(&t);
        raw.extend_from_slice(&strings);
        Btf::parse(&raw).expect("test BTF parses")
    }

    const fn name(i: u32) -> u32 {
        u32::MAX - i
    }

    fn sample() -> Btf {
        btf(
            &[
                // 1: int (signed, 32 bits)
                (1, "int", 0, false, 4, vec![(1 << 24) | 32]),
                // 2: char (signed, 8 bits)
                (1, "char", 0, false, 1, vec![(1 << 24) | 8]),
                // 3: char[8]
                (3, "", 0, false, 0, vec![2, 1, 8]),
                // 4: enum color { RED = 0, BLUE = -100 } (4 bytes)
                (
                    6,
                    "color",
                    2,
                    false,
                    4,
                    vec![name(0), 0, name(1), (-100i32) as u32],
                ),
                // 5: unsigned int
                (1, "unsigned int", 0, false, 4, vec![32]),
                // 6: struct s { int a: 3; unsigned int b: 5; char name[8]; enum color c; }
                (
                    4,
                    "s",
                    4,
                    true,
                    16,
                    vec![
                        name(2),
                        1,
                        3 << 24,
                        name(3),
                        5,
                        (5 << 24) | 3,
                        name(4),
                        3,
                        32,
                        name(5),
                        4,
                        96,
                    ],
                ),
                // 7: typedef unsigned char __u8 pieces: 8: unsigned char, 9: __u8[2]
                (1, "unsigned char", 0, false, 1, vec![8]),
                (8, "__u8", 0, false, 7, vec![]),
                (3, "", 0, false, 0, vec![8, 1, 2]),
            ],
            &["RED", "BLUE", "a", "b", "name", "c"],
        )
    }

    #[test]
    fn structs_bitfields_strings_and_enums() {
        let b = sample();
        // a = -3 (0b101 in 3 bits), b = 17 (5 bits after a).
        let bits: u32 = 0b101 | (17 << 3);
        let mut bytes = bits.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"comm\0\0\0\0");
        bytes.extend_from_slice(&(-100i32).to_le_bytes());
        let v = b.decode(6, &bytes).expect("decodes");
        assert_eq!(
            v,
            Value::Struct(vec![
                ("a".into(), Value::Int(-3)),
                ("b".into(), Value::Uint(17)),
                ("name".into(), Value::Str("comm".into())),
                ("c".into(), Value::Enum("BLUE".into())),
            ])
        );
        assert_eq!(v.to_string(), r#"{a: -3, b: 17, name: "comm", c: BLUE}"#);
    }

    #[test]
    fn typedef_byte_arrays_stay_arrays_and_bad_strings_are_bytes() {
        let b = sample();
        assert_eq!(b.decode(9, &[0, 7]).unwrap().to_string(), "[0, 7]");
        // No NUL in a char array: its elements, not a string.
        let v = b.decode(3, b"abcdefgh").unwrap();
        assert!(matches!(v, Value::Array(ref a) if a.len() == 8), "{v:?}");
        // An enum value without an enumerator prints its number.
        assert_eq!(b.decode(4, &5u32.to_le_bytes()).unwrap().to_string(), "5");
    }

    /// Found by the `btf` fuzz target: an int whose bit offset lies beyond
    /// its size shifted out of range.
    #[test]
    fn ints_with_impossible_bit_offsets_are_bytes() {
        let b = btf(&[(1, "odd", 0, false, 4, vec![(200 << 16) | 32])], &[]);
        assert_eq!(
            b.decode(1, &[1, 2, 3, 4]),
            Some(Value::Bytes(vec![1, 2, 3, 4]))
        );
    }

    /// Found by the `btf` fuzz target: members that all overlay one
    /// another multiply; a decode stops at its node budget.
    #[test]
    fn overlaid_members_cannot_blow_up() {
        let n = 400u32;
        let members = |ty: u32| (0..n).flat_map(|_| [0, ty, 0]).collect::<Vec<u32>>();
        let b = btf(
            &[
                (1, "int", 0, false, 4, vec![(1 << 24) | 32]),
                (4, "inner", n, false, 4, members(1)),
                (4, "outer", n, false, 4, members(2)),
            ],
            &[],
        );
        let v = b.decode(3, &[1, 0, 0, 0]).expect("decodes");
        let Value::Struct(outer) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(outer.len(), n as usize);
        assert!(
            outer.iter().any(|(_, v)| matches!(v, Value::Bytes(_))),
            "budget reached"
        );
        assert!(matches!(&outer[0].1, Value::Struct(f) if f[0].1 == Value::Int(1)));
    }

    #[test]
    fn per_cpu_values_sum_member_by_member() {
        let cpu = |p: u128, b: u128| {
            Value::Struct(vec![
                ("packets".into(), Value::Uint(p)),
                ("bytes".into(), Value::Uint(b)),
            ])
        };
        assert_eq!(
            Value::sum(&[cpu(1, 60), cpu(2, 40), cpu(0, 0)]),
            Some(cpu(3, 100))
        );
        assert_eq!(
            Value::sum(&[Value::Int(-2), Value::Int(5)]),
            Some(Value::Int(3))
        );
        assert_eq!(Value::sum(&[Value::Uint(1), Value::Int(1)]), None);
        assert_eq!(Value::sum(&[Value::Str("a".into())]), None);
        assert_eq!(Value::sum(&[]), None);
    }

    #[test]
    fn wrong_sizes_and_unknown_types_decode_to_nothing() {
        let b = sample();
        assert_eq!(b.decode(6, &[0; 3]), None);
        assert_eq!(b.decode(1, &[0; 8]), None);
        assert_eq!(b.decode(999, &[0; 4]), None);
        assert_eq!(b.decode(0, &[]), None);
    }
}
