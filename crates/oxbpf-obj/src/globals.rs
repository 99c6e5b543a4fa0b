//! Setting an object's global variables before it is loaded, as libbpf's
//! skeletons do for `const volatile` filters in `.rodata` (and plain
//! globals in `.data`/`.bss`): the variable found by name in the
//! sections' BTF DATASECs, the value parsed for its BTF type.

use crate::btf::Kind;
use crate::{ObjError, Object};

/// A variable that cannot be set, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobalError {
    #[error(
        "no global variable `{name}` in the object's data sections{}",
        list(known)
    )]
    NoVariable { name: String, known: Vec<String> },
    #[error("`{name}` ({type_name}): {message}")]
    BadValue {
        name: String,
        type_name: String,
        message: String,
    },
    #[error("the object has no BTF to find `{0}` in")]
    NoBtf(String),
}

fn list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!(" (there are: {})", known.join(", "))
    }
}

/// A variable of a global-data section.
struct Var {
    map: usize,
    offset: usize,
    type_id: u32,
}

impl Object {
    /// Sets map `name`'s `max_entries` before load (`--map
    /// NAME.max_entries=N`).
    pub fn set_max_entries(&mut self, name: &str, max_entries: u32) -> Result<(), ObjError> {
        let known: Vec<String> = self.maps.iter().map(|m| m.name.clone()).collect();
        let m = self
            .maps
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| ObjError::Map {
                name: name.into(),
                message: format!("no such map (the maps are {})", known.join(", ")),
            })?;
        if max_entries == 0 {
            return Err(ObjError::Map {
                name: name.into(),
                message: "max_entries must be at least 1".into(),
            });
        }
        m.max_entries = max_entries;
        Ok(())
    }

    /// Names of every variable in the object's global-data sections
    /// (`.rodata`, `.data`, `.bss`, and their `.name` suffixed forms).
    pub fn globals(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(btf) = &self.btf else { return out };
        for m in &self.maps {
            if let Some((_, vars)) = btf.datasec(&m.name) {
                for v in vars {
                    if let Some(t) = btf.get(v.type_id) {
                        out.push(t.name.clone());
                    }
                }
            }
        }
        out
    }

    fn find_global(&self, name: &str) -> Result<Var, GlobalError> {
        let btf = self
            .btf
            .as_ref()
            .ok_or_else(|| GlobalError::NoBtf(name.into()))?;
        for (mi, m) in self.maps.iter().enumerate() {
            let Some((_, vars)) = btf.datasec(&m.name) else {
                continue;
            };
            for v in vars {
                let Some(t) = btf.get(v.type_id) else {
                    continue;
                };
                if t.name != name {
                    continue;
                }
                let Kind::Var { target, .. } = t.kind else {
                    continue;
                };
                // Offsets in object files are zero; the ELF symbol has the
                // real one.
                let offset = self
                    .symbol_offsets
                    .get(&(m.name.clone(), name.to_string()))
                    .copied()
                    .unwrap_or(v.offset as u64) as usize;
                return Ok(Var {
                    map: mi,
                    offset,
                    type_id: target,
                });
            }
        }
        Err(GlobalError::NoVariable {
            name: name.into(),
            known: self.globals(),
        })
    }

    /// Sets global variable `name` to `value`, written as C would: an
    /// integer (decimal, `0x` hex, negative for signed types; an enum by
    /// enumerator name), `true`/`false` for `bool`, a string for a `char`
    /// array (NUL-padded, one byte kept for the NUL).
    pub fn set_global(&mut self, name: &str, value: &str) -> Result<(), GlobalError> {
        let var = self.find_global(name)?;
        let btf = self
            .btf
            .as_ref()
            .ok_or_else(|| GlobalError::NoBtf(name.into()))?;
        let id = btf.resolve(var.type_id);
        let t = btf.get(id).ok_or_else(|| GlobalError::NoBtf(name.into()))?;
        let type_name = type_name(btf, var.type_id);
        let bad = |message: String| GlobalError::BadValue {
            name: name.into(),
            type_name: type_name.clone(),
            message,
        };
        let bytes: Vec<u8> = match &t.kind {
            Kind::Int { size, encoding, .. } => {
                let size = *size as usize;
                if encoding & 4 != 0 {
                    match value {
                        "true" | "1" => vec![1],
                        "false" | "0" => vec![0],
                        _ => return Err(bad(format!("expected true or false, not {value:?}"))),
                    }
                } else {
                    int_bytes(value, size, encoding & 1 != 0).map_err(bad)?
                }
            }
            Kind::Enum { size, values } | Kind::Enum64 { size, values } => {
                match values.iter().find(|(n, _)| n == value) {
                    Some((_, v)) => v.to_le_bytes()[..*size as usize].to_vec(),
                    None => int_bytes(value, *size as usize, true).map_err(|m| {
                        let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
                        bad(format!("{m}; the enumerators are {}", names.join(", ")))
                    })?,
                }
            }
            Kind::Array { elem, nelems, .. }
                if btf.size_of(*elem) == Some(1)
                    && matches!(
                        btf.get(btf.resolve(*elem)).map(|t| &t.kind),
                        Some(Kind::Int { .. })
                    ) =>
            {
                let n = *nelems as usize;
                if value.len() >= n {
                    return Err(bad(format!(
                        "{} bytes do not fit (at most {})",
                        value.len(),
                        n.saturating_sub(1)
                    )));
                }
                let mut b = value.as_bytes().to_vec();
                b.resize(n, 0);
                b
            }
            _ => {
                return Err(bad(
                    "only integers, enums, bools and char arrays can be set".into(),
                ));
            }
        };
        let map = &mut self.maps[var.map];
        let size = map.value_size as usize;
        let data = map.data.get_or_insert_with(|| vec![0; size]);
        if data.len() < size {
            data.resize(size, 0);
        }
        let end = var.offset + bytes.len();
        if end > data.len() {
            return Err(bad(format!(
                "lies outside its section ({end} > {})",
                data.len()
            )));
        }
        data[var.offset..end].copy_from_slice(&bytes);
        Ok(())
    }
}

/// The C name of a type, as far as a message needs it.
fn type_name(btf: &crate::btf::Btf, id: u32) -> String {
    match btf.get(id) {
        Some(t) if !t.name.is_empty() => match t.kind {
            Kind::Struct { .. } => format!("struct {}", t.name),
            Kind::Enum { .. } | Kind::Enum64 { .. } => format!("enum {}", t.name),
            _ => t.name.clone(),
        },
        Some(t) => match &t.kind {
            Kind::Const { target } | Kind::Volatile { target } | Kind::Typedef { target } => {
                type_name(btf, *target)
            }
            Kind::Array { elem, nelems, .. } => format!("{}[{nelems}]", type_name(btf, *elem)),
            _ => "?".into(),
        },
        None => "?".into(),
    }
}

/// `text` as a little-endian integer of `size` bytes.
fn int_bytes(text: &str, size: usize, signed: bool) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(h) => u128::from_str_radix(h, 16),
        None => digits.parse::<u128>(),
    }
    .map_err(|_| format!("{text:?} is not an integer"))?;
    let bits = size as u32 * 8;
    let (min, max): (i128, i128) = if signed {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, ((1u128 << bits) - 1) as i128)
    };
    let v = i128::try_from(magnitude).map_err(|_| format!("{text} is out of range"))?;
    let v = if neg { -v } else { v };
    if v < min || v > max {
        return Err(format!("{text} is out of range ({min}..={max})"));
    }
    Ok(v.to_le_bytes()[..size].to_vec())
}

#[cfg(test)]
mod tests {
    use super::int_bytes;

    #[test]
    fn integers_by_size_and_sign() {
        assert_eq!(int_bytes("258", 2, false).unwrap(), [2, 1]);
        assert_eq!(int_bytes("-1", 4, true).unwrap(), [0xff; 4]);
        assert_eq!(int_bytes("0x10", 1, false).unwrap(), [0x10]);
        assert!(
            int_bytes("256", 1, false)
                .unwrap_err()
                .contains("out of range")
        );
        assert!(int_bytes("-1", 4, false).is_err());
        assert!(
            int_bytes("abc", 4, false)
                .unwrap_err()
                .contains("not an integer")
        );
    }
}
