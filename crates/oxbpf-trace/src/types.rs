//! Types of bpftrace values, map layouts and tracepoint formats.

/// A value's type.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ty {
    /// An integer of `size` bytes (kept in 8 in maps and records).
    Int { size: u8, signed: bool },
    /// A NUL-padded string of at most `len` bytes (with its NUL).
    Str(usize),
    /// `(a, b, …)`.
    Tuple(Vec<Ty>),
    /// A kernel stack id (`kstack`) or user stack id with its pid
    /// (`ustack`): printed as frames, in perf's format when `perf`, at
    /// most `limit` of them.
    Stack { user: bool, perf: bool, limit: u8 },
    /// A kernel address (`ksym`) or a user address with its pid (`usym`)
    /// printed as a symbol.
    Sym { user: bool },
    /// A pointer to type `to` (an id in the compiler's
    /// [`crate::ctypes::TypeDb`]; 0 is `void`), into user memory or the
    /// kernel's.
    Ptr { to: u32, user: bool },
    /// A uid printed as its user's name (`username`).
    Username,
    /// Nanoseconds since boot printed as wall-clock time by a strftime
    /// format (`strftime`).
    Strftime(String),
    /// An IPv4 or IPv6 address (`ntop`): the family, then 16 bytes.
    Inet,
    /// Bytes printed with non-printable ones escaped (`buf`): the
    /// length, then up to `n` bytes.
    Buf(usize),
    /// `true` or `false` (bpftrace 0.21+ booleans; an integer in
    /// arithmetic).
    Bool,
    /// An error number printed as its message (`strerror`).
    Errno,
    /// A system call number printed as its name (`syscall_name`, an
    /// oxbpf extension; x86-64's table).
    Syscall,
    /// A block device (the kernel's `dev_t`: major << 20 | minor) printed
    /// as its name (`disk_name`, an oxbpf extension).
    Disk,
    /// A cgroup id printed as its paths in the hierarchies whose names
    /// match the wildcard pattern (`cgroup_path`).
    CgroupPath(String),
}

impl Ty {
    pub const U64: Ty = Ty::Int {
        size: 8,
        signed: false,
    };
    pub const I64: Ty = Ty::Int {
        size: 8,
        signed: true,
    };

    /// Bytes in a map key, map value or event record (8-aligned).
    pub fn stored_size(&self) -> usize {
        match self {
            Ty::Int { .. }
            | Ty::Sym { user: false }
            | Ty::Ptr { .. }
            | Ty::Username
            | Ty::Bool
            | Ty::Errno
            | Ty::Syscall
            | Ty::Disk
            | Ty::CgroupPath(_)
            | Ty::Strftime(_) => 8,
            Ty::Inet => 24,
            Ty::Buf(n) => 8 + n.div_ceil(8) * 8,
            Ty::Stack { user: false, .. } => 8,
            Ty::Stack { user: true, .. } | Ty::Sym { user: true } => 16,
            Ty::Str(n) => n.div_ceil(8) * 8,
            Ty::Tuple(items) => items.iter().map(Ty::stored_size).sum(),
        }
    }

    /// Held in a register: integers and pointers.
    pub fn is_int(&self) -> bool {
        matches!(self, Ty::Int { .. } | Ty::Ptr { .. } | Ty::Bool)
    }

    pub fn name(&self) -> String {
        match self {
            Ty::Int { size, signed } => {
                format!("{}int{}", if *signed { "" } else { "u" }, size * 8)
            }
            Ty::Str(n) => format!("string[{n}]"),
            Ty::Tuple(t) => format!(
                "({})",
                t.iter().map(Ty::name).collect::<Vec<_>>().join(", ")
            ),
            Ty::Stack { user, .. } => if *user { "ustack" } else { "kstack" }.into(),
            Ty::Sym { user } => if *user { "usym" } else { "ksym" }.into(),
            Ty::Ptr { user, .. } => if *user { "user pointer" } else { "pointer" }.into(),
            Ty::Username => "username".into(),
            Ty::Strftime(_) => "timestamp".into(),
            Ty::Inet => "inet".into(),
            Ty::Buf(n) => format!("buffer[{n}]"),
            Ty::Bool => "bool".into(),
            Ty::Errno => "strerror".into(),
            Ty::Syscall => "syscall_name".into(),
            Ty::Disk => "disk_name".into(),
            Ty::CgroupPath(_) => "cgroup_path".into(),
        }
    }
}

/// What a map holds, from how the script assigns it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MapKind {
    /// `@x = expr`.
    Scalar(Ty),
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Stats,
    /// `hist(x[, bits])`: power-of-two buckets, each power split into
    /// `2^bits` linear ones (bits 0..=5).
    Hist {
        bits: u32,
    },
    /// `lhist(x, min, max, step)`.
    Lhist {
        min: i64,
        max: i64,
        step: i64,
    },
}

impl MapKind {
    /// Aggregations live in per-CPU maps, merged in user space.
    pub fn per_cpu(&self) -> bool {
        !matches!(self, MapKind::Scalar(_))
    }

    /// Bytes of the kernel map's value.
    pub fn value_size(&self) -> usize {
        match self {
            MapKind::Scalar(t) => t.stored_size(),
            MapKind::Min | MapKind::Max | MapKind::Avg | MapKind::Stats => 16,
            _ => 8,
        }
    }

    /// Whether the kernel key has a bucket index after the user's key.
    pub fn bucketed(&self) -> bool {
        matches!(self, MapKind::Hist { .. } | MapKind::Lhist { .. })
    }

    /// [`MapKind::name`] with the parameters that set the buckets.
    pub fn describe(&self) -> String {
        match self {
            MapKind::Hist { bits } => format!("hist(…, {bits})"),
            MapKind::Lhist { min, max, step } => format!("lhist(…, {min}, {max}, {step})"),
            k => k.name().to_string(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            MapKind::Scalar(_) => "a value",
            MapKind::Count => "count()",
            MapKind::Sum => "sum()",
            MapKind::Min => "min()",
            MapKind::Max => "max()",
            MapKind::Avg => "avg()",
            MapKind::Stats => "stats()",
            MapKind::Hist { .. } => "hist()",
            MapKind::Lhist { .. } => "lhist()",
        }
    }
}

/// One field of a tracepoint's record (its tracefs `format` file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpField {
    pub name: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
    /// `char name[N]`: a string held in the record.
    pub char_array: bool,
    /// `__data_loc char[] name`: a string elsewhere in the record.
    pub data_loc: bool,
    /// The C type as declared, without the name (`const char *`,
    /// `struct sk_buff *`, `u8[16]` for arrays).
    pub ctype: String,
}

/// Parses a tracefs `format` file into its fields (the common ones
/// included; bpftrace hides them from `args` but they are harmless).
pub fn parse_format(text: &str) -> Vec<TpField> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = rest.split(';').map(str::trim);
        let (Some(decl), Some(off), Some(size), signed) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let num = |s: &str, key: &str| -> Option<u32> { s.strip_prefix(key)?.trim().parse().ok() };
        let (Some(offset), Some(size)) = (num(off, "offset:"), num(size, "size:")) else {
            continue;
        };
        let signed = signed.and_then(|s| num(s, "signed:")).unwrap_or(0) == 1;
        let data_loc = decl.starts_with("__data_loc");
        // The name: the last identifier before an array suffix.
        let base = decl.split('[').next().unwrap_or(decl).trim();
        let name = base
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_string();
        let name = if data_loc {
            // `__data_loc char[] filename`
            decl.rsplit(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string()
        } else {
            name
        };
        let char_array = !data_loc && decl.contains('[') && decl.starts_with("char");
        let ctype = match base.strip_suffix(name.as_str()) {
            // An array keeps its bounds: `__u8[16]`.
            Some(t) if !data_loc => match decl.find('[') {
                Some(at) => format!("{}{}", t.trim(), &decl[at..]),
                None => t.trim().to_string(),
            },
            _ => String::new(),
        };
        out.push(TpField {
            ctype,
            name,
            offset,
            size,
            signed,
            char_array,
            data_loc,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracefs_formats() {
        let f = parse_format(
            "name: sched_process_exec\nID: 365\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;\n\tfield:const char * filename2;\toffset:32;\tsize:8;\tsigned:0;\n",
        );
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["common_type", "filename", "pid", "comm", "filename2"]
        );
        assert!(f[1].data_loc && !f[1].char_array);
        assert!(f[2].signed && f[2].size == 4 && f[2].offset == 12);
        assert!(f[3].char_array && f[3].size == 16);
        assert_eq!(f[4].ctype, "const char *");
        assert_eq!(f[2].ctype, "pid_t");
    }
}
