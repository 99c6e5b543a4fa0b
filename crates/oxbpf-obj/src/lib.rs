//! # oxbpf-obj: BPF ELF objects
//!
//! Reads ELF64 little-endian BPF objects as clang and libbpf produce them.
//! This crate does no syscalls and no IO beyond the bytes it is given; every
//! malformed input is an [`ObjError`] naming the place, never a panic.
//!
//! [`load`] builds an [`Object`]: programs (by section and function symbol,
//! `.text` subprograms linked in), maps (legacy `maps` sections in every
//! layout, BTF `.maps`, global data as single-entry arrays), license,
//! version and BTF. [`code_sections`] is the raw view the disassembler uses.
#![forbid(unsafe_code)]

pub mod btf;
pub mod btfbuild;
pub mod btfdump;
pub mod btfindex;
pub mod btfvalue;
pub mod core;
pub mod elf;
pub mod globals;
mod loader;
pub mod progtype;
pub mod write;

use object::{Object as _, ObjectSection, ObjectSymbol, SectionKind};

pub use btf::Btf;
pub use oxbpf_isa::RawInsn;
pub use progtype::ProgramType;

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjError {
    #[error("{message}")]
    Invalid { message: String },
    #[error("symbol {index}: {message}")]
    Symbol { index: usize, message: String },
    #[error("section `{section}`, relocation at {offset:#x}: {message}")]
    Relocation {
        section: String,
        offset: u64,
        message: String,
    },
    #[error("map `{name}`: {message}")]
    Map { name: String, message: String },
    #[error(".BTF: {message}")]
    Btf { message: String },
    #[error("program `{program}` (section `{section}`): {message}")]
    Program {
        program: String,
        section: String,
        message: String,
    },
    /// The file is not a well-formed ELF file (the parser's reason; kept
    /// as text so that the reason is printed once, not again as a cause).
    #[error("not a valid ELF object: {reason}")]
    Elf { reason: String },
    #[error("ELF machine is {machine:#x}, not BPF (247)")]
    NotBpf { machine: u16 },
    #[error("section `{section}`: {message}")]
    Section { section: String, message: String },
}

impl From<object::Error> for ObjError {
    fn from(e: object::Error) -> ObjError {
        ObjError::Elf {
            reason: e.to_string(),
        }
    }
}

/// A function symbol inside a code section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// Byte offset within the section.
    pub offset: u64,
    pub size: u64,
}

/// One executable section: its name, bytecode and function symbols.
#[derive(Clone, Debug)]
pub struct CodeSection {
    pub name: String,
    pub index: usize,
    pub data: Vec<u8>,
    pub symbols: Vec<Symbol>,
}

/// Returns the executable sections of a BPF ELF object, in file order.
pub fn code_sections(bytes: &[u8]) -> Result<Vec<CodeSection>, ObjError> {
    let file = object::File::parse(bytes)?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(ObjError::NotBpf { machine: 0 });
    }
    // e_machine 0: older LLVM's BPF objects (libbpf accepts them).
    let machine = elf_machine(bytes).unwrap_or(0);
    if file.architecture() != object::Architecture::Bpf && machine != 0 {
        return Err(ObjError::NotBpf { machine });
    }
    let mut out = Vec::new();
    for section in file.sections() {
        if section.kind() != SectionKind::Text {
            continue;
        }
        let name = section
            .name()
            .map_err(|e| ObjError::Invalid {
                message: format!("section {}: invalid name: {e}", section.index().0),
            })?
            .to_string();
        let data = section.data().map_err(|e| ObjError::Section {
            section: name.clone(),
            message: e.to_string(),
        })?;
        if data.len() % 8 != 0 {
            return Err(ObjError::Section {
                section: name,
                message: format!("size {} is not a multiple of 8", data.len()),
            });
        }
        let index = section.index().0;
        let mut symbols: Vec<Symbol> = file
            .symbols()
            .filter(|s| s.section_index() == Some(section.index()))
            .filter(|s| s.kind() == object::SymbolKind::Text)
            .map(|s| Symbol {
                name: s.name().unwrap_or("").to_string(),
                offset: s.address(),
                size: s.size(),
            })
            .collect();
        symbols.sort_by_key(|s| s.offset);
        out.push(CodeSection {
            name,
            index,
            data: data.to_vec(),
            symbols,
        });
    }
    Ok(out)
}

fn elf_machine(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]))
}

/// Where a map definition came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapOrigin {
    /// A legacy `maps` section (`struct bpf_map_def` or iproute2's `bpf_elf_map`).
    Legacy {
        section: String,
        offset: u64,
        /// Inner map index for maps of maps, where the layout has one.
        inner_idx: Option<u32>,
    },
    /// BTF-defined in `.maps` at this offset.
    BtfAt { offset: u64, size: u64 },
    /// An inner map definition (from `__array(values, ...)`).
    Btf,
    /// Global data (`.data`, `.rodata`, `.bss`, ...): one-entry array.
    Data { section: String },
}

/// A map the object declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    /// `enum bpf_map_type` number.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub origin: MapOrigin,
    pub pinning: u32,
    /// Inner map definition of a map of maps.
    pub inner: Option<Box<MapDef>>,
    /// Initial slots of prog arrays / maps of maps: (index, symbol name).
    pub init_slots: Vec<(u32, String)>,
    /// Initial contents of a global-data map.
    pub data: Option<Vec<u8>>,
    /// BTF type ids of the key and value (`__type(key, ...)`), 0 when the
    /// definition gives sizes only. The kernel needs the value type to
    /// find special fields such as `struct bpf_spin_lock`.
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

/// What a map is, as both the user-space maps and the kernel create it:
/// the numbers of its definition (no ELF origin, no initial contents).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    /// `map_extra` (number of hash functions for bloom filters).
    pub map_extra: u64,
    /// Inner map of a map of maps.
    pub inner: Option<Box<MapSpec>>,
    /// BTF type ids of key and value, 0 when unknown.
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

impl MapSpec {
    /// The sizes every loader gives a definition before creating it, as
    /// libbpf does: a ring buffer has no key or value and a power-of-two
    /// size of at least a page; a perf event array gets a slot per CPU
    /// (`ncpus`) unless sized; program arrays and maps of maps hold 4-byte
    /// ids (fds in the kernel).
    pub fn normalized(mut self, ncpus: u32) -> MapSpec {
        use oxbpf_abi::map_type as mt;
        match self.map_type {
            mt::RINGBUF => {
                self.key_size = 0;
                self.value_size = 0;
                self.max_entries = self.max_entries.max(4096).next_power_of_two();
            }
            mt::PERF_EVENT_ARRAY => {
                self.key_size = 4;
                self.value_size = 4;
                if self.max_entries == 0 {
                    self.max_entries = ncpus;
                }
            }
            mt::PROG_ARRAY | mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS => {
                if self.map_type != mt::HASH_OF_MAPS {
                    self.key_size = 4;
                }
                self.value_size = 4;
            }
            _ => {}
        }
        self
    }
}

impl MapDef {
    /// The map's spec (the one conversion from a definition).
    pub fn spec(&self) -> MapSpec {
        MapSpec {
            name: self.name.clone(),
            map_type: self.map_type,
            key_size: self.key_size,
            value_size: self.value_size,
            max_entries: self.max_entries,
            flags: self.flags,
            map_extra: 0,
            inner: self.inner.as_ref().map(|i| Box::new(i.spec())),
            btf_key_type_id: self.btf_key_type_id,
            btf_value_type_id: self.btf_value_type_id,
        }
    }
}

/// A program with its subprograms linked in and relocations applied.
#[derive(Clone, Debug)]
pub struct ProgramDef {
    /// Function symbol name (or the section name when there is none).
    pub name: String,
    pub section: String,
    /// Byte offset of the function in its section.
    pub section_offset: u64,
    pub kind: ProgramType,
    /// Attach target from the section name (`sched/sched_switch`, ...).
    pub attach: Option<String>,
    /// Bytecode; map references use `BPF_PSEUDO_MAP_IDX(_VALUE)` with
    /// indices into [`Object::maps`].
    pub insns: Vec<RawInsn>,
    /// Calls to extern functions (kfuncs), left as kfunc calls with BTF id 0:
    /// (instruction index, function name).
    pub extern_calls: Vec<(usize, String)>,
    /// `lddw` of a `__ksym` extern's address (variable or function), left
    /// as `BPF_PSEUDO_BTF_ID` with id 0: (instruction index, name).
    pub extern_loads: Vec<(usize, String)>,
    /// Source lines (from `.BTF.ext`), by instruction index of `insns`.
    pub line_info: Vec<btf::LineInfo>,
    /// Function records (from `.BTF.ext`), by instruction index of `insns`.
    pub func_info: Vec<btf::FuncInfo>,
    /// CO-RE relocation records, by instruction index of `insns` (applied
    /// against the running kernel's BTF by the kernel backend).
    pub core_relos: Vec<btf::CoreRelo>,
}

impl ProgramDef {
    /// The source line for instruction `insn`: the last record at or before it.
    pub fn line_for(&self, insn: usize) -> Option<&btf::LineInfo> {
        let i = self.line_info.partition_point(|l| l.insn as usize <= insn);
        i.checked_sub(1).map(|i| &self.line_info[i])
    }

    /// The source file the program comes from, if BTF says.
    pub fn source_file(&self) -> Option<&str> {
        self.line_info.first().map(|l| l.file.as_str())
    }
}

/// A loaded BPF object.
#[derive(Clone, Debug)]
pub struct Object {
    pub programs: Vec<ProgramDef>,
    pub maps: Vec<MapDef>,
    pub license: Option<String>,
    pub kernel_version: Option<u32>,
    pub btf: Option<Btf>,
    /// Function, line and CO-RE records from `.BTF.ext`.
    pub btf_ext: Option<btf::BtfExt>,
    /// Section sizes by name (to complete BTF DATASECs for the kernel).
    pub section_sizes: std::collections::HashMap<String, u64>,
    /// Offsets of data symbols: (section, symbol) -> offset.
    pub symbol_offsets: std::collections::HashMap<(String, String), u64>,
    /// `__kconfig` externs, laid out in the `.kconfig` map (index
    /// `kconfig_map`) for the loader to fill before load.
    pub kconfig: Vec<KconfigVar>,
    pub kconfig_map: Option<usize>,
    /// `__ksym` externs: kernel variables and functions, resolved against
    /// the running kernel when the object is loaded.
    pub ksyms: Vec<Ksym>,
}

/// One `extern ... __ksym` symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ksym {
    pub name: String,
    /// Declared `__weak`: may be missing from the kernel (its address is
    /// then 0, which is what `bpf_ksym_exists` tests).
    pub weak: bool,
    pub kind: KsymKind,
}

/// What a `__ksym` extern is, as libbpf tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KsymKind {
    /// A variable with a BTF type (`extern const struct rq runqueues
    /// __ksym;`): its address is a typed pointer (`BPF_PSEUDO_BTF_ID`).
    Typed,
    /// A `void` variable (`extern const void x __ksym;`): its address
    /// from /proc/kallsyms, a plain number.
    Typeless,
    /// A kernel function (kfunc), called by BTF id.
    Func,
}

/// One `extern ... __kconfig` variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KconfigVar {
    pub name: String,
    /// Byte offset in the `.kconfig` map's value.
    pub offset: u32,
    pub size: u32,
    /// Declared `__weak`: may stay unknown (zero).
    pub weak: bool,
    /// What the C type is, for parsing a config value into it.
    pub kind: KconfigKind,
}

/// The C type of a kconfig extern, as libbpf classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KconfigKind {
    /// `bool` (y = 1, n = 0).
    Bool,
    /// `enum libbpf_tristate` (y = 1, m = 2, n = 0).
    Tristate,
    /// `char` (the letter itself: 'y', 'm', 'n').
    Char,
    /// An integer of its size.
    Int { signed: bool },
    /// A `char` array (a string value, NUL-terminated).
    Str,
}

impl Object {
    /// Sets kconfig extern `name` from its textual config value (`y`,
    /// `m`, `n`, a number, or a quoted string); false when the object has
    /// no such extern or the value does not fit its type.
    pub fn set_kconfig(&mut self, name: &str, value: &str) -> bool {
        let Some(v) = self.kconfig.iter().find(|v| v.name == name).cloned() else {
            return false;
        };
        let Some(mi) = self.kconfig_map else {
            return false;
        };
        let bytes: Vec<u8> = match v.kind {
            KconfigKind::Bool | KconfigKind::Tristate | KconfigKind::Char => {
                let b = match (value, v.kind) {
                    ("y", KconfigKind::Char) => b'y',
                    ("m", KconfigKind::Char) => b'm',
                    ("n", KconfigKind::Char) => b'n',
                    ("y", _) | ("1", _) => 1,
                    ("m", KconfigKind::Tristate) => 2,
                    ("n", _) | ("0", _) => 0,
                    _ => return false,
                };
                let mut out = vec![0u8; v.size as usize];
                if let Some(first) = out.first_mut() {
                    *first = b;
                }
                out
            }
            KconfigKind::Int { .. } => {
                let t = value.trim();
                let n = match t.strip_prefix("0x") {
                    Some(h) => i128::from_str_radix(h, 16).ok(),
                    None => t.parse::<i128>().ok(),
                };
                let Some(n) = n else { return false };
                n.to_le_bytes()[..(v.size as usize).min(16)].to_vec()
            }
            KconfigKind::Str => {
                let t = value.trim().trim_matches('"');
                if t.len() >= v.size as usize {
                    return false;
                }
                let mut out = t.as_bytes().to_vec();
                out.resize(v.size as usize, 0);
                out
            }
        };
        let Some(data) = self.maps[mi].data.as_mut() else {
            return false;
        };
        let (a, b) = (v.offset as usize, v.offset as usize + bytes.len());
        if b > data.len() {
            return false;
        }
        data[a..b].copy_from_slice(&bytes);
        true
    }

    /// An object holding one program given as bare instructions (raw
    /// bytecode or assembled text): no maps, no BTF, the type left unset
    /// for the caller's default, and a GPL license (a bare program says
    /// nothing of its license; GPL lets every helper be checked on its
    /// merits).
    pub fn from_raw_program(name: &str, insns: Vec<RawInsn>) -> Object {
        Object {
            programs: vec![ProgramDef {
                name: name.to_string(),
                section: String::new(),
                section_offset: 0,
                kind: ProgramType::Unspec,
                attach: None,
                insns,
                extern_calls: Vec::new(),
                extern_loads: Vec::new(),
                line_info: Vec::new(),
                func_info: Vec::new(),
                core_relos: Vec::new(),
            }],
            maps: Vec::new(),
            license: Some("GPL".into()),
            kernel_version: None,
            btf: None,
            btf_ext: None,
            section_sizes: Default::default(),
            symbol_offsets: Default::default(),
            kconfig: Vec::new(),
            kconfig_map: None,
            ksyms: Vec::new(),
        }
    }

    /// The object's BTF with DATASEC sizes and offsets filled in from the
    /// ELF sections and symbols, as the kernel wants it.
    pub fn btf_for_kernel(&self) -> Option<Vec<u8>> {
        let btf = self.btf.as_ref()?;
        let kconfig_size = self
            .kconfig_map
            .and_then(|i| self.maps.get(i))
            .map(|m| m.value_size);
        Some(btf.with_fixed_datasecs(
            |s| match s {
                ".kconfig" => kconfig_size,
                _ => self.section_sizes.get(s).map(|&n| n as u32),
            },
            |s, v| {
                match s {
                    ".kconfig" => self.kconfig.iter().find(|k| k.name == v).map(|k| k.offset),
                    _ => self
                        .symbol_offsets
                        .get(&(s.to_string(), v.to_string()))
                        .map(|&n| n as u32),
                }
            },
        ))
    }
}

/// Loads a BPF ELF object from bytes.
pub fn load(bytes: &[u8]) -> Result<Object, ObjError> {
    load_view(&elf::parse(bytes)?)
}

/// [`load`] of an ELF already parsed (a caller that also reads sections
/// of its own from it).
pub fn load_view(view: &elf::ElfView) -> Result<Object, ObjError> {
    loader::load(view)
}

/// The kernel's name for a map type number (`hash`, `array`, ...).
pub fn map_type_name(t: u32) -> &'static str {
    oxbpf_abi::MapType::from_u32(t)
        .map(|m| m.name())
        .unwrap_or("unknown")
}

/// Whether the bytes start with the ELF magic.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// The object files named by `paths`: a file as given, a directory walked
/// recursively in name order for files ending in `.o` or starting with the
/// ELF magic (`oxbpf verify DIR`, the benchmarks' corpora).
pub fn object_files(paths: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    fn walk(p: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        if !p.is_dir() {
            out.push(p.to_path_buf());
            return;
        }
        let Ok(rd) = std::fs::read_dir(p) else {
            return;
        };
        let mut entries: Vec<std::path::PathBuf> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            if e.is_dir() {
                walk(&e, out);
            } else if e.extension().is_some_and(|x| x == "o")
                || std::fs::read(&e).is_ok_and(|b| is_elf(&b))
            {
                out.push(e);
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out);
    }
    out
}
