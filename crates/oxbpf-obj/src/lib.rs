//! # oxbpf-obj: BPF ELF objects
//!
//! Reads ELF64 little-endian BPF objects as clang and libbpf produce them.
//! This crate does no syscalls and no IO beyond the bytes it is given; every
//! malformed input is an [`ObjError`] naming the place, never a panic.
//!
//! For now it exposes the code sections (what the disassembler needs); the
//! full loader (maps, relocations, BTF) builds on the same parsing.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ObjError {
    #[error("not a valid ELF object: {source}")]
    Elf {
        #[from]
        source: object::Error,
    },
    #[error("ELF machine is {machine:#x}, not BPF (247)")]
    NotBpf { machine: u16 },
    #[error("section `{section}`: {message}")]
    Section { section: String, message: String },
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
    if file.architecture() != object::Architecture::Bpf {
        let machine = elf_machine(bytes).unwrap_or(0);
        return Err(ObjError::NotBpf { machine });
    }
    let mut out = Vec::new();
    for section in file.sections() {
        if section.kind() != SectionKind::Text {
            continue;
        }
        let name = section.name().unwrap_or("<unnamed>").to_string();
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

/// Whether the bytes start with the ELF magic.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}
