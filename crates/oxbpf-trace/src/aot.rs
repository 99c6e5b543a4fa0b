//! Ahead-of-time compiled scripts: a [`Compiled`] script written as a BPF
//! ELF object (`oxbpf trace --emit-elf OUT.o`) and read back
//! (`oxbpf trace --run OUT.o`), so that a machine runs the script without
//! compiling it.
//!
//! The object is an ordinary BPF object (programs in libbpf's section
//! names, maps in `.maps` with BTF, line records of the script): `bpftool`
//! and oxbpf's loader read it. What only the tracer needs — which probe
//! each program attaches to, how each map and record prints, the script's
//! text for messages — is JSON in a section named [`SECTION`], which
//! loaders skip.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::codegen::{Compiled, MapInfo, PrintfInfo, ProbeProgram};
use crate::diag::Span;

/// The section holding the tracer's metadata.
pub const SECTION: &str = ".oxbpf.trace";

/// Version of the metadata's layout; objects of another are refused.
const FORMAT: u32 = 2;

/// Where a compiled script came from, recorded in the object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Origin {
    /// The script's name (file, `-e`, `stdin`) and text.
    pub file: String,
    pub source: String,
    /// The kernel release it was compiled against (`uname -r`):
    /// tracepoint layouts and system call numbers come from that kernel.
    pub kernel: String,
    /// The oxbpf version that compiled it.
    pub compiler: String,
    /// Compiled for a `-c` command (`cpid`).
    pub child: bool,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    origin: Origin,
    programs: Vec<ProbeProgram>,
    maps: Vec<MapInfo>,
    printfs: Vec<PrintfInfo>,
    /// Maps by name (indices follow the object's maps on load).
    events: String,
    start_time: String,
    lost: String,
    /// (map name, key, value)
    init: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// Every span of the script's instructions, so that places found
    /// again from line records keep their extent.
    spans: Vec<Span>,
    #[serde(default)]
    missing_probes: crate::codegen::MissingProbes,
    #[serde(default)]
    layouts: Vec<crate::layout::Layout>,
}

/// A script read back from its object.
#[derive(Debug)]
pub struct Loaded {
    pub compiled: Compiled,
    pub origin: Origin,
}

/// The object of a compiled script.
pub fn emit(c: &Compiled, origin: &Origin) -> Result<Vec<u8>, String> {
    let name = |i: usize| {
        c.object
            .maps
            .get(i)
            .map(|m| m.name.clone())
            .ok_or_else(|| format!("map {i} does not exist"))
    };
    let mut spans: Vec<Span> = c.lines.values().flatten().copied().collect();
    spans.sort_by_key(|s| (s.start, s.end));
    spans.dedup();
    let meta = Meta {
        format: FORMAT,
        origin: origin.clone(),
        programs: c.programs.clone(),
        maps: c.maps.clone(),
        printfs: c.printfs.clone(),
        events: name(c.events)?,
        start_time: name(c.start_time)?,
        lost: name(c.lost)?,
        init: c
            .init
            .iter()
            .map(|(i, k, v)| Ok((name(*i)?, k.clone(), v.clone())))
            .collect::<Result<_, String>>()?,
        spans,
        missing_probes: c.missing_probes,
        layouts: c.layouts.clone(),
    };
    let json = serde_json::to_vec(&meta).map_err(|e| e.to_string())?;
    oxbpf_obj::write::to_elf(&c.object, &[(SECTION, &json)]).map_err(|e| e.to_string())
}

/// Reads a script's object back: its programs, maps and metadata, with
/// every index and place re-derived from what the object holds.
pub fn load(bytes: &[u8]) -> Result<Loaded, String> {
    let view = oxbpf_obj::elf::parse(bytes).map_err(|e| e.to_string())?;
    let meta = &view
        .section_by_name(SECTION)
        .ok_or_else(|| {
            format!(
                "this object has no {SECTION} section: it was not made by `oxbpf trace --emit-elf`"
            )
        })?
        .data;
    let meta: Meta = serde_json::from_slice(meta).map_err(|e| format!("{SECTION}: {e}"))?;
    if meta.format != FORMAT {
        return Err(format!(
            "{SECTION}: layout version {} (this oxbpf reads {FORMAT}); compile the script again",
            meta.format
        ));
    }
    let mut object = oxbpf_obj::load_view(&view).map_err(|e| e.to_string())?;
    // Programs in the metadata's order.
    let mut programs = Vec::with_capacity(meta.programs.len());
    for p in &meta.programs {
        let i = object
            .programs
            .iter()
            .position(|d| d.name == p.program)
            .ok_or_else(|| format!("program `{}` is missing from the object", p.program))?;
        programs.push(object.programs.swap_remove(i));
    }
    if let Some(extra) = object.programs.first() {
        return Err(format!(
            "program `{}` of the object is not in {SECTION}",
            extra.name
        ));
    }
    object.programs = programs;
    let index = |name: &str| {
        object
            .maps
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| format!("map `{name}` is missing from the object"))
    };
    let mut maps = meta.maps;
    for m in &mut maps {
        // 0: never declared (index 0 is the event ring).
        if m.index != 0 {
            m.index = index(&m.symbol())?;
        }
    }
    let init = meta
        .init
        .iter()
        .map(|(n, k, v)| Ok((index(n)?, k.clone(), v.clone())))
        .collect::<Result<_, String>>()?;
    // Places of instructions from the line records.
    let source = &meta.origin.source;
    let by_start: HashMap<usize, Span> = meta.spans.iter().rev().map(|s| (s.start, *s)).collect();
    let places = crate::diag::LineIndex::new(source);
    let mut lines = HashMap::new();
    for p in &object.programs {
        let mut spans = vec![Span::default(); p.insns.len()];
        let recs = &p.line_info;
        for (k, l) in recs.iter().enumerate() {
            let end = recs.get(k + 1).map_or(p.insns.len(), |n| n.insn as usize);
            let start = places.offset(l.line as usize, l.column as usize);
            let span = by_start
                .get(&start)
                .copied()
                .unwrap_or(Span::new(start, start + 1));
            for s in spans
                .iter_mut()
                .take(end.min(p.insns.len()))
                .skip(l.insn as usize)
            {
                *s = span;
            }
        }
        lines.insert(p.name.clone(), spans);
    }
    let compiled = Compiled {
        events: index(&meta.events)?,
        start_time: index(&meta.start_time)?,
        lost: index(&meta.lost)?,
        object,
        programs: meta.programs,
        maps,
        printfs: meta.printfs,
        lines,
        init,
        missing_probes: meta.missing_probes,
        layouts: meta.layouts,
    };
    Ok(Loaded {
        compiled,
        origin: meta.origin,
    })
}
