//! C types as the compiler sees them: the running kernel's BTF (asked for
//! through [`Env`] only when a script first needs a kernel type), the
//! script's own `struct` definitions, and the few types the compiler makes
//! itself (integers, pointers, arrays). Kernel types keep their BTF ids;
//! the others have ids with [`EXTRA`] set. A kernel type named by a script
//! or a tracepoint format (`struct sk_buff *`) is a placeholder until it is
//! looked into, so naming a type costs nothing.

use std::cell::OnceCell;

use oxbpf_obj::btf::{BtfType, Kind, Member};
use oxbpf_obj::btfindex::{BtfIndex, BtfTypes};

use crate::ast::{CStruct, CType};
use crate::codegen::Env;

/// Set in the ids of types the compiler made or the script defined.
pub const EXTRA: u32 = 1 << 31;

enum Extra {
    Type(BtfType),
    /// A kernel type by C name, found on first use (`None`: not there).
    Named {
        decl: String,
        id: OnceCell<Option<u32>>,
    },
}

/// The compiler's types.
pub struct TypeDb<'a> {
    env: &'a dyn Env,
    kernel: OnceCell<Result<&'a BtfIndex, String>>,
    extra: Vec<Extra>,
}

fn int_type(size: u32, signed: bool, name: &str) -> BtfType {
    BtfType {
        name: name.into(),
        kind: Kind::Int {
            size,
            encoding: u32::from(signed),
            offset: 0,
            bits: size * 8,
        },
        kind_flag: false,
    }
}

/// The integer a C type name stands for: (size, signed).
pub fn builtin_int(name: &str) -> Option<(u32, bool)> {
    Some(match name {
        "int8" | "s8" | "__s8" | "int8_t" | "char" | "signed char" => (1, true),
        "uint8" | "u8" | "__u8" | "uint8_t" | "unsigned char" | "bool" | "_Bool" => (1, false),
        "int16" | "s16" | "__s16" | "int16_t" | "short" | "short int" | "signed short" => (2, true),
        "uint16" | "u16" | "__u16" | "uint16_t" | "unsigned short" | "unsigned short int" => {
            (2, false)
        }
        "int32" | "s32" | "__s32" | "int32_t" | "int" | "signed" | "signed int" | "pid_t" => {
            (4, true)
        }
        "uint32" | "u32" | "__u32" | "uint32_t" | "unsigned" | "unsigned int" => (4, false),
        "int64" | "s64" | "__s64" | "int64_t" | "long" | "long int" | "long long"
        | "long long int" | "signed long" | "ssize_t" | "loff_t" => (8, true),
        "uint64"
        | "u64"
        | "__u64"
        | "uint64_t"
        | "unsigned long"
        | "unsigned long int"
        | "unsigned long long"
        | "unsigned long long int"
        | "size_t"
        | "uintptr_t" => (8, false),
        _ => return None,
    })
}

impl<'a> TypeDb<'a> {
    pub fn new(env: &'a dyn Env) -> TypeDb<'a> {
        TypeDb {
            env,
            kernel: OnceCell::new(),
            extra: Vec::new(),
        }
    }

    /// The kernel's BTF, read on first use.
    pub fn kernel(&self) -> Result<&'a BtfIndex, String> {
        self.kernel.get_or_init(|| self.env.kernel_btf()).clone()
    }

    fn push(&mut self, e: Extra) -> u32 {
        self.extra.push(e);
        EXTRA | (self.extra.len() - 1) as u32
    }

    fn add(&mut self, t: BtfType) -> u32 {
        // Made types are few: reuse an equal one.
        if let Some(i) = self
            .extra
            .iter()
            .position(|e| matches!(e, Extra::Type(x) if *x == t))
        {
            return EXTRA | i as u32;
        }
        self.push(Extra::Type(t))
    }

    pub fn int(&mut self, size: u32, signed: bool) -> u32 {
        let name = format!("{}int{}", if signed { "" } else { "u" }, size * 8);
        self.add(int_type(size, signed, &name))
    }

    pub fn ptr_to(&mut self, target: u32) -> u32 {
        self.add(BtfType {
            name: String::new(),
            kind: Kind::Ptr { target },
            kind_flag: false,
        })
    }

    pub fn array_of(&mut self, elem: u32, n: u32) -> u32 {
        self.add(BtfType {
            name: String::new(),
            kind: Kind::Array {
                elem,
                index: 0,
                nelems: n,
            },
            kind_flag: false,
        })
    }

    /// A script struct by name (`struct NAME`), if the script defined one.
    fn script_struct(&self, decl: &str) -> Option<u32> {
        let (union, name) = if let Some(n) = decl.strip_prefix("struct ") {
            (false, n.trim())
        } else if let Some(n) = decl.strip_prefix("union ") {
            (true, n.trim())
        } else {
            (false, decl)
        };
        self.extra.iter().position(|e| {
            matches!(e, Extra::Type(t) if t.name == name
                && matches!((&t.kind, union), (Kind::Struct { .. }, false) | (Kind::Union { .. }, true)))
        })
        .map(|i| EXTRA | i as u32)
    }

    /// A type by its C name: an integer the compiler knows, a struct of
    /// the script, or (looked up when first used) a kernel type.
    pub fn named(&mut self, decl: &str) -> u32 {
        let decl = decl.split_whitespace().collect::<Vec<_>>().join(" ");
        let decl = decl
            .strip_prefix("const ")
            .or_else(|| decl.strip_prefix("volatile "))
            .unwrap_or(&decl)
            .to_string();
        if decl == "void" {
            return 0;
        }
        if let Some((size, signed)) = builtin_int(&decl) {
            let id = self.int(size, signed);
            // Keep C's name for messages.
            if let Some(Extra::Type(t)) = self.extra.get_mut((id & !EXTRA) as usize) {
                t.name = decl.clone();
            }
            return id;
        }
        if let Some(id) = self.script_struct(&decl) {
            return id;
        }
        if let Some(i) = self
            .extra
            .iter()
            .position(|e| matches!(e, Extra::Named { decl: d, .. } if *d == decl))
        {
            return EXTRA | i as u32;
        }
        self.push(Extra::Named {
            decl,
            id: OnceCell::new(),
        })
    }

    /// The id of a type as the script writes it (`struct sock *`,
    /// `u8[4]`).
    pub fn ctype(&mut self, t: &CType) -> u32 {
        let mut id = self.named(&t.base);
        for _ in 0..t.pointers {
            id = self.ptr_to(id);
        }
        if let Some(n) = t.array {
            id = self.array_of(id, n.min(u32::MAX as u64) as u32);
        }
        id
    }

    /// Adds the script's struct definitions, laid out as C lays them out
    /// (each member at its natural alignment).
    pub fn define(&mut self, s: &CStruct) -> Result<(), String> {
        // The struct first (empty), so members may point to it.
        let me = self.push(Extra::Type(BtfType {
            name: s.name.clone(),
            kind: if s.union {
                Kind::Union {
                    size: 0,
                    members: Vec::new(),
                }
            } else {
                Kind::Struct {
                    size: 0,
                    members: Vec::new(),
                }
            },
            kind_flag: false,
        }));
        let mut members = Vec::new();
        let (mut at, mut size, mut align) = (0u64, 0u64, 1u64);
        for (ct, name) in &s.fields {
            let id = self.ctype(ct);
            let n = self.size_of(id).ok_or_else(|| {
                format!(
                    "`{name}` of struct {}: {} has no known size{}",
                    s.name,
                    ct.base,
                    self.missing(id)
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                )
            })?;
            let a = self.align_of(id).max(1);
            let off = if s.union { 0 } else { at.div_ceil(a) * a };
            members.push(Member {
                name: name.clone(),
                type_id: id,
                offset: (off * 8) as u32,
                bitfield_size: 0,
            });
            at = off + n;
            size = size.max(at);
            align = align.max(a);
        }
        let size = (size.div_ceil(align) * align) as u32;
        if let Some(Extra::Type(t)) = self.extra.get_mut((me & !EXTRA) as usize) {
            t.kind = if s.union {
                Kind::Union { size, members }
            } else {
                Kind::Struct { size, members }
            };
        }
        Ok(())
    }

    /// C alignment of a type (its largest scalar, at most 8).
    pub fn align_of(&self, id: u32) -> u64 {
        let id = self.resolve(id);
        match self.get_type(id).map(|t| t.kind) {
            Some(Kind::Int { size, .. } | Kind::Enum { size, .. } | Kind::Enum64 { size, .. }) => {
                (size as u64).clamp(1, 8)
            }
            Some(Kind::Ptr { .. }) => 8,
            Some(Kind::Array { elem, .. }) => self.align_of(elem),
            Some(Kind::Struct { members, .. } | Kind::Union { members, .. }) => members
                .iter()
                .take(64)
                .map(|m| self.align_of(m.type_id))
                .max()
                .unwrap_or(1),
            _ => 1,
        }
    }

    /// Why a named type cannot be used: not in the kernel's BTF, or no
    /// BTF at all.
    pub fn missing(&self, id: u32) -> Option<String> {
        let Extra::Named { decl, .. } = self.extra.get((id & !EXTRA) as usize)? else {
            return None;
        };
        if id & EXTRA == 0 {
            return None;
        }
        match self.kernel() {
            Err(e) => Some(format!("`{decl}` needs the kernel's BTF: {e}")),
            Ok(_) if self.canon(id).is_none() => {
                Some(format!("there is no type `{decl}` in the kernel's BTF"))
            }
            Ok(_) => None,
        }
    }

    /// A placeholder's kernel id (other ids as they are).
    fn canon(&self, id: u32) -> Option<u32> {
        if id & EXTRA == 0 {
            return Some(id);
        }
        match self.extra.get((id & !EXTRA) as usize)? {
            Extra::Type(_) => Some(id),
            Extra::Named { decl, id: found } => *found.get_or_init(|| {
                let k = self.kernel().ok()?;
                k.named(decl)
            }),
        }
    }
}

impl BtfTypes for TypeDb<'_> {
    fn get_type(&self, id: u32) -> Option<BtfType> {
        let id = self.canon(id)?;
        if id & EXTRA != 0 {
            return match self.extra.get((id & !EXTRA) as usize)? {
                Extra::Type(t) => Some(t.clone()),
                Extra::Named { .. } => None,
            };
        }
        if id == 0 {
            return Some(BtfType::void());
        }
        self.kernel().ok()?.get(id)
    }
}
