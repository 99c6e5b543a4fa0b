//! A validated view of a BPF ELF file: sections, symbols and relocations,
//! every index and name checked once so later stages never see a bad one.

use std::collections::HashMap;

use object::read::elf::{ElfFile64, FileHeader, SectionHeader, Sym};
use object::{Endianness, Object, ObjectSection, ObjectSymbol, RelocationTarget};

use crate::ObjError;

/// Relocation types of the BPF ELF ABI.
pub const R_BPF_NONE: u32 = 0;
pub const R_BPF_64_64: u32 = 1;
pub const R_BPF_64_ABS64: u32 = 2;
pub const R_BPF_64_ABS32: u32 = 3;
pub const R_BPF_64_NODYLD32: u32 = 4;
pub const R_BPF_64_32: u32 = 10;

const SHT_PROGBITS: u32 = 1;
const SHT_NOBITS: u32 = 8;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;

/// One section.
#[derive(Clone, Debug)]
pub struct Section {
    pub index: usize,
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    /// Contents (zero-filled for SHT_NOBITS).
    pub data: Vec<u8>,
    pub size: u64,
}

impl Section {
    pub fn is_code(&self) -> bool {
        self.sh_type == SHT_PROGBITS && self.flags & SHF_EXECINSTR != 0
    }
    /// Allocated, non-code data (.data, .rodata, .bss, custom data sections).
    pub fn is_data(&self) -> bool {
        (self.sh_type == SHT_PROGBITS || self.sh_type == SHT_NOBITS)
            && self.flags & SHF_ALLOC != 0
            && self.flags & SHF_EXECINSTR == 0
    }
    pub fn is_writable(&self) -> bool {
        self.flags & SHF_WRITE != 0
    }
}

/// Symbol types we care about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymKind {
    Func,
    Object,
    Section,
    NoType,
    Other,
}

/// One symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    pub index: usize,
    pub name: String,
    pub kind: SymKind,
    pub global: bool,
    /// `STB_WEAK` binding (a weak extern may stay unresolved).
    pub weak: bool,
    /// `STV_HIDDEN` or `STV_INTERNAL` visibility (`__hidden`).
    pub hidden: bool,
    /// Section index, or None for undefined/absolute symbols.
    pub section: Option<usize>,
    pub value: u64,
    pub size: u64,
}

/// One relocation against a section.
#[derive(Clone, Copy, Debug)]
pub struct Reloc {
    pub offset: u64,
    pub kind: u32,
    pub symbol: usize,
}

/// The validated file.
#[derive(Debug)]
pub struct ElfView {
    pub sections: Vec<Section>,
    pub symbols: Vec<Symbol>,
    /// Relocations by the index of the section they apply to.
    pub relocs: HashMap<usize, Vec<Reloc>>,
}

impl ElfView {
    pub fn section(&self, index: usize) -> Option<&Section> {
        self.sections.iter().find(|s| s.index == index)
    }

    pub fn section_by_name(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

fn sec_err(section: &str, message: impl Into<String>) -> ObjError {
    ObjError::Section {
        section: section.to_string(),
        message: message.into(),
    }
}

/// Largest section accepted (guards against absurd sizes in NOBITS sections).
const MAX_SECTION: u64 = 256 << 20;

/// Parses and validates the ELF structure.
pub fn parse(bytes: &[u8]) -> Result<ElfView, ObjError> {
    let file = ElfFile64::<Endianness>::parse(bytes)?;
    if !file.is_little_endian() {
        return Err(ObjError::Invalid {
            message: "big-endian BPF objects are not supported".into(),
        });
    }
    let machine = file.elf_header().e_machine(file.endian()).0;
    // Older LLVM wrote e_machine 0 (EM_NONE) into BPF objects; libbpf
    // accepts those too.
    if machine != object::elf::EM_BPF.0 && machine != 0 {
        return Err(ObjError::NotBpf { machine });
    }
    let endian = file.endian();
    let mut sections = Vec::new();
    for s in file.sections() {
        let index = s.index().0;
        let name = s
            .name()
            .map_err(|e| sec_err(&format!("#{index}"), format!("invalid name: {e}")))?
            .to_string();
        let hdr = s.elf_section_header();
        let sh_type = hdr.sh_type(endian).0;
        let flags = hdr.sh_flags(endian).0;
        let size = hdr.sh_size(endian);
        let data = if sh_type == SHT_NOBITS {
            if size > MAX_SECTION {
                return Err(sec_err(&name, format!("size {size} is too large")));
            }
            vec![0u8; size as usize]
        } else if sh_type == SHT_PROGBITS || name == ".BTF" || name == ".BTF.ext" {
            s.data()
                .map_err(|e| sec_err(&name, format!("cannot read contents: {e}")))?
                .to_vec()
        } else {
            Vec::new()
        };
        sections.push(Section {
            index,
            name,
            sh_type,
            flags,
            data,
            size,
        });
    }
    let section_count = file.elf_section_table().len();
    let mut symbols = Vec::new();
    for sym in file.symbols() {
        let index = sym.index().0;
        let name = sym
            .name()
            .map_err(|e| ObjError::Symbol {
                index,
                message: format!("invalid name: {e}"),
            })?
            .to_string();
        let raw = sym.elf_symbol();
        let st_type = raw.st_type();
        let kind = match st_type {
            object::elf::STT_FUNC => SymKind::Func,
            object::elf::STT_OBJECT => SymKind::Object,
            object::elf::STT_SECTION => SymKind::Section,
            object::elf::STT_NOTYPE => SymKind::NoType,
            _ => SymKind::Other,
        };
        let shndx = raw.st_shndx(endian).0 as usize;
        let section = match shndx {
            0 => None,
            0xff00..=0xffff => None,
            i if i < section_count => Some(i),
            i => {
                return Err(ObjError::Symbol {
                    index,
                    message: format!(
                        "`{name}` refers to section {i}, but there are {section_count}"
                    ),
                });
            }
        };
        symbols.push(Symbol {
            index,
            name,
            kind,
            global: raw.st_bind() != object::elf::STB_LOCAL,
            weak: raw.st_bind() == object::elf::STB_WEAK,
            hidden: matches!(
                raw.st_visibility(),
                object::elf::STV_HIDDEN | object::elf::STV_INTERNAL
            ),
            section,
            value: raw.st_value(endian),
            size: raw.st_size(endian),
        });
    }
    let mut relocs: HashMap<usize, Vec<Reloc>> = HashMap::new();
    for s in file.sections() {
        let target = s.index().0;
        let tname = s.name().unwrap_or("?").to_string();
        for (offset, r) in s.relocations() {
            let kind = match r.flags() {
                object::RelocationFlags::Elf { r_type } => r_type.0,
                _ => 0,
            };
            let symbol = match r.target() {
                RelocationTarget::Symbol(i) => i.0,
                RelocationTarget::Absolute => 0,
                _ => {
                    return Err(sec_err(
                        &tname,
                        format!("relocation at {offset:#x} has an unsupported target"),
                    ));
                }
            };
            if symbol != 0 && !symbols.iter().any(|x| x.index == symbol) {
                return Err(sec_err(
                    &tname,
                    format!(
                        "relocation at {offset:#x} refers to symbol {symbol}, which does not exist"
                    ),
                ));
            }
            relocs.entry(target).or_default().push(Reloc {
                offset,
                kind,
                symbol,
            });
        }
    }
    // Relocation tables are checked explicitly: a malformed table, or one
    // whose name does not match the section it applies to (`.rel<name>`,
    // which every toolchain writes), means the headers are corrupt.
    for (i, s) in file.elf_section_table().iter().enumerate() {
        let t = s.sh_type(endian);
        if t == object::elf::SHT_REL || t == object::elf::SHT_RELA {
            let name = sections
                .iter()
                .find(|x| x.index == i)
                .map(|x| x.name.as_str())
                .unwrap_or("");
            let target = s.sh_info(endian) as usize;
            let target_name = sections
                .iter()
                .find(|x| x.index == target)
                .map(|x| x.name.as_str());
            let prefix = if t == object::elf::SHT_REL {
                ".rel"
            } else {
                ".rela"
            };
            match (name.strip_prefix(prefix), target_name) {
                (Some(suffix), Some(tn)) if suffix == tn => {}
                (_, None) => {
                    return Err(sec_err(
                        name,
                        format!("applies to section {target}, which does not exist"),
                    ));
                }
                (_, Some(tn)) => {
                    return Err(sec_err(
                        name,
                        format!("relocation section name does not match its target section `{tn}`"),
                    ));
                }
            }
            let entsize = s.sh_entsize(endian);
            let want = if t == object::elf::SHT_REL { 16 } else { 24 };
            if entsize != want {
                return Err(ObjError::Invalid {
                    message: format!(
                        "relocation section with entry size {entsize} (expected {want})"
                    ),
                });
            }
        }
    }
    Ok(ElfView {
        sections,
        symbols,
        relocs,
    })
}
