//! Writing an [`Object`] as a BPF ELF object, laid out as clang and libbpf
//! lay one out, so that [`crate::load`] (and libbpf) read it back: one
//! section per program section name holding its programs as global
//! functions; the functions they call (`bpf_loop` and
//! `bpf_for_each_map_elem` callbacks, bpf-to-bpf calls) as static
//! functions in `.text`, reached by relocations; BTF-defined maps in
//! `.maps`; global data in `.data` sections (one map each, reached
//! through the section's symbol); `license`; `.BTF`; `.BTF.ext` with
//! every function and line record; and whatever extra sections the
//! caller adds (not loaded, e.g. a compiler's metadata).
//!
//! What an object made by a compiler has is supported; what only comes
//! from reading someone else's ELF (legacy map sections, `.rodata`/`.bss`,
//! externs, CO-RE records) is an error naming it, never dropped.

use std::collections::BTreeMap;

use crate::btf::{FuncInfo, LineInfo};
use crate::{MapOrigin, ObjError, Object};
use oxbpf_isa::RawInsn;

const LDDW: u8 = 0x18;
const CALL: u8 = 0x85;
const PSEUDO_CALL: u8 = 1;
const PSEUDO_FUNC: u8 = 4;
const PSEUDO_MAP_IDX: u8 = 5;
const PSEUDO_MAP_IDX_VALUE: u8 = 6;
const R_BPF_64_64: u32 = 1;
const R_BPF_64_32: u32 = 10;

fn invalid(message: impl Into<String>) -> ObjError {
    ObjError::Invalid {
        message: message.into(),
    }
}

/// A symbol of the ELF being written.
struct Sym {
    name: String,
    /// The section by name.
    section: String,
    value: u64,
    size: u64,
    func: bool,
    global: bool,
    /// A section's own symbol (`STT_SECTION`).
    of_section: bool,
}

impl Sym {
    /// The symbol of `.text` itself (`STT_SECTION`), which references to
    /// static functions go through, as clang writes them.
    fn text() -> Sym {
        Sym::section(".text")
    }

    /// The symbol of section `name` itself.
    fn section(name: &str) -> Sym {
        Sym {
            name: String::new(),
            section: name.into(),
            value: 0,
            size: 0,
            func: false,
            global: false,
            of_section: true,
        }
    }
}

/// A code section being assembled.
#[derive(Default)]
struct CodeSec {
    insns: Vec<RawInsn>,
    relocs: Vec<Rel>,
    funcs: Vec<FuncInfo>,
    lines: Vec<LineInfo>,
}

/// One function of a program: its instructions `[start, end)` in the
/// program, where they go (section name) and at which instruction.
struct Placed {
    start: usize,
    end: usize,
    section: String,
    at: usize,
}

/// Writes `obj` as an ELF relocatable object with the `extra` sections
/// appended (name, contents; not allocated).
pub fn to_elf(obj: &Object, extra: &[(&str, &[u8])]) -> Result<Vec<u8>, ObjError> {
    let btf = obj
        .btf
        .as_ref()
        .ok_or_else(|| invalid("an object is written with its BTF (it has none)"))?;
    if !obj.kconfig.is_empty() || !obj.ksyms.is_empty() {
        return Err(invalid(
            "writing objects with __kconfig or __ksym externs is not supported",
        ));
    }
    // ELF and BTF strings end at a NUL: a name holding one would come back
    // as another name.
    let names = obj
        .programs
        .iter()
        .flat_map(|p| [&p.name, &p.section])
        .chain(obj.maps.iter().map(|m| &m.name));
    if let Some(n) = names.into_iter().find(|n| n.contains('\0')) {
        return Err(invalid(format!("the name {n:?} contains a NUL byte")));
    }
    let mut btf = btf.to_builder();
    // Code sections in order of first use (.text goes last when written),
    // and where each is by name.
    let mut code: Vec<(String, CodeSec)> = Vec::new();
    let mut code_index: BTreeMap<String, usize> = BTreeMap::new();
    // Symbol 0 is `.text`'s own; dropped when there is no `.text`.
    let mut syms: Vec<Sym> = vec![Sym::text()];
    const TEXT_SYM: usize = 0;
    let map_syms: Vec<usize> = obj
        .maps
        .iter()
        .map(|m| match m.origin {
            MapOrigin::BtfAt { offset, size } => {
                syms.push(Sym {
                    name: m.name.clone(),
                    section: ".maps".into(),
                    value: offset,
                    size,
                    func: false,
                    global: true,
                    of_section: false,
                });
                Ok(syms.len() - 1)
            }
            // Global data: a section of its own, reached through its
            // section symbol (the offset in the instruction, as clang
            // writes it).
            MapOrigin::Data { ref section }
                if section.starts_with(".data") && m.max_entries == 1 && m.key_size == 4 =>
            {
                syms.push(Sym::section(section));
                Ok(syms.len() - 1)
            }
            _ => Err(invalid(format!(
                "map `{}`: only BTF-defined maps (`.maps`) and `.data` sections are written",
                m.name
            ))),
        })
        .collect::<Result<_, _>>()?;
    let btf_maps = obj
        .maps
        .iter()
        .any(|m| matches!(m.origin, MapOrigin::BtfAt { .. }));
    if btf_maps && btf.get_datasec(".maps").is_none() {
        return Err(invalid(
            "the object's maps need a BTF DATASEC `.maps` describing them",
        ));
    }
    let maps_size = obj
        .maps
        .iter()
        .filter_map(|m| match m.origin {
            MapOrigin::BtfAt { offset, size } => Some(offset + size),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    for p in &obj.programs {
        if !p.extern_calls.is_empty() || !p.extern_loads.is_empty() || !p.core_relos.is_empty() {
            return Err(invalid(format!(
                "program `{}`: writing externs or CO-RE records is not supported",
                p.name
            )));
        }
        if p.section.is_empty() || p.section == ".text" {
            return Err(invalid(format!(
                "program `{}` needs a section name other than .text",
                p.name
            )));
        }
        // The program's functions: the main one, then one per further
        // function record.
        let mut starts: Vec<(usize, u32)> = p
            .func_info
            .iter()
            .map(|f| (f.insn as usize, f.type_id))
            .collect();
        starts.sort();
        starts.dedup_by_key(|s| s.0);
        if starts.first().map(|s| s.0) != Some(0) {
            return Err(invalid(format!(
                "program `{}` has no function record for its first instruction",
                p.name
            )));
        }
        let mut placed = Vec::new();
        for (k, &(start, type_id)) in starts.iter().enumerate() {
            let end = starts.get(k + 1).map_or(p.insns.len(), |s| s.0);
            if start >= end || end > p.insns.len() {
                return Err(invalid(format!(
                    "program `{}`: function record at {start} is outside it",
                    p.name
                )));
            }
            let section = if k == 0 { p.section.as_str() } else { ".text" };
            let si = *code_index.entry(section.to_string()).or_insert_with(|| {
                code.push((section.to_string(), CodeSec::default()));
                code.len() - 1
            });
            let sec = &mut code[si].1;
            let at = sec.insns.len();
            sec.insns.extend_from_slice(&p.insns[start..end]);
            sec.funcs.push(FuncInfo {
                insn: at as u32,
                type_id,
            });
            let name = if k == 0 {
                p.name.clone()
            } else {
                btf.get(type_id)
                    .map(|t| t.name.clone())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| format!("{}_f{k}", p.name))
            };
            syms.push(Sym {
                name,
                section: section.to_string(),
                value: at as u64 * 8,
                size: (end - start) as u64 * 8,
                func: true,
                global: k == 0,
                of_section: false,
            });
            placed.push(Placed {
                start,
                end,
                section: section.to_string(),
                at,
            });
        }
        let where_is = |i: usize| placed.iter().find(|f| f.start <= i && i < f.end);
        for l in &p.line_info {
            let f = where_is(l.insn as usize).ok_or_else(|| {
                invalid(format!(
                    "program `{}`: line record at {} is outside it",
                    p.name, l.insn
                ))
            })?;
            code[code_index[&f.section]].1.lines.push(LineInfo {
                insn: (f.at + l.insn as usize - f.start) as u32,
                ..l.clone()
            });
        }
        // References between functions and to maps.
        let mut i = 0;
        while i < p.insns.len() {
            let insn = p.insns[i];
            let f = where_is(i).expect("every instruction is in a function");
            let pos = f.at + i - f.start;
            let is_lddw = insn.code == LDDW;
            let sec = &mut code[code_index[&f.section]].1;
            if is_lddw && insn.src == PSEUDO_MAP_IDX {
                let m = map_syms.get(insn.imm as usize).ok_or_else(|| {
                    invalid(format!(
                        "program `{}` instruction {i}: map {} does not exist",
                        p.name, insn.imm
                    ))
                })?;
                sec.insns[pos].src = 0;
                sec.insns[pos].imm = 0;
                sec.relocs.push((pos as u64 * 8, *m, R_BPF_64_64));
            } else if is_lddw && insn.src == PSEUDO_MAP_IDX_VALUE {
                let m = obj
                    .maps
                    .get(insn.imm as usize)
                    .filter(|m| matches!(m.origin, MapOrigin::Data { .. }))
                    .ok_or_else(|| {
                        invalid(format!(
                            "program `{}` instruction {i}: map {} is no global data",
                            p.name, insn.imm
                        ))
                    })?;
                let off = p.insns.get(i + 1).map_or(0, |n| n.imm);
                if off < 0 || off as u32 >= m.value_size {
                    return Err(invalid(format!(
                        "program `{}` instruction {i}: offset {off} is outside `{}`",
                        p.name, m.name
                    )));
                }
                sec.insns[pos].src = 0;
                sec.insns[pos].imm = off;
                sec.insns[pos + 1].imm = 0;
                sec.relocs
                    .push((pos as u64 * 8, map_syms[insn.imm as usize], R_BPF_64_64));
            } else if is_lddw && insn.src != 0 && insn.src != PSEUDO_FUNC {
                return Err(invalid(format!(
                    "program `{}` instruction {i}: lddw of kind {} is not written",
                    p.name, insn.src
                )));
            } else if (insn.code == CALL && insn.src == PSEUDO_CALL)
                || (is_lddw && insn.src == PSEUDO_FUNC)
            {
                let target = i as i64 + insn.imm as i64 + 1;
                let callee = usize::try_from(target)
                    .ok()
                    .and_then(where_is)
                    .ok_or_else(|| {
                        invalid(format!(
                            "program `{}` instruction {i}: call target {target} is outside it",
                            p.name
                        ))
                    })?;
                let new_target = callee.at + target as usize - callee.start;
                // Static functions are in .text, reached through its
                // section symbol (libbpf's rule): a call's immediate is the
                // target instruction less one, an address's the byte offset.
                if is_lddw {
                    sec.insns[pos].src = 0;
                    sec.insns[pos].imm = (new_target * 8) as i32;
                    sec.relocs.push((pos as u64 * 8, TEXT_SYM, R_BPF_64_64));
                } else if callee.section == f.section {
                    sec.insns[pos].imm = (new_target as i64 - pos as i64 - 1) as i32;
                } else {
                    sec.insns[pos].imm = new_target as i32 - 1;
                    sec.relocs.push((pos as u64 * 8, TEXT_SYM, R_BPF_64_32));
                }
            }
            i += if is_lddw { 2 } else { 1 };
        }
    }
    // Section order: the program sections, .text, then the rest.
    let mut order: Vec<usize> = (0..code.len()).collect();
    order.sort_by_key(|&i| (code[i].0 == ".text", i));
    let mut w = ElfWriter::default();
    let mut numbers: BTreeMap<String, u16> = BTreeMap::new();
    let mut ext_funcs = Vec::new();
    let mut ext_lines = Vec::new();
    let mut code_secs = Vec::new();
    for &i in &order {
        let (name, sec) = &code[i];
        let bytes: Vec<u8> = sec.insns.iter().flat_map(|x| x.to_bytes()).collect();
        let n = w.section(name, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 8, bytes);
        numbers.insert(name.clone(), n);
        code_secs.push((n, i));
        let name_off = btf.string(name);
        if !sec.funcs.is_empty() {
            ext_funcs.push((name_off, sec.funcs.clone()));
        }
        if !sec.lines.is_empty() {
            let mut lines = sec.lines.clone();
            lines.sort_by_key(|l| l.insn);
            ext_lines.push((name_off, lines));
        }
    }
    if maps_size > 0 {
        let n = w.section(
            ".maps",
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            8,
            vec![0; maps_size as usize],
        );
        numbers.insert(".maps".into(), n);
    }
    for m in &obj.maps {
        if let MapOrigin::Data { section } = &m.origin {
            let mut bytes = m.data.clone().unwrap_or_default();
            bytes.resize(m.value_size as usize, 0);
            let n = w.section(section, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 8, bytes);
            numbers.insert(section.clone(), n);
        }
    }
    if let Some(l) = &obj.license {
        let mut bytes = l.as_bytes().to_vec();
        bytes.push(0);
        let n = w.section("license", SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 1, bytes);
        syms.push(Sym {
            name: "_license".into(),
            section: "license".into(),
            value: 0,
            size: l.len() as u64 + 1,
            func: false,
            global: true,
            of_section: false,
        });
        numbers.insert("license".into(), n);
    }
    let btf = btf
        .finish()
        .map_err(|e| invalid(format!("the object's BTF: {e}")))?;
    w.section(".BTF", SHT_PROGBITS, 0, 4, btf.raw.clone());
    w.section(
        ".BTF.ext",
        SHT_PROGBITS,
        0,
        4,
        btf_ext(&ext_funcs, &ext_lines),
    );
    for (name, data) in extra {
        w.section(name, SHT_PROGBITS, 0, 8, data.to_vec());
    }
    // Symbols: locals first, as ELF wants.
    let mut sym_order: Vec<usize> = (0..syms.len())
        .filter(|&i| i != TEXT_SYM || numbers.contains_key(".text"))
        .collect();
    sym_order.sort_by_key(|&i| syms[i].global);
    let mut elf_index = vec![0usize; syms.len()];
    for (k, &i) in sym_order.iter().enumerate() {
        elf_index[i] = k + 1;
        let s = &syms[i];
        let shndx = *numbers
            .get(&s.section)
            .ok_or_else(|| invalid(format!("symbol `{}`: no section {}", s.name, s.section)))?;
        let kind = if s.of_section {
            STT_SECTION
        } else if s.func {
            STT_FUNC
        } else {
            STT_OBJECT
        };
        w.symbol(&s.name, shndx, s.value, s.size, kind, s.global);
    }
    for (n, i) in code_secs {
        let sec = &code[i].1;
        if sec.relocs.is_empty() {
            continue;
        }
        let rels: Vec<Rel> = sec
            .relocs
            .iter()
            .map(|&(off, sym, ty)| (off, elf_index[sym], ty))
            .collect();
        w.relocations(n, rels);
    }
    Ok(w.finish())
}

/// `.BTF.ext` (version 1, with clang's 32-byte header, no CO-RE records): function and line records per section, instruction offsets in
/// bytes.
fn btf_ext(funcs: &[(u32, Vec<FuncInfo>)], lines: &[(u32, Vec<LineInfo>)]) -> Vec<u8> {
    // A part without records is empty (length 0), and a section without
    // records is left out: libbpf refuses a record size with no records
    // after it and a section with none.
    let mut f = Vec::new();
    f.extend_from_slice(&8u32.to_le_bytes());
    for (sec, recs) in funcs.iter().filter(|(_, r)| !r.is_empty()) {
        f.extend_from_slice(&sec.to_le_bytes());
        f.extend_from_slice(&(recs.len() as u32).to_le_bytes());
        for r in recs {
            f.extend_from_slice(&(r.insn * 8).to_le_bytes());
            f.extend_from_slice(&r.type_id.to_le_bytes());
        }
    }
    if f.len() == 4 {
        f.clear();
    }
    let mut l = Vec::new();
    l.extend_from_slice(&16u32.to_le_bytes());
    for (sec, recs) in lines.iter().filter(|(_, r)| !r.is_empty()) {
        l.extend_from_slice(&sec.to_le_bytes());
        l.extend_from_slice(&(recs.len() as u32).to_le_bytes());
        for r in recs {
            for w in [r.insn * 8, r.file_off, r.text_off, r.line_col] {
                l.extend_from_slice(&w.to_le_bytes());
            }
        }
    }
    if l.len() == 4 {
        l.clear();
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    let core: [u8; 0] = [];
    for w in [
        32u32,
        0,
        f.len() as u32,
        f.len() as u32,
        l.len() as u32,
        (f.len() + l.len()) as u32,
        core.len() as u32,
    ] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&f);
    out.extend_from_slice(&l);
    out.extend_from_slice(&core);
    out
}

const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_REL: u32 = 9;
const SHF_WRITE: u64 = 1;
const SHF_ALLOC: u64 = 2;
const SHF_EXECINSTR: u64 = 4;
const EM_BPF: u16 = 247;
const STT_OBJECT: u8 = 1;
const STT_FUNC: u8 = 2;
const STT_SECTION: u8 = 3;

/// A relocation: (byte offset, symbol index, type).
type Rel = (u64, usize, u32);

struct SecOut {
    name: String,
    kind: u32,
    flags: u64,
    align: u64,
    data: Vec<u8>,
    link: u32,
    info: u32,
    entsize: u64,
}

/// A minimal ELF64 little-endian relocatable writer: sections, one symbol
/// table, REL relocations.
#[derive(Default)]
struct ElfWriter {
    /// Sections after the null one.
    secs: Vec<SecOut>,
    /// Symbol table entries after the null one: (name, shndx, value,
    /// size, info).
    syms: Vec<(String, u16, u64, u64, u8)>,
    /// (target section number, its relocations).
    rels: Vec<(u16, Vec<Rel>)>,
}

impl ElfWriter {
    /// Adds a section; its number.
    fn section(&mut self, name: &str, kind: u32, flags: u64, align: u64, data: Vec<u8>) -> u16 {
        self.secs.push(SecOut {
            name: name.to_string(),
            kind,
            flags,
            align,
            data,
            link: 0,
            info: 0,
            entsize: 0,
        });
        self.secs.len() as u16
    }

    fn symbol(&mut self, name: &str, shndx: u16, value: u64, size: u64, kind: u8, global: bool) {
        let info = (u8::from(global) << 4) | kind;
        self.syms.push((name.to_string(), shndx, value, size, info));
    }

    fn relocations(&mut self, target: u16, rels: Vec<Rel>) {
        self.rels.push((target, rels));
    }

    fn finish(mut self) -> Vec<u8> {
        // .strtab, .symtab, .rel*, .shstrtab after the content sections.
        let mut strtab = vec![0u8];
        let mut symtab = vec![0u8; 24];
        let first_global = 1 + self.syms.iter().take_while(|s| s.4 >> 4 == 0).count();
        for (name, shndx, value, size, info) in &self.syms {
            let off = strtab.len() as u32;
            strtab.extend_from_slice(name.as_bytes());
            strtab.push(0);
            symtab.extend_from_slice(&off.to_le_bytes());
            symtab.push(*info);
            symtab.push(0);
            symtab.extend_from_slice(&shndx.to_le_bytes());
            symtab.extend_from_slice(&value.to_le_bytes());
            symtab.extend_from_slice(&size.to_le_bytes());
        }
        let strtab_n = self.section(".strtab", SHT_STRTAB, 0, 1, strtab);
        let symtab_n = self.section(".symtab", SHT_SYMTAB, 0, 8, symtab);
        {
            let s = &mut self.secs[symtab_n as usize - 1];
            s.link = u32::from(strtab_n);
            s.info = first_global as u32;
            s.entsize = 24;
        }
        for (target, rels) in std::mem::take(&mut self.rels) {
            let mut data = Vec::new();
            for (off, sym, ty) in rels {
                data.extend_from_slice(&off.to_le_bytes());
                data.extend_from_slice(&(((sym as u64) << 32) | u64::from(ty)).to_le_bytes());
            }
            let name = format!(".rel{}", self.secs[target as usize - 1].name);
            let n = self.section(&name, SHT_REL, 0, 8, data);
            let s = &mut self.secs[n as usize - 1];
            s.link = u32::from(symtab_n);
            s.info = u32::from(target);
            s.entsize = 16;
        }
        let mut shstrtab = vec![0u8];
        let mut name_offs = Vec::new();
        for s in &self.secs {
            name_offs.push(shstrtab.len() as u32);
            shstrtab.extend_from_slice(s.name.as_bytes());
            shstrtab.push(0);
        }
        name_offs.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(b".shstrtab\0");
        let shstrndx = self.section(".shstrtab", SHT_STRTAB, 0, 1, shstrtab);
        // Layout: header, section contents, section headers.
        let mut out = vec![0u8; 64];
        let mut offsets = Vec::new();
        for s in &self.secs {
            let align = s.align.max(1) as usize;
            while !out.len().is_multiple_of(align) {
                out.push(0);
            }
            offsets.push(out.len() as u64);
            out.extend_from_slice(&s.data);
        }
        while !out.len().is_multiple_of(8) {
            out.push(0);
        }
        let shoff = out.len() as u64;
        out.extend_from_slice(&[0u8; 64]);
        for (k, s) in self.secs.iter().enumerate() {
            let mut h = Vec::with_capacity(64);
            h.extend_from_slice(&name_offs[k].to_le_bytes());
            h.extend_from_slice(&s.kind.to_le_bytes());
            h.extend_from_slice(&s.flags.to_le_bytes());
            h.extend_from_slice(&0u64.to_le_bytes());
            h.extend_from_slice(&offsets[k].to_le_bytes());
            h.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
            h.extend_from_slice(&s.link.to_le_bytes());
            h.extend_from_slice(&s.info.to_le_bytes());
            h.extend_from_slice(&s.align.to_le_bytes());
            h.extend_from_slice(&s.entsize.to_le_bytes());
            out.extend_from_slice(&h);
        }
        let nsecs = self.secs.len() as u16 + 1;
        let mut hdr = Vec::with_capacity(64);
        hdr.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        hdr.extend_from_slice(&[0u8; 8]);
        hdr.extend_from_slice(&1u16.to_le_bytes()); // ET_REL
        hdr.extend_from_slice(&EM_BPF.to_le_bytes());
        hdr.extend_from_slice(&1u32.to_le_bytes());
        hdr.extend_from_slice(&0u64.to_le_bytes()); // entry
        hdr.extend_from_slice(&0u64.to_le_bytes()); // phoff
        hdr.extend_from_slice(&shoff.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes()); // flags
        hdr.extend_from_slice(&64u16.to_le_bytes());
        hdr.extend_from_slice(&0u16.to_le_bytes());
        hdr.extend_from_slice(&0u16.to_le_bytes());
        hdr.extend_from_slice(&64u16.to_le_bytes());
        hdr.extend_from_slice(&nsecs.to_le_bytes());
        hdr.extend_from_slice(&shstrndx.to_le_bytes());
        out[..64].copy_from_slice(&hdr);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::Kind;
    use crate::btfbuild::Builder;
    use crate::{MapDef, ProgramType};

    use RawInsn as I;

    /// A program that looks a map up and passes a callback to
    /// bpf_loop, with a map and BTF for both functions.
    fn object() -> Object {
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
        let proto = b.add_kind(
            "",
            Kind::FuncProto {
                ret: int,
                params: vec![],
            },
        );
        let main = b.add_kind("prog", Kind::Func { proto, linkage: 1 });
        let cb = b.add_kind("cb", Kind::Func { proto, linkage: 0 });
        // struct { __uint(type, 2); __uint(key_size, 4); __uint(value_size,
        // 8); __uint(max_entries, 1); } m SEC(".maps");
        let members = [
            ("type", 2),
            ("key_size", 4),
            ("value_size", 8),
            ("max_entries", 1),
        ]
        .iter()
        .enumerate()
        .map(|(k, &(name, n))| {
            let a = b.add_kind(
                "",
                Kind::Array {
                    elem: int,
                    index: int,
                    nelems: n,
                },
            );
            crate::btf::Member {
                name: name.into(),
                type_id: b.add_kind("", Kind::Ptr { target: a }),
                offset: 64 * k as u32,
                bitfield_size: 0,
            }
        })
        .collect();
        let def = b.add_kind("", Kind::Struct { size: 32, members });
        let var = b.add_kind(
            "m",
            Kind::Var {
                target: def,
                linkage: 1,
            },
        );
        b.add_kind(
            ".maps",
            Kind::Datasec {
                size: 32,
                vars: vec![crate::btf::VarSecInfo {
                    type_id: var,
                    offset: 0,
                    size: 32,
                }],
            },
        );
        let mut o = Object::from_raw_program(
            "prog",
            vec![
                I::new(LDDW, 1, PSEUDO_MAP_IDX, 0, 0),
                I::new(0, 0, 0, 0, 0),
                I::new(0xb7, 1, 0, 0, 4),           // r1 = 4
                I::new(LDDW, 2, PSEUDO_FUNC, 0, 3), // r2 = cb (insn 7)
                I::new(0, 0, 0, 0, 0),
                I::new(0x85, 0, 0, 0, 181), // call bpf_loop
                I::new(0x95, 0, 0, 0, 0),
                I::new(0xb7, 0, 0, 0, 0), // cb: r0 = 0
                I::new(0x95, 0, 0, 0, 0),
            ],
        );
        let p = &mut o.programs[0];
        p.section = "xdp".into();
        p.kind = ProgramType::Xdp;
        p.func_info = vec![
            FuncInfo {
                insn: 0,
                type_id: main,
            },
            FuncInfo {
                insn: 7,
                type_id: cb,
            },
        ];
        o.maps.push(MapDef {
            name: "m".into(),
            map_type: 2,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            flags: 0,
            origin: MapOrigin::BtfAt {
                offset: 0,
                size: 32,
            },
            pinning: 0,
            inner: None,
            init_slots: Vec::new(),
            data: None,
            btf_key_type_id: 0,
            btf_value_type_id: 0,
        });
        o.btf = Some(b.finish().unwrap());
        o
    }

    #[test]
    fn written_objects_load_back_with_their_calls_and_maps() {
        let o = object();
        let bytes = to_elf(&o, &[(".note.x", b"hello")]).unwrap();
        let back = crate::load(&bytes).unwrap();
        assert_eq!(back.programs.len(), 1);
        let p = &back.programs[0];
        assert_eq!((p.name.as_str(), p.section.as_str()), ("prog", "xdp"));
        assert_eq!(p.insns, o.programs[0].insns);
        assert_eq!(p.func_info, o.programs[0].func_info);
        assert_eq!(back.maps.len(), 1);
        assert_eq!(back.maps[0].spec(), o.maps[0].spec());
        assert_eq!(back.license.as_deref(), Some("GPL"));
        let view = crate::elf::parse(&bytes).unwrap();
        assert_eq!(view.section_by_name(".note.x").unwrap().data, b"hello");
    }

    #[test]
    fn what_cannot_be_written_is_named() {
        let mut o = object();
        o.btf = None;
        assert!(to_elf(&o, &[]).unwrap_err().to_string().contains("BTF"));
        let mut o = object();
        o.maps[0].origin = MapOrigin::Legacy {
            section: "maps".into(),
            offset: 0,
            inner_idx: None,
        };
        assert!(to_elf(&o, &[]).unwrap_err().to_string().contains("map `m`"));
        let mut o = object();
        o.programs[0].func_info.remove(0);
        assert!(
            to_elf(&o, &[])
                .unwrap_err()
                .to_string()
                .contains("first instruction")
        );
        let mut o = object();
        o.programs[0].section = "xdp\0x".into();
        assert!(to_elf(&o, &[]).unwrap_err().to_string().contains("NUL"));
        let mut o = object();
        o.programs[0].insns[0].imm = 9;
        assert!(to_elf(&o, &[]).unwrap_err().to_string().contains("map 9"));
    }
}
