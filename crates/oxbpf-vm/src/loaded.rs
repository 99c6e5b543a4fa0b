//! Running BPF objects: maps created from the object's definitions,
//! programs with their map references resolved, and program contexts
//! (XDP, socket filter and tc, tracepoints, kprobes, perf events, raw).

use std::sync::Arc;

use oxbpf_isa::{Imm64, Instruction};
use oxbpf_obj::{Object, ProgramDef, ProgramType};

use crate::env::{Env, MAP_HANDLE_TAG};
use crate::helpers::Helpers;
use crate::interpreter::{Config, CtxPointers, NoTrace, PacketState, RunResult, Tracer};
use crate::lowmem::LowBuf;
use crate::maps::{Map, MapError, MapSpec, map_type as mt};
use crate::memory::{MemoryMap, RegionKind};
use crate::program::{Program, ProgramError};
use crate::{VmError, stdhelpers};

/// Why an object cannot be prepared for running.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("map `{name}`: {error}")]
    Map { name: String, error: MapError },
    #[error("program `{name}`: {error}")]
    Program { name: String, error: ProgramError },
    #[error("program `{name}`, instruction {insn}: {message}")]
    Reference {
        name: String,
        insn: usize,
        message: String,
    },
    #[error("map `{map}`, slot {slot}: {message}")]
    InitialValue {
        map: String,
        slot: u32,
        message: String,
    },
    #[error("cannot allocate packet memory: {0}")]
    Memory(#[from] std::io::Error),
}

/// How a program's context is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextKind {
    /// r1 = input memory, r2 = its length.
    Raw,
    /// `struct xdp_md`.
    Xdp,
    /// `struct __sk_buff` (socket filter, tc, cgroup skb, ...).
    Skb,
    /// r1 = the input bytes as the context (tracepoint args, pt_regs,
    /// raw tracepoint u64 array, perf event data).
    Buffer,
}

impl ContextKind {
    pub fn for_type(t: ProgramType) -> ContextKind {
        use ProgramType::*;
        match t {
            Xdp => ContextKind::Xdp,
            SocketFilter | SchedCls | SchedAct | CgroupSkb | LwtIn | LwtOut | LwtXmit
            | LwtSeg6local | SkSkb => ContextKind::Skb,
            Unspec => ContextKind::Raw,
            // Every other context is a fixed-size structure in r1.
            _ => ContextKind::Buffer,
        }
    }
}

/// XDP verdict names.
pub fn xdp_verdict(r0: u64) -> &'static str {
    match r0 {
        0 => "XDP_ABORTED",
        1 => "XDP_DROP",
        2 => "XDP_PASS",
        3 => "XDP_TX",
        4 => "XDP_REDIRECT",
        _ => "XDP_ABORTED",
    }
}

/// tc verdict names.
pub fn tc_verdict(r0: u64) -> &'static str {
    match r0 as i32 {
        -1 => "TC_ACT_UNSPEC",
        0 => "TC_ACT_OK",
        1 => "TC_ACT_RECLASSIFY",
        2 => "TC_ACT_SHOT",
        3 => "TC_ACT_PIPE",
        4 => "TC_ACT_STOLEN",
        5 => "TC_ACT_QUEUED",
        6 => "TC_ACT_REPEAT",
        7 => "TC_ACT_REDIRECT",
        _ => "TC_ACT_UNSPEC",
    }
}

/// One program ready to run.
pub struct LoadedProgram {
    pub def: ProgramDef,
    pub kind: ProgramType,
    pub program: Arc<Program>,
}

/// An object whose maps exist and whose programs can run.
pub struct LoadedObject {
    pub env: Env,
    pub programs: Vec<LoadedProgram>,
    /// Map names, by index (as in `env.maps`).
    pub map_names: Vec<String>,
    pub helpers: Helpers,
    pub config: Config,
}

/// Ring buffers and perf arrays declared without a size get sensible ones.
fn sized(s: MapSpec, ncpus: u32) -> MapSpec {
    let mut s = s.normalized(ncpus);
    match s.map_type {
        // Key and value types of a ring buffer are documentation only.
        mt::RINGBUF => {}
        // Stack traces: a hash from stack id to addresses (get_stackid is
        // kernel-only, so it stays empty in user space).
        mt::STACK_TRACE => s.map_type = mt::HASH,
        // Device, CPU, socket and cgroup maps are arrays of ids in user space.
        mt::CGROUP_ARRAY
        | mt::DEVMAP
        | mt::CPUMAP
        | mt::XSKMAP
        | mt::SOCKMAP
        | mt::SOCKHASH
        | mt::DEVMAP_HASH => {
            s.map_type = mt::ARRAY;
            s.key_size = 4;
            s.value_size = s.value_size.max(4);
        }
        _ => {}
    }
    s
}

impl LoadedObject {
    /// Runs every program without run-time memory checks in the JIT, on
    /// the strength of the verifier's proof for exactly these programs as
    /// the types they run as (any may tail-call the others).
    pub fn trust(
        &mut self,
        proof: &oxbpf_verifier::ObjectProof,
    ) -> Result<(), crate::ProofMismatch> {
        let programs = self
            .programs
            .iter()
            .map(|p| (p.def.insns.as_slice(), p.kind));
        if !proof.covers(programs) {
            return Err(crate::ProofMismatch {
                what: "programs or program types",
            });
        }
        self.config.checks = crate::jit::Checks::proven(None);
        Ok(())
    }

    /// Creates the maps and prepares every program (`ncpus` CPUs emulated).
    /// `override_type` replaces the program type that section names imply.
    pub fn new(
        obj: &Object,
        ncpus: u32,
        override_type: Option<ProgramType>,
    ) -> Result<LoadedObject, LoadError> {
        let mut maps: Vec<Arc<Map>> = Vec::new();
        let mut map_names = Vec::new();
        for d in &obj.maps {
            let spec = sized(d.spec(), ncpus);
            let m = Map::new(spec, ncpus).map_err(|error| LoadError::Map {
                name: d.name.clone(),
                error,
            })?;
            if let Some(data) = &d.data {
                m.update(&0u32.to_le_bytes(), data, 0, None)
                    .map_err(|error| LoadError::Map {
                        name: d.name.clone(),
                        error,
                    })?;
            }
            maps.push(Arc::new(m));
            map_names.push(d.name.clone());
        }
        // Legacy maps of maps name their inner map by index.
        let mut programs = Vec::new();
        for p in &obj.programs {
            let program = resolve(p, &maps)?;
            programs.push(LoadedProgram {
                kind: override_type.unwrap_or(p.kind),
                def: p.clone(),
                program: Arc::new(program),
            });
        }
        // Initial values of prog arrays (program names) and maps of maps (map names).
        for (i, d) in obj.maps.iter().enumerate() {
            for (slot, name) in &d.init_slots {
                let id = if d.map_type == mt::PROG_ARRAY {
                    programs.iter().position(|p| &p.def.name == name)
                } else {
                    map_names.iter().position(|n| n == name)
                };
                let id = id.ok_or_else(|| LoadError::InitialValue {
                    map: d.name.clone(),
                    slot: *slot,
                    message: format!("`{name}` is not a program or map of this object"),
                })?;
                maps[i]
                    .update(&slot.to_le_bytes(), &(id as u32).to_le_bytes(), 0, None)
                    .map_err(|error| LoadError::Map {
                        name: d.name.clone(),
                        error,
                    })?;
            }
        }
        let env = Env::new(maps, programs.iter().map(|p| p.program.clone()).collect());
        Ok(LoadedObject {
            env,
            programs,
            map_names,
            helpers: stdhelpers::standard(),
            config: Config::default(),
        })
    }

    /// Finds a program by function or section name.
    pub fn program(&self, name: &str) -> Option<usize> {
        self.programs
            .iter()
            .position(|p| p.def.name == name)
            .or_else(|| self.programs.iter().position(|p| p.def.section == name))
    }

    fn vm_run<'a, T: Tracer>(
        &'a self,
        idx: usize,
        memory: MemoryMap<'a>,
        args: [u64; 5],
        packet: Option<PacketState>,
        tracer: &mut T,
    ) -> Result<RunResult, VmError> {
        if self.config.engine == crate::jit::Engine::Jit
            && !self
                .env
                .programs
                .iter()
                .all(|p| crate::jit::is_compiled(p, &self.config))
        {
            // One executable mapping for all of the object's programs (the
            // tail-call targets), made on the first JIT run.
            let all: Vec<&crate::program::Program> =
                self.env.programs.iter().map(|p| &**p).collect();
            if let Err(e) = crate::jit::compile_all(&all, &self.config) {
                return Err(VmError::JitFailed { message: e.message });
            }
        }
        let mut memory = memory;
        for m in &self.env.maps {
            if let Some(a) = m.arena() {
                memory.add_arena(RegionKind::MapValue, a, true);
            }
            if let Some(a) = m.ring_data() {
                memory.add_container(a);
            }
        }
        crate::interpreter::run(
            crate::interpreter::Setup {
                program: &self.programs[idx].program,
                helpers: &self.helpers,
                config: &self.config,
            },
            memory,
            args,
            Some(&self.env),
            packet,
            tracer,
        )
    }

    /// Runs program `idx` on `input`: a packet for packet programs, the
    /// context bytes for tracing programs, raw memory otherwise.
    pub fn run(&self, idx: usize, input: &[u8]) -> Result<ObjectRun, LoadError> {
        self.run_traced(idx, input, &mut NoTrace)
    }

    pub fn run_traced<T: Tracer>(
        &self,
        idx: usize,
        input: &[u8],
        tracer: &mut T,
    ) -> Result<ObjectRun, LoadError> {
        let kind = ContextKind::for_type(self.programs[idx].kind);
        match kind {
            ContextKind::Raw | ContextKind::Buffer => {
                let mut mem = input.to_vec();
                // A context has its type's size, as the verifier assumes
                // (a page for tracing records and for programs of no
                // type): the input fills it from the start and the rest
                // reads as zero. A shorter region would let a verified
                // program, run unchecked, read past the input.
                let size = self.programs[idx].kind.ctx_size() as usize;
                if mem.len() < size {
                    mem.resize(size, 0);
                }
                let len = mem.len() as u64;
                let mut memory = MemoryMap::new();
                let start = memory.add_mut(
                    if kind == ContextKind::Raw {
                        RegionKind::Input
                    } else {
                        RegionKind::Context
                    },
                    &mut mem,
                );
                let args = [if len == 0 { 0 } else { start }, len, 0, 0, 0];
                let result = self.vm_run(idx, memory, args, None, tracer);
                Ok(ObjectRun {
                    result,
                    kind,
                    packet: None,
                })
            }
            ContextKind::Xdp | ContextKind::Skb => {
                const HEADROOM: usize = 256;
                let room = input.len() + HEADROOM + 512;
                // A pooled buffer holds what its last run left: the
                // headroom is cleared (moving the head or the metadata back
                // exposes it as it is); the tailroom is not, because the
                // only way to reach it, growing the tail, clears what it
                // exposes (stdhelpers::adjust), as the kernel does.
                let mut buf = LowBuf::new_unzeroed(room.max(4096))?;
                let base = buf.addr();
                let slice = buf.as_mut_slice();
                let buf_len = slice.len() as u64;
                slice[..HEADROOM].fill(0);
                slice[HEADROOM..HEADROOM + input.len()].copy_from_slice(input);
                let data = base + HEADROOM as u64;
                let mut ctx = vec![0u8; if kind == ContextKind::Xdp { 24 } else { 192 }];
                let mut memory = MemoryMap::new();
                let ctx_addr = match kind {
                    ContextKind::Xdp => memory.add_mut_readonly(RegionKind::Context, &mut ctx),
                    _ => memory.add_mut(RegionKind::Context, &mut ctx),
                };
                let mut pkt = PacketState {
                    buf_start: base,
                    buf_end: base + buf_len,
                    data,
                    data_end: data + input.len() as u64,
                    meta: data,
                    ctx: if kind == ContextKind::Xdp {
                        CtxPointers::Xdp(ctx_addr)
                    } else {
                        CtxPointers::Skb(ctx_addr)
                    },
                    redirect: None,
                };
                // The packet region is the whole buffer for now and narrowed
                // to [meta, data_end) right after it is registered.
                memory.add_mut(RegionKind::Packet, slice);
                memory.set_region(RegionKind::Packet, pkt.meta, pkt.data_end - pkt.meta);
                init_ctx(&memory, &mut pkt, kind, input);
                let result = self.vm_run(idx, memory, [ctx_addr, 0, 0, 0, 0], Some(pkt), tracer);
                let packet = result.as_ref().ok().and_then(|r| r.packet).map(|p| {
                    let off = (p.data - base) as usize;
                    let len = (p.data_end - p.data) as usize;
                    buf.as_mut_slice()[off..off + len].to_vec()
                });
                let packet = match (&result, packet, self.programs[idx].kind) {
                    // A socket filter keeps the first r0 bytes.
                    (Ok(r), Some(mut p), ProgramType::SocketFilter) => {
                        p.truncate(r.r0.min(p.len() as u64) as usize);
                        Some(p)
                    }
                    (_, p, _) => p,
                };
                Ok(ObjectRun {
                    result,
                    kind,
                    packet,
                })
            }
        }
    }

    /// The name of a program's verdict for return value `r0`.
    pub fn verdict(&self, idx: usize, r0: u64) -> Option<String> {
        verdict_name(self.programs[idx].kind, r0)
    }
}

/// The name of a program type's verdict for return value `r0`, if the type
/// has named verdicts.
pub fn verdict_name(kind: ProgramType, r0: u64) -> Option<String> {
    {
        match kind {
            ProgramType::Xdp => Some(xdp_verdict(r0).to_string()),
            ProgramType::SchedCls | ProgramType::SchedAct => Some(tc_verdict(r0).to_string()),
            ProgramType::SocketFilter => Some(if r0 == 0 {
                "DROP".into()
            } else {
                format!("KEEP({r0})")
            }),
            ProgramType::CgroupSkb => Some(if r0 & 1 == 1 {
                "ALLOW".into()
            } else {
                "DENY".into()
            }),
            _ => None,
        }
    }
}

/// Fills the context's fields for a packet.
fn init_ctx(memory: &MemoryMap<'_>, pkt: &mut PacketState, kind: ContextKind, input: &[u8]) {
    use oxbpf_abi::ctx::{sk_buff as s, xdp_md as x};
    let w32 = |off: u32, v: u32| {
        let base = match pkt.ctx {
            CtxPointers::Xdp(b) | CtxPointers::Skb(b) => b,
            CtxPointers::None => return,
        };
        let _ = memory.write_bytes_host(base + off as u64, &v.to_le_bytes());
    };
    match kind {
        ContextKind::Xdp => {
            w32(x::DATA, pkt.data as u32);
            w32(x::DATA_END, pkt.data_end as u32);
            w32(x::DATA_META, pkt.meta as u32);
            w32(x::INGRESS_IFINDEX, 1);
            w32(x::RX_QUEUE_INDEX, 0);
        }
        _ => {
            let proto = if input.len() >= 14 {
                u16::from_ne_bytes([input[12], input[13]]) as u32
            } else {
                0
            };
            w32(s::LEN, input.len() as u32);
            // Network byte order, as skb->protocol.
            w32(s::PROTOCOL, proto);
            w32(s::INGRESS_IFINDEX, 1);
            w32(s::IFINDEX, 1);
            w32(s::DATA, pkt.data as u32);
            w32(s::DATA_END, pkt.data_end as u32);
            w32(s::DATA_META, pkt.meta as u32);
            w32(s::WIRE_LEN, input.len() as u32);
        }
    }
}

/// The result of running an object's program on one input.
pub struct ObjectRun {
    pub result: Result<RunResult, VmError>,
    pub kind: ContextKind,
    /// The packet after the run (packet programs).
    pub packet: Option<Vec<u8>>,
}

/// Resolves map references (`BPF_PSEUDO_MAP_IDX(_VALUE)`, and map fds taken
/// as indices) into handles and value addresses.
fn resolve(p: &ProgramDef, maps: &[Arc<Map>]) -> Result<Program, LoadError> {
    let mut program = Program::from_slots(p.insns.clone()).map_err(|error| LoadError::Program {
        name: p.name.clone(),
        error,
    })?;
    let refs: Vec<(usize, Imm64)> = program
        .instructions()
        .iter()
        .filter_map(|l| match l.insn {
            Instruction::LoadImm64 { imm, .. }
                if !matches!(imm, Imm64::Value(_) | Imm64::Func(_)) =>
            {
                Some((l.index, imm))
            }
            _ => None,
        })
        .collect();
    for (insn, imm) in refs {
        let bad = |m: String| LoadError::Reference {
            name: p.name.clone(),
            insn,
            message: m,
        };
        let value = match imm {
            Imm64::MapIdx(i) | Imm64::MapFd(i) => {
                let i = usize::try_from(i)
                    .ok()
                    .filter(|&i| i < maps.len())
                    .ok_or_else(|| bad(format!("map {i} does not exist")))?;
                MAP_HANDLE_TAG | i as u64
            }
            Imm64::MapIdxValue { idx, offset } | Imm64::MapValue { fd: idx, offset } => {
                let m = usize::try_from(idx)
                    .ok()
                    .and_then(|i| maps.get(i))
                    .ok_or_else(|| bad(format!("map {idx} does not exist")))?;
                let arena = m.arena().ok_or_else(|| {
                    bad(format!(
                        "map `{}` has no directly addressable values",
                        m.spec.name
                    ))
                })?;
                if offset < 0 || offset as usize > arena.len() {
                    return Err(bad(format!(
                        "offset {offset} is outside map `{}`",
                        m.spec.name
                    )));
                }
                arena.addr(offset as usize)
            }
            Imm64::BtfId { .. } => {
                return Err(bad(
                    "kernel variables (BTF ids) exist only in the kernel".into()
                ));
            }
            Imm64::Value(_) | Imm64::Func(_) => continue,
        };
        program.resolve_imm64(insn, value);
    }
    Ok(program)
}
