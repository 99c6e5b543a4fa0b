//! Building an [`Object`] from a validated ELF view: maps (legacy, BTF and
//! global data), programs (by section and function symbol) with their
//! `.text` subprograms linked in, and relocations applied.
//!
//! Map references are written into the instructions as the kernel's
//! fd-array forms: `lddw rX, map_idx(N)` (`BPF_PSEUDO_MAP_IDX`) and
//! `lddw rX, map_idx_value(N) + off` (`BPF_PSEUDO_MAP_IDX_VALUE`), where N
//! indexes [`Object::maps`]. An engine resolves them when it creates maps.

use std::collections::{BTreeMap, HashMap};

use oxbpf_isa::raw::*;
use oxbpf_isa::{RawInsn, raw_slots};

use crate::btf::{Btf, Kind};
use crate::elf::{ElfView, R_BPF_64_32, R_BPF_64_64, R_BPF_64_ABS64, Reloc, Section, SymKind};
use crate::progtype::{ProgramType, attach_target, from_section_name};
use crate::{MapDef, MapOrigin, ObjError, Object, ProgramDef};

const BPF_MAP_TYPE_ARRAY: u32 = oxbpf_abi::map_type::ARRAY;
const BPF_F_RDONLY_PROG: u32 = oxbpf_abi::flags::BPF_F_RDONLY_PROG as u32;

fn reloc_err(section: &str, offset: u64, message: impl Into<String>) -> ObjError {
    ObjError::Relocation {
        section: section.to_string(),
        offset,
        message: message.into(),
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

/// Legacy `maps` section: one definition per symbol, of the size the
/// section and its symbols imply (20, 28 or 36 bytes, or larger variants).
fn legacy_maps(elf: &ElfView, sec: &Section, maps: &mut Vec<MapDef>) -> Result<(), ObjError> {
    let mut syms: Vec<_> = elf
        .symbols
        .iter()
        .filter(|s| s.section == Some(sec.index) && s.kind != SymKind::Section)
        .collect();
    syms.sort_by_key(|s| s.value);
    if syms.is_empty() {
        return Ok(());
    }
    let entry = sec.data.len() / syms.len();
    if entry < 16 || !sec.data.len().is_multiple_of(syms.len()) {
        return Err(ObjError::Section {
            section: sec.name.clone(),
            message: format!(
                "{} bytes do not divide into {} map definitions of at least 16 bytes",
                sec.data.len(),
                syms.len()
            ),
        });
    }
    for s in syms {
        let off = s.value as usize;
        if !off.is_multiple_of(entry) || off + entry > sec.data.len() {
            return Err(ObjError::Section {
                section: sec.name.clone(),
                message: format!("map `{}` at offset {off} is not a whole definition", s.name),
            });
        }
        let d = &sec.data[off..off + entry];
        let (inner_idx, pinning) = match entry {
            // iproute2 struct bpf_elf_map: ..., id, pinning, inner_id, inner_idx
            36.. if entry == 36 => (Some(u32_at(d, 32)), u32_at(d, 24)),
            // struct bpf_map_def with inner_map_idx, numa_node
            28.. => (Some(u32_at(d, 20)), 0),
            _ => (None, 0),
        };
        maps.push(MapDef {
            name: s.name.clone(),
            map_type: u32_at(d, 0),
            key_size: u32_at(d, 4),
            value_size: u32_at(d, 8),
            max_entries: u32_at(d, 12),
            flags: if entry >= 20 { u32_at(d, 16) } else { 0 },
            origin: MapOrigin::Legacy {
                section: sec.name.clone(),
                offset: off as u64,
                inner_idx,
            },
            pinning,
            inner: None,
            init_slots: Vec::new(),
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            data: None,
        });
    }
    Ok(())
}

/// A value encoded as `int (*name)[N]` (`__uint`): N.
fn btf_uint(btf: &Btf, type_id: u32) -> Option<u32> {
    match &btf.get(btf.resolve(type_id))?.kind {
        Kind::Ptr { target } => match &btf.get(btf.resolve(*target))?.kind {
            Kind::Array { nelems, .. } => Some(*nelems),
            _ => None,
        },
        _ => None,
    }
}

/// A type encoded as `T *name` (`__type`): sizeof(T).
fn btf_type_size(btf: &Btf, type_id: u32) -> Option<u32> {
    match &btf.get(btf.resolve(type_id))?.kind {
        Kind::Ptr { target } => btf.size_of(*target).map(|s| s as u32),
        _ => None,
    }
}

/// A type encoded as `T *name` (`__type`): the id of T.
fn btf_pointee(btf: &Btf, type_id: u32) -> Option<u32> {
    match &btf.get(btf.resolve(type_id))?.kind {
        Kind::Ptr { target } => Some(*target),
        _ => None,
    }
}

/// Reads a BTF map definition struct (the type of a `.maps` variable).
fn btf_map_def(btf: &Btf, name: &str, struct_id: u32, depth: u32) -> Result<MapDef, ObjError> {
    let bad = |m: String| ObjError::Map {
        name: name.to_string(),
        message: m,
    };
    let Some(Kind::Struct { members, .. }) = btf.get(btf.resolve(struct_id)).map(|t| &t.kind)
    else {
        return Err(bad("definition is not a struct".into()));
    };
    let mut def = MapDef {
        name: name.to_string(),
        map_type: oxbpf_abi::map_type::UNSPEC,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        flags: 0,
        origin: MapOrigin::Btf,
        pinning: 0,
        inner: None,
        init_slots: Vec::new(),
        data: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    for m in members {
        let need =
            |v: Option<u32>| v.ok_or_else(|| bad(format!("member `{}` is malformed", m.name)));
        match m.name.as_str() {
            "type" => def.map_type = need(btf_uint(btf, m.type_id))?,
            "max_entries" => def.max_entries = need(btf_uint(btf, m.type_id))?,
            "map_flags" => def.flags = need(btf_uint(btf, m.type_id))?,
            "key_size" => def.key_size = need(btf_uint(btf, m.type_id))?,
            "value_size" => def.value_size = need(btf_uint(btf, m.type_id))?,
            "pinning" => def.pinning = need(btf_uint(btf, m.type_id))?,
            "key" => {
                def.key_size = need(btf_type_size(btf, m.type_id))?;
                def.btf_key_type_id = btf_pointee(btf, m.type_id).unwrap_or(0);
            }
            "value" => {
                def.value_size = need(btf_type_size(btf, m.type_id))?;
                def.btf_value_type_id = btf_pointee(btf, m.type_id).unwrap_or(0);
            }
            "values" => {
                // __array(values, struct inner): an array of pointers to the
                // inner definition (maps of maps) or to a function proto
                // (prog arrays).
                if let Some(Kind::Array { elem, .. }) =
                    btf.get(btf.resolve(m.type_id)).map(|t| &t.kind)
                    && let Some(Kind::Ptr { target }) = btf.get(btf.resolve(*elem)).map(|t| &t.kind)
                    && let Some(Kind::Struct { .. }) =
                        btf.get(btf.resolve(*target)).map(|t| &t.kind)
                {
                    if depth > 0 {
                        return Err(bad("maps of maps nest only one level".into()));
                    }
                    let inner = btf_map_def(btf, &format!("{name}.inner"), *target, depth + 1)?;
                    def.inner = Some(Box::new(inner));
                }
                if def.value_size == 0 {
                    def.value_size = 4;
                }
            }
            "numa_node" | "map_extra" => {}
            _ => {}
        }
    }
    Ok(def)
}

fn btf_maps(
    elf: &ElfView,
    btf: &Btf,
    sec: &Section,
    maps: &mut Vec<MapDef>,
) -> Result<(), ObjError> {
    let Some((_, vars)) = btf.datasec(".maps") else {
        return Err(ObjError::Section {
            section: ".maps".into(),
            message: "no BTF DATASEC describes the .maps section".into(),
        });
    };
    let first = maps.len();
    let mut by_offset: BTreeMap<u32, usize> = BTreeMap::new();
    for v in vars {
        let Some(var) = btf.get(v.type_id) else {
            continue;
        };
        let Kind::Var { target, .. } = var.kind else {
            continue;
        };
        let def = btf_map_def(btf, &var.name, target, 0)?;
        // clang leaves DATASEC offsets at zero in object files; the ELF
        // symbol of the same name has the real place (as libbpf does).
        let (offset, size) = elf
            .symbols
            .iter()
            .find(|s| s.section == Some(sec.index) && s.name == var.name)
            .map(|s| (s.value, if s.size > 0 { s.size } else { v.size as u64 }))
            .unwrap_or((v.offset as u64, v.size as u64));
        by_offset.insert(offset as u32, maps.len());
        maps.push(MapDef {
            origin: MapOrigin::BtfAt { offset, size },
            ..def
        });
    }
    // Initial contents of prog arrays and maps of maps: ABS64 relocations
    // inside a definition's `values` array name the programs or maps.
    for r in elf.relocs.get(&sec.index).map(Vec::as_slice).unwrap_or(&[]) {
        // Older LLVM wrote R_BPF_64_64 here, newer R_BPF_64_ABS64.
        if r.kind != R_BPF_64_ABS64 && r.kind != R_BPF_64_64 {
            continue;
        }
        let Some((&start, &idx)) = by_offset.range(..=r.offset as u32).next_back() else {
            continue;
        };
        let MapOrigin::BtfAt { size, .. } = maps[idx].origin else {
            continue;
        };
        if r.offset >= start as u64 + size {
            continue;
        }
        // `values` is the last member; its slots are 8 bytes each from the
        // end of the fixed members, which is the definition size minus the
        // array: compute the slot from the array's start.
        let values_off = values_member_offset(btf, &maps[idx]).unwrap_or(0);
        let rel = r.offset - start as u64;
        if rel < values_off {
            continue;
        }
        let slot = ((rel - values_off) / 8) as u32;
        let sym = elf
            .symbols
            .iter()
            .find(|s| s.index == r.symbol)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        maps[idx].init_slots.push((slot, sym));
    }
    let _ = first;
    Ok(())
}

fn values_member_offset(btf: &Btf, def: &MapDef) -> Option<u64> {
    let (_, vars) = btf.datasec(".maps")?;
    for v in vars {
        let var = btf.get(v.type_id)?;
        if var.name != def.name {
            continue;
        }
        let Kind::Var { target, .. } = var.kind else {
            return None;
        };
        if let Kind::Struct { members, .. } = &btf.get(btf.resolve(target))?.kind {
            return members
                .iter()
                .find(|m| m.name == "values")
                .map(|m| (m.offset / 8) as u64);
        }
    }
    None
}

/// A function: a range of instructions in a code section.
#[derive(Clone, Debug)]
struct Func {
    section: usize,
    start: usize,
    end: usize,
    name: String,
}

/// Code sections as instruction slots, with function boundaries.
struct Code {
    slots: HashMap<usize, Vec<RawInsn>>,
    funcs: Vec<Func>,
}

fn code(elf: &ElfView) -> Result<Code, ObjError> {
    let mut slots = HashMap::new();
    let mut funcs = Vec::new();
    for sec in elf
        .sections
        .iter()
        .filter(|s| s.is_code() && !s.data.is_empty())
    {
        let insns = raw_slots(&sec.data).map_err(|e| ObjError::Section {
            section: sec.name.clone(),
            message: e.to_string(),
        })?;
        let n = insns.len();
        let mut syms: Vec<_> = elf
            .symbols
            .iter()
            .filter(|s| s.section == Some(sec.index) && s.kind == SymKind::Func)
            .collect();
        syms.sort_by_key(|s| s.value);
        syms.dedup_by_key(|s| s.value);
        for (i, s) in syms.iter().enumerate() {
            if s.value % 8 != 0 || s.value / 8 >= n as u64 {
                return Err(ObjError::Symbol {
                    index: s.index,
                    message: format!(
                        "function `{}` at {:#x} is outside section {}",
                        s.name, s.value, sec.name
                    ),
                });
            }
            let start = (s.value / 8) as usize;
            let next = syms.get(i + 1).map(|x| (x.value / 8) as usize).unwrap_or(n);
            let end = if s.size > 0 {
                let e = start as u64 + s.size / 8;
                if s.size % 8 != 0 || e > n as u64 {
                    return Err(ObjError::Symbol {
                        index: s.index,
                        message: format!(
                            "function `{}` has size {} past the end of section {}",
                            s.name, s.size, sec.name
                        ),
                    });
                }
                e as usize
            } else {
                next
            };
            funcs.push(Func {
                section: sec.index,
                start,
                end,
                name: s.name.clone(),
            });
        }
        if syms.is_empty() {
            funcs.push(Func {
                section: sec.index,
                start: 0,
                end: n,
                name: sec.name.clone(),
            });
        }
        slots.insert(sec.index, insns);
    }
    Ok(Code { slots, funcs })
}

/// A linked program: instructions, extern calls and line info (with
/// instruction indices of the linked program).
type Linked = (
    Vec<RawInsn>,
    Vec<(usize, String)>,
    Vec<(usize, String)>,
    Vec<crate::btf::LineInfo>,
    Vec<crate::btf::FuncInfo>,
    Vec<crate::btf::CoreRelo>,
);

struct Linker<'a> {
    elf: &'a ElfView,
    code: &'a Code,
    maps: &'a [MapDef],
    data_maps: &'a HashMap<usize, usize>,
    /// `__kconfig` externs: name -> (map index, offset).
    kconfig: &'a HashMap<String, (usize, u32)>,
    /// Names in the BTF `.ksyms` section (`__ksym` externs).
    ksyms: &'a std::collections::HashSet<String>,
    legacy_secs: Vec<usize>,
    btf_maps_sec: Option<usize>,
    btf_ext: Option<&'a crate::btf::BtfExt>,
}

impl Linker<'_> {
    fn func_at(&self, section: usize, insn: usize) -> Option<&Func> {
        self.code
            .funcs
            .iter()
            .find(|f| f.section == section && f.start <= insn && insn < f.end)
    }

    /// Copies `main` and every function it reaches into one program.
    fn link(&self, main: &Func) -> Result<Linked, ObjError> {
        let mut out: Vec<RawInsn> = Vec::new();
        let mut externs: Vec<(usize, String)> = Vec::new();
        let mut loads: Vec<(usize, String)> = Vec::new();
        let mut lines: Vec<crate::btf::LineInfo> = Vec::new();
        let mut funcs: Vec<crate::btf::FuncInfo> = Vec::new();
        let mut relos: Vec<crate::btf::CoreRelo> = Vec::new();
        // (section, start) -> position in `out`
        let mut placed: HashMap<(usize, usize), usize> = HashMap::new();
        let mut queue: Vec<Func> = vec![main.clone()];
        // Calls to patch: (position of call in out, section, target insn)
        let mut calls: Vec<(usize, usize, usize)> = Vec::new();
        while let Some(f) = queue.pop() {
            if placed.contains_key(&(f.section, f.start)) {
                continue;
            }
            let base = out.len();
            placed.insert((f.section, f.start), base);
            let sec = self
                .elf
                .section(f.section)
                .map(|s| s.name.as_str())
                .unwrap_or("?");
            let slots = &self.code.slots[&f.section];
            let relocs: HashMap<u64, Reloc> = self
                .elf
                .relocs
                .get(&f.section)
                .map(|v| v.iter().map(|r| (r.offset, *r)).collect())
                .unwrap_or_default();
            out.extend_from_slice(&slots[f.start..f.end]);
            if let Some(ext) = self.btf_ext {
                for (name, recs) in &ext.func_info {
                    if name != sec {
                        continue;
                    }
                    for fi in recs {
                        let i = fi.insn as usize;
                        if (f.start..f.end).contains(&i) {
                            funcs.push(crate::btf::FuncInfo {
                                insn: (base + i - f.start) as u32,
                                type_id: fi.type_id,
                            });
                        }
                    }
                }
                for (name, recs) in &ext.core_relos {
                    if name != sec {
                        continue;
                    }
                    for r in recs {
                        let i = r.insn as usize;
                        if (f.start..f.end).contains(&i) {
                            relos.push(crate::btf::CoreRelo {
                                insn: (base + i - f.start) as u32,
                                ..r.clone()
                            });
                        }
                    }
                }
                for (name, recs) in &ext.line_info {
                    if name != sec {
                        continue;
                    }
                    for l in recs {
                        let i = l.insn as usize;
                        if (f.start..f.end).contains(&i) {
                            lines.push(crate::btf::LineInfo {
                                insn: (base + i - f.start) as u32,
                                ..l.clone()
                            });
                        }
                    }
                }
            }
            let mut i = f.start;
            while i < f.end {
                let pos = base + (i - f.start);
                let insn = out[pos];
                let reloc = relocs.get(&(i as u64 * 8));
                let is_call = insn.code == BPF_JMP | BPF_CALL;
                let is_lddw = insn.code == LDDW;
                if is_lddw && i + 1 >= f.end {
                    return Err(ObjError::Section {
                        section: sec.to_string(),
                        message: format!(
                            "instruction {i}: lddw is cut off by the end of function `{}`",
                            f.name
                        ),
                    });
                }
                match (reloc, is_call, is_lddw) {
                    (Some(r), _, true) if r.kind == R_BPF_64_64 => {
                        self.apply_lddw(sec, r, &mut out, pos, &mut queue, &mut calls, &mut loads)?;
                    }
                    (Some(r), true, _) if r.kind == R_BPF_64_32 => {
                        let sym = self.symbol(sec, r)?;
                        let Some(sec_idx) = sym.section else {
                            // An extern function: a kfunc to be resolved by
                            // BTF id against the kernel. Mark it as a kfunc
                            // call with an unresolved id.
                            out[pos].src = BPF_PSEUDO_KFUNC_CALL;
                            out[pos].imm = 0;
                            externs.push((pos, sym.name.clone()));
                            i += 1;
                            continue;
                        };
                        let target = (sym.value / 8) as i64 + insn.imm as i64 + 1;
                        self.enqueue_call(
                            sec, r.offset, sec_idx, target, pos, &mut queue, &mut calls,
                        )?;
                    }
                    (Some(r), _, _) if r.kind != 0 => {
                        return Err(reloc_err(
                            sec,
                            r.offset,
                            format!(
                                "relocation type {} does not apply to `{}`",
                                r.kind,
                                describe(insn)
                            ),
                        ));
                    }
                    _ => {
                        if is_call && insn.src == BPF_PSEUDO_CALL {
                            // A static call within the same section needs no relocation.
                            let target = i as i64 + insn.imm as i64 + 1;
                            self.enqueue_call(
                                sec,
                                i as u64 * 8,
                                f.section,
                                target,
                                pos,
                                &mut queue,
                                &mut calls,
                            )?;
                        }
                    }
                }
                i += if is_lddw { 2 } else { 1 };
            }
        }
        for (pos, section, target) in calls {
            let f = self
                .func_at(section, target)
                .ok_or_else(|| ObjError::Invalid {
                    message: format!("call target {target} is not in a function"),
                })?;
            let base = placed[&(section, f.start)];
            let new_target = base + (target - f.start);
            out[pos].imm = (new_target as i64 - pos as i64 - 1) as i32;
            if out[pos].code == LDDW {
                out[pos].src = BPF_PSEUDO_FUNC;
            } else {
                out[pos].src = BPF_PSEUDO_CALL;
            }
        }
        lines.sort_by_key(|l| l.insn);
        funcs.sort_by_key(|f| f.insn);
        Ok((out, externs, loads, lines, funcs, relos))
    }

    #[allow(clippy::too_many_arguments)]
    fn enqueue_call(
        &self,
        sec: &str,
        offset: u64,
        section: usize,
        target: i64,
        pos: usize,
        queue: &mut Vec<Func>,
        calls: &mut Vec<(usize, usize, usize)>,
    ) -> Result<(), ObjError> {
        let f = usize::try_from(target)
            .ok()
            .and_then(|t| self.func_at(section, t))
            .ok_or_else(|| {
                reloc_err(
                    sec,
                    offset,
                    format!("call target instruction {target} is outside every function"),
                )
            })?;
        queue.push(f.clone());
        calls.push((pos, section, target as usize));
        Ok(())
    }

    fn symbol(&self, sec: &str, r: &Reloc) -> Result<&crate::elf::Symbol, ObjError> {
        self.elf
            .symbols
            .iter()
            .find(|s| s.index == r.symbol)
            .ok_or_else(|| reloc_err(sec, r.offset, format!("symbol {} does not exist", r.symbol)))
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_lddw(
        &self,
        sec: &str,
        r: &Reloc,
        out: &mut [RawInsn],
        pos: usize,
        queue: &mut Vec<Func>,
        calls: &mut Vec<(usize, usize, usize)>,
        loads: &mut Vec<(usize, String)>,
    ) -> Result<(), ObjError> {
        let sym = self.symbol(sec, r)?;
        let Some(target_sec) = sym.section else {
            if let Some(&(idx, off)) = self.kconfig.get(&sym.name) {
                // The instruction's imm is an offset into the variable.
                let add = out[pos].imm;
                out[pos].src = BPF_PSEUDO_MAP_IDX_VALUE;
                out[pos].imm = idx as i32;
                out[pos + 1].imm = off as i32 + add;
                return Ok(());
            }
            if self.ksyms.contains(&sym.name) {
                // The address of a kernel variable or function: resolved
                // by whoever loads the object into a kernel.
                out[pos].src = BPF_PSEUDO_BTF_ID;
                out[pos].imm = 0;
                out[pos + 1].imm = 0;
                loads.push((pos, sym.name.clone()));
                return Ok(());
            }
            return Err(reloc_err(
                sec,
                r.offset,
                format!(
                    "`{}` is an extern in neither `.kconfig` nor `.ksyms` (declare it `__kconfig` or `__ksym`)",
                    sym.name
                ),
            ));
        };
        let Some(ts) = self.elf.section(target_sec) else {
            return Err(reloc_err(
                sec,
                r.offset,
                "relocation against a missing section",
            ));
        };
        if self.legacy_secs.contains(&target_sec) {
            let idx = self
                .maps
                .iter()
                .position(|m| matches!(&m.origin, MapOrigin::Legacy { section, offset, .. } if *offset == sym.value && *section == ts.name))
                .ok_or_else(|| reloc_err(sec, r.offset, format!("no map at offset {} of section {}", sym.value, ts.name)))?;
            out[pos].src = BPF_PSEUDO_MAP_IDX;
            out[pos].imm = idx as i32;
            out[pos + 1].imm = 0;
            return Ok(());
        }
        if Some(target_sec) == self.btf_maps_sec {
            let idx = self
                .maps
                .iter()
                .position(
                    |m| matches!(m.origin, MapOrigin::BtfAt { offset, .. } if offset == sym.value),
                )
                .ok_or_else(|| reloc_err(sec, r.offset, format!("no BTF map `{}`", sym.name)))?;
            out[pos].src = BPF_PSEUDO_MAP_IDX;
            out[pos].imm = idx as i32;
            out[pos + 1].imm = 0;
            return Ok(());
        }
        if let Some(&idx) = self.data_maps.get(&target_sec) {
            // Section symbols carry the offset in the instruction's imm.
            let off = sym.value as i64 + out[pos].imm as i64;
            if off < 0 || off as u64 > ts.size {
                return Err(reloc_err(
                    sec,
                    r.offset,
                    format!("offset {off} is outside {}", ts.name),
                ));
            }
            out[pos].src = BPF_PSEUDO_MAP_IDX_VALUE;
            out[pos].imm = idx as i32;
            out[pos + 1].imm = off as i32;
            return Ok(());
        }
        if ts.is_code() {
            // Address of a function (callbacks for bpf_loop and friends):
            // the immediate is a byte offset from the symbol, unlike a call's.
            let target = (sym.value as i64 + out[pos].imm as i64) / 8;
            return self.enqueue_call(sec, r.offset, target_sec, target, pos, queue, calls);
        }
        Err(reloc_err(
            sec,
            r.offset,
            format!(
                "lddw refers to `{}` in section {}, which is neither a map, data nor code",
                sym.name, ts.name
            ),
        ))
    }
}

fn describe(insn: RawInsn) -> String {
    match oxbpf_isa::decode_at(&[insn, RawInsn::default()], 0) {
        Ok(i) => i.to_string(),
        Err(_) => format!("opcode {:#04x}", insn.code),
    }
}

/// Sections that hold something other than programs or global data.
fn is_special(name: &str) -> bool {
    name == "maps"
        || name.starts_with("maps/")
        || name == ".maps"
        || name == "license"
        || name == "version"
        || name.starts_with(".BTF")
        || name.starts_with(".debug")
        || name.starts_with(".llvm")
        || name == ".eh_frame"
}

pub(crate) fn load(elf: &ElfView) -> Result<Object, ObjError> {
    let btf = match elf.section_by_name(".BTF") {
        Some(s) => {
            let b = Btf::parse(&s.data).map_err(|e| ObjError::Btf { message: e.message })?;
            // Global functions of hidden visibility are verified as static
            // ones (libbpf's rule).
            let hidden: std::collections::HashSet<&str> = elf
                .symbols
                .iter()
                .filter(|s| s.global && s.hidden && s.kind == SymKind::Func && s.section.is_some())
                .map(|s| s.name.as_str())
                .collect();
            Some(if hidden.is_empty() {
                b
            } else {
                b.with_static_funcs(|n| hidden.contains(n))
                    .map_err(|e| ObjError::Btf { message: e.message })?
            })
        }
        None => None,
    };
    let btf_ext = match (elf.section_by_name(".BTF.ext"), &btf) {
        (Some(s), Some(b)) => Some(
            crate::btf::BtfExt::parse(&s.data, b, |name| {
                elf.section_by_name(name)
                    .filter(|s| s.is_code())
                    .map(|s| s.size)
            })
            .map_err(|e| ObjError::Btf { message: e.message })?,
        ),
        (Some(_), None) => {
            return Err(ObjError::Btf {
                message: ".BTF.ext without .BTF".into(),
            });
        }
        _ => None,
    };
    let mut maps = Vec::new();
    let mut legacy_secs = Vec::new();
    for sec in elf
        .sections
        .iter()
        .filter(|s| s.name == "maps" || s.name.starts_with("maps/"))
    {
        legacy_maps(elf, sec, &mut maps)?;
        legacy_secs.push(sec.index);
    }
    let btf_maps_sec = elf.section_by_name(".maps").map(|s| s.index);
    if let Some(idx) = btf_maps_sec {
        let sec = elf.section(idx).expect("index from the section list");
        match &btf {
            Some(btf) => btf_maps(elf, btf, sec, &mut maps)?,
            None if sec.data.is_empty() => {}
            None => {
                return Err(ObjError::Section {
                    section: ".maps".into(),
                    message: "BTF-defined maps need a .BTF section".into(),
                });
            }
        }
    }
    let mut data_maps = HashMap::new();
    for sec in elf
        .sections
        .iter()
        .filter(|s| s.is_data() && !is_special(&s.name))
    {
        if sec.size == 0 {
            continue;
        }
        if sec.size > u32::MAX as u64 {
            return Err(ObjError::Section {
                section: sec.name.clone(),
                message: "global data larger than 4 GiB".into(),
            });
        }
        data_maps.insert(sec.index, maps.len());
        maps.push(MapDef {
            name: sec.name.clone(),
            map_type: BPF_MAP_TYPE_ARRAY,
            key_size: 4,
            value_size: sec.size as u32,
            max_entries: 1,
            flags: if sec.is_writable() {
                0
            } else {
                BPF_F_RDONLY_PROG
            },
            origin: MapOrigin::Data {
                section: sec.name.clone(),
            },
            pinning: 0,
            inner: None,
            init_slots: Vec::new(),
            btf_key_type_id: 0,
            btf_value_type_id: 0,
            data: Some(sec.data.clone()),
        });
    }
    // `extern ... __kconfig` variables: one read-only `.kconfig` map laid
    // out from the BTF DATASEC of that name, filled by whoever loads the
    // object (oxbpf-live reads the running kernel's config).
    let mut kconfig_vars = Vec::new();
    let mut kconfig = HashMap::new();
    let mut kconfig_map = None;
    if let Some((_, vars)) = btf.as_ref().and_then(|b| b.datasec(".kconfig")) {
        let b = btf.as_ref().expect("checked above");
        let mut off = 0u32;
        for v in vars {
            let Some(var) = b.get(v.type_id) else {
                continue;
            };
            let crate::btf::Kind::Var { target, .. } = var.kind else {
                continue;
            };
            let size = b.size_of(target).unwrap_or(0) as u32;
            if size == 0 {
                return Err(ObjError::Section {
                    section: ".kconfig".into(),
                    message: format!("extern `{}` has no size", var.name),
                });
            }
            let kind = kconfig_kind(b, target).ok_or_else(|| ObjError::Section {
                section: ".kconfig".into(),
                message: format!(
                    "extern `{}` has a type a config value cannot fill (bool, tristate, char, integers and char arrays can)",
                    var.name
                ),
            })?;
            let align = size.clamp(1, 8).next_power_of_two();
            off = off.div_ceil(align) * align;
            let weak = elf
                .symbols
                .iter()
                .any(|s| s.name == var.name && s.section.is_none() && s.weak);
            kconfig.insert(var.name.clone(), (maps.len(), off));
            kconfig_vars.push(crate::KconfigVar {
                name: var.name.clone(),
                offset: off,
                size,
                weak,
                kind,
            });
            off += size;
        }
        if !kconfig_vars.is_empty() {
            let size = off.div_ceil(8) * 8;
            kconfig_map = Some(maps.len());
            maps.push(MapDef {
                name: ".kconfig".into(),
                map_type: BPF_MAP_TYPE_ARRAY,
                key_size: 4,
                value_size: size,
                max_entries: 1,
                flags: BPF_F_RDONLY_PROG,
                origin: MapOrigin::Data {
                    section: ".kconfig".into(),
                },
                pinning: 0,
                inner: None,
                init_slots: Vec::new(),
                btf_key_type_id: 0,
                btf_value_type_id: 0,
                data: Some(vec![0; size as usize]),
            });
        }
    }
    // `extern ... __ksym` symbols, named by the BTF `.ksyms` section.
    let mut ksyms = Vec::new();
    if let Some((_, vars)) = btf.as_ref().and_then(|b| b.datasec(".ksyms")) {
        let b = btf.as_ref().expect("checked above");
        for v in vars {
            let Some(t) = b.get(v.type_id) else {
                continue;
            };
            let kind = match t.kind {
                crate::btf::Kind::Func { .. } => crate::KsymKind::Func,
                crate::btf::Kind::Var { target, .. } if b.resolve(target) == 0 => {
                    crate::KsymKind::Typeless
                }
                crate::btf::Kind::Var { .. } => crate::KsymKind::Typed,
                _ => continue,
            };
            let weak = elf
                .symbols
                .iter()
                .any(|s| s.name == t.name && s.section.is_none() && s.weak);
            ksyms.push(crate::Ksym {
                name: t.name.clone(),
                weak,
                kind,
            });
        }
    }
    let ksym_names: std::collections::HashSet<String> =
        ksyms.iter().map(|k| k.name.clone()).collect();
    let code = code(elf)?;
    let linker = Linker {
        elf,
        code: &code,
        maps: &maps,
        data_maps: &data_maps,
        kconfig: &kconfig,
        ksyms: &ksym_names,
        legacy_secs,
        btf_maps_sec,
        btf_ext: btf_ext.as_ref(),
    };
    // Programs: functions in sections other than .text; when there are
    // none, the global functions of .text (PREVAIL-style objects).
    let text = elf.section_by_name(".text").map(|s| s.index);
    let mut entry: Vec<&Func> = code
        .funcs
        .iter()
        .filter(|f| Some(f.section) != text)
        .collect();
    if entry.is_empty() {
        entry = code
            .funcs
            .iter()
            .filter(|f| {
                elf.symbols
                    .iter()
                    .any(|s| s.global && s.name == f.name && s.section == Some(f.section))
            })
            .collect();
    }
    let mut programs = Vec::new();
    for f in entry {
        let section = elf
            .section(f.section)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let (insns, extern_calls, extern_loads, line_info, func_info, core_relos) =
            linker.link(f)?;
        // Every linked program must decode: a malformed instruction is an
        // error naming the program, not a surprise at run time.
        oxbpf_isa::decode(&insns).map_err(|e| ObjError::Program {
            program: f.name.clone(),
            section: section.clone(),
            message: e.to_string(),
        })?;
        programs.push(ProgramDef {
            name: f.name.clone(),
            kind: from_section_name(&section).unwrap_or(ProgramType::Unspec),
            attach: attach_target(&section).map(str::to_string),
            section,
            section_offset: f.start as u64 * 8,
            insns,
            extern_calls,
            extern_loads,
            line_info,
            func_info,
            core_relos,
        });
    }
    let license = elf.section_by_name("license").map(|s| {
        String::from_utf8_lossy(s.data.split(|&c| c == 0).next().unwrap_or(&[])).into_owned()
    });
    let kernel_version = elf
        .section_by_name("version")
        .filter(|s| s.data.len() >= 4)
        .map(|s| u32_at(&s.data, 0));
    let section_sizes = elf
        .sections
        .iter()
        .map(|s| (s.name.clone(), s.size))
        .collect();
    let symbol_offsets = elf
        .symbols
        .iter()
        .filter(|s| matches!(s.kind, SymKind::Object | SymKind::NoType) && !s.name.is_empty())
        .filter_map(|s| {
            let sec = elf.section(s.section?)?;
            Some(((sec.name.clone(), s.name.clone()), s.value))
        })
        .collect();
    Ok(Object {
        programs,
        maps,
        license,
        kernel_version,
        btf,
        btf_ext,
        section_sizes,
        symbol_offsets,
        kconfig: kconfig_vars,
        kconfig_map,
        ksyms,
    })
}

/// How a kconfig extern of BTF type `id` takes a config value (libbpf's
/// classes): bool, `enum libbpf_tristate`, char, integers, char arrays.
fn kconfig_kind(b: &crate::btf::Btf, id: u32) -> Option<crate::KconfigKind> {
    use crate::KconfigKind as K;
    use crate::btf::Kind;
    let t = b.get(b.resolve(id))?;
    match &t.kind {
        Kind::Int { encoding, size, .. } if encoding & 4 != 0 && *size == 1 => Some(K::Bool),
        Kind::Int { size: 1, .. } if t.name == "char" => Some(K::Char),
        Kind::Int { encoding, .. } => Some(K::Int {
            signed: encoding & 1 != 0,
        }),
        Kind::Enum { .. } if t.name == "libbpf_tristate" => Some(K::Tristate),
        Kind::Enum { .. } => Some(K::Int { signed: true }),
        Kind::Array { elem, .. } => match &b.get(b.resolve(*elem))?.kind {
            Kind::Int { size: 1, .. } => Some(K::Str),
            _ => None,
        },
        _ => None,
    }
}
