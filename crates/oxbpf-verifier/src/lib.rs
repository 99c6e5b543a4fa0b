//! # oxbpf-verifier: proving programs safe
//!
//! Abstract interpretation over every path of the program, as the Linux
//! verifier does: registers carry a type (scalar, context, stack, map value,
//! packet, ...) and, for scalars and pointer offsets, known bits plus signed
//! and unsigned ranges (`scalar.rs`); the stack is tracked byte by byte with
//! spilled registers, and acquired references and the spin lock held are
//! part of the state (`state.rs`); each conditional jump refines both arms
//! (`refine.rs`); helper calls are checked against the kernel's prototypes
//! and context accesses against per-type layouts (`protos.rs`, from
//! `oxbpf-abi`). States reaching an instruction already proven safe from a
//! state that covers them are pruned.
//!
//! The public surface is small: [`verify`], [`prove`] and [`prove_object`]
//! (the proof the JIT needs to run code unchecked), [`Options`],
//! [`Report`] and [`Rejection`].
//!
//! A rejection names the instruction, the reason, the registers involved
//! and the branch decisions that led there, and — with the object's BTF
//! line info — the C source line. No IO; no panics on any input.
#![forbid(unsafe_code)]

mod check;
pub mod kbtf;
mod kfuncs;
mod protos;
mod refine;
mod scalar;
mod state;

use std::fmt;

use oxbpf_abi::map_type;
use oxbpf_obj::{Object, ProgramDef, ProgramType};

/// A map as the verifier sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapInfo {
    /// The map's name, for messages.
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// Programs may not write (`.rodata`, BPF_F_RDONLY_PROG).
    pub read_only: bool,
    /// For maps of maps: the index (in the same list) of the inner map template.
    pub inner: Option<u32>,
    /// The map was created with BTF for its value (the kernel needs it to
    /// find special fields such as a spin lock).
    pub has_btf: bool,
    /// Offset of the `struct bpf_spin_lock` in the value, if it has one.
    pub spin_lock: Option<u32>,
}

/// What a global function's argument is, from its BTF prototype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GlobalArg {
    Scalar,
    /// A pointer to the program's context.
    Ctx,
    /// A pointer to `size` bytes, or NULL.
    Mem {
        size: u32,
    },
}

/// A global (non-static) function: the kernel verifies it once on its own,
/// from the types of its arguments, and each call only checks the
/// arguments; the result is an unknown scalar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalFunc {
    pub pc: usize,
    pub name: String,
    pub args: Vec<GlobalArg>,
}

/// How to verify.
#[derive(Clone, Debug)]
pub struct Options {
    /// Global functions of the program (from BTF func info).
    pub global_funcs: Vec<GlobalFunc>,
    /// Internal: verify the global function with this index alone.
    pub entry: Option<usize>,
    pub prog_type: ProgramType,
    pub maps: Vec<MapInfo>,
    /// Raw programs (`ProgramType::Unspec`): r1 points to this many bytes of
    /// memory and r2 holds the length.
    pub raw_mem_len: Option<u64>,
    /// Privileged policy (root): pointers may be stored in maps and
    /// compared; unprivileged rejects pointer leaks.
    pub privileged: bool,
    /// Allow storing pointers into maps and the context even when
    /// privileged (the kernel's CAP_PERFMON policy). Off by default: a
    /// pointer written into a map leaks a kernel address to user space.
    pub allow_ptr_leaks: bool,
    /// GPL-compatible license (GPL-only helpers allowed).
    pub gpl: bool,
    pub max_insns_processed: u64,
    /// Record a per-instruction log.
    pub log: bool,
    /// The attach point a cgroup program's section names (`connect4`,
    /// `sendmsg6`, … of `cgroup/connect4`): the kernel's
    /// expected_attach_type, which decides the context fields a
    /// `cgroup_sock_addr` program may touch. `None`: not checked.
    pub attach: Option<String>,
    /// Precision tracking in pruning (as the kernel's): an imprecise
    /// scalar of a stored state stands for any scalar. Off only to check
    /// that it changes no verdict.
    pub precise: bool,
    /// The kernel's BTF (vmlinux): with it, the arguments of BTF-attached
    /// programs (`tp_btf`, `fentry`, `fexit`, `fmod_ret`, `lsm`, `iter`)
    /// and the kernel objects helpers return are typed pointers whose
    /// reads are checked against the kernel's structs (the kernel's
    /// PTR_TO_BTF_ID). Without it those are plain numbers.
    pub kernel_btf: Option<std::sync::Arc<oxbpf_obj::core::KernelBtf>>,
    /// The program's own BTF, where its code names its own types
    /// (`bpf_obj_new`'s local type id).
    pub prog_btf: Option<std::sync::Arc<oxbpf_obj::Btf>>,
    /// What a BTF-attached program attaches to (from its section name).
    pub btf_target: Option<kbtf::BtfTarget>,
    /// Names of the kfuncs the program calls, by instruction (the
    /// object's extern calls), for calls the kernel's BTF cannot resolve.
    pub kfunc_names: Vec<(usize, String)>,
    /// `lddw` of `__ksym` externs: (instruction, name, declared `__weak`).
    pub ksym_loads: Vec<(usize, String, bool)>,
    /// Loops by abstract interpretation (`--loops widen`), beyond the
    /// kernel: a path that comes back to a loop head joins (then widens)
    /// its state with the head's, until the head's state holds every
    /// iteration's; memory safety is proven for any trip count, and
    /// termination is left to an instruction budget (the proof says so).
    /// Pruning then compares states exactly (no precision or liveness
    /// marks, which an unfinished loop has not settled).
    pub widen_loops: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            prog_type: ProgramType::Unspec,
            maps: Vec::new(),
            raw_mem_len: None,
            privileged: true,
            allow_ptr_leaks: false,
            gpl: true,
            max_insns_processed: 1_000_000,
            log: false,
            global_funcs: Vec::new(),
            entry: None,
            attach: None,
            precise: true,
            kernel_btf: None,
            prog_btf: None,
            btf_target: None,
            kfunc_names: Vec::new(),
            ksym_loads: Vec::new(),
            widen_loops: false,
        }
    }
}

/// What a verification cost, as the kernel's `BPF_LOG_STATS` line reports
/// it (`processed N insns ... max_states_per_insn M total_states T
/// peak_states P`), with the paths pruned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Instructions processed (each instruction once per path reaching it).
    pub insns_processed: u64,
    /// States stored at prune points.
    pub total_states: u64,
    /// The most states stored at once (stored states that kept failing to
    /// prune are forgotten, as the kernel does).
    pub peak_states: u64,
    /// The most states stored at one instruction.
    pub max_states_per_insn: u64,
    /// Paths that ended because a stored state covered them.
    pub pruned: u64,
}

impl Stats {
    /// Both verifications' counts (a program and its global functions):
    /// sums, and the larger of the maxima.
    pub fn add(&mut self, o: &Stats) {
        self.insns_processed += o.insns_processed;
        self.total_states += o.total_states;
        self.peak_states = self.peak_states.max(o.peak_states);
        self.max_states_per_insn = self.max_states_per_insn.max(o.max_states_per_insn);
        self.pruned += o.pruned;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "processed {} insns, max_states_per_insn {}, total_states {}, peak_states {}, pruned {}",
            self.insns_processed,
            self.max_states_per_insn,
            self.total_states,
            self.peak_states,
            self.pruned
        )
    }
}

/// A proof of safety, with statistics.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub insns_processed: u64,
    pub stats: Stats,
    pub log: Vec<String>,
    /// A loop was verified by widening: the program's termination is not
    /// proven (run it with an instruction budget).
    pub widened: bool,
}

/// Why a program was rejected.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// Instruction index of the first unsafe operation.
    pub pc: usize,
    /// The instruction as assembly.
    pub insn: String,
    pub message: String,
    /// Initialized registers at that point: (number, description).
    pub regs: Vec<(u8, String)>,
    /// Branch decisions that led there: (instruction, taken).
    pub path: Vec<(usize, bool)>,
    pub insns_processed: u64,
    /// What the verification cost until it stopped.
    pub stats: Stats,
    pub log: Vec<String>,
    /// Other instructions the reason is about, with what they did (the
    /// acquisition of a leaked reference, the lock still held...).
    pub related: Vec<(usize, String)>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "instruction {}: {}: {}",
            self.pc, self.insn, self.message
        )
    }
}

impl std::error::Error for Rejection {}

impl Rejection {
    /// A multi-line explanation: the instruction and its source line, the
    /// reason, the registers, and the path.
    pub fn explain(&self, def: Option<&ProgramDef>) -> String {
        let mut s = format!("rejected at instruction {}: {}\n", self.pc, self.insn);
        if let Some(l) = def.and_then(|d| d.line_for(self.pc)) {
            s.push_str(&format!(
                "  source {}:{}:{}: {}\n",
                l.file,
                l.line,
                l.column,
                l.text.trim()
            ));
        }
        s.push_str(&format!("  reason: {}\n", self.message));
        for (pc, what) in &self.related {
            s.push_str(&format!("  {what} at instruction {pc}"));
            match def.and_then(|d| d.line_for(*pc)) {
                Some(l) => s.push_str(&format!(
                    ", source {}:{}:{}: {}\n",
                    l.file,
                    l.line,
                    l.column,
                    l.text.trim()
                )),
                None => s.push('\n'),
            }
        }
        if !self.regs.is_empty() {
            let regs: Vec<String> = self.regs.iter().map(|(r, d)| format!("R{r}={d}")).collect();
            s.push_str(&format!("  registers: {}\n", regs.join(" ")));
        }
        if !self.path.is_empty() {
            let steps: Vec<String> = self
                .path
                .iter()
                .rev()
                .take(12)
                .rev()
                .map(|(pc, t)| {
                    let line = def
                        .and_then(|d| d.line_for(*pc))
                        .map(|l| format!(" (line {})", l.line))
                        .unwrap_or_default();
                    format!("{pc}{line} {}", if *t { "taken" } else { "not taken" })
                })
                .collect();
            let more = if self.path.len() > 12 {
                format!("... {} earlier branches, then ", self.path.len() - 12)
            } else {
                String::new()
            };
            s.push_str(&format!("  path: {more}{}\n", steps.join(" -> ")));
        }
        s
    }
}

pub use check::verify;

pub(crate) fn alu_name(op: oxbpf_isa::AluOp) -> &'static str {
    use oxbpf_isa::AluOp::*;
    match op {
        Add => "+=",
        Sub => "-=",
        Mul => "*=",
        Div | Sdiv => "/=",
        Or => "|=",
        And => "&=",
        Lsh => "<<=",
        Rsh => ">>=",
        Mod | Smod => "%=",
        Xor => "^=",
        Mov => "=",
        Arsh => "s>>=",
    }
}

/// Allowed return values per program type, where the kernel restricts them.
pub(crate) fn return_range(t: ProgramType, attach: Option<&str>) -> Option<(u64, u64)> {
    // check_return_code: a cgroup_sock_addr program's range depends on
    // its attach type: recvmsg and get{peer,sock}name must return 1
    // (they cannot refuse), bind may also ask for the port to be kept (2, 3).
    if t == ProgramType::CgroupSockAddr
        && let Some(a) = attach
    {
        if ["recvmsg", "getpeername", "getsockname"]
            .iter()
            .any(|p| a.starts_with(p))
        {
            return Some((1, 1));
        }
        if a == "bind4" || a == "bind6" {
            return Some((0, 3));
        }
    }
    match t {
        ProgramType::CgroupSkb => Some((0, 3)),
        ProgramType::CgroupSock
        | ProgramType::CgroupSockAddr
        | ProgramType::CgroupDevice
        | ProgramType::CgroupSysctl
        | ProgramType::CgroupSockopt => Some((0, 1)),
        _ => None,
    }
}

/// Maps of an object, as the verifier sees them.
pub fn maps_of(obj: &Object) -> Vec<MapInfo> {
    let mut out: Vec<MapInfo> = obj
        .maps
        .iter()
        .map(|m| MapInfo {
            name: m.name.clone(),
            has_btf: m.btf_value_type_id != 0 && obj.btf.is_some(),
            spin_lock: obj
                .btf
                .as_ref()
                .filter(|_| m.btf_value_type_id != 0)
                .and_then(|b| b.find_struct(m.btf_value_type_id, "bpf_spin_lock")),
            map_type: m.map_type,
            key_size: m.key_size,
            value_size: match m.map_type {
                map_type::PROG_ARRAY | map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS => 4,
                _ => m.value_size,
            },
            max_entries: m.max_entries,
            read_only: m.flags & (1 << 7) != 0,
            inner: None,
        })
        .collect();
    // Inner map templates go at the end; maps of maps point to them.
    for (i, m) in obj.maps.iter().enumerate() {
        let inner = match (&m.inner, &m.origin) {
            (Some(d), _) => Some(MapInfo {
                name: d.name.clone(),
                map_type: d.map_type,
                key_size: d.key_size,
                value_size: d.value_size,
                max_entries: d.max_entries,
                has_btf: d.btf_value_type_id != 0 && obj.btf.is_some(),
                spin_lock: obj
                    .btf
                    .as_ref()
                    .filter(|_| d.btf_value_type_id != 0)
                    .and_then(|b| b.find_struct(d.btf_value_type_id, "bpf_spin_lock")),
                ..Default::default()
            }),
            (
                None,
                oxbpf_obj::MapOrigin::Legacy {
                    inner_idx: Some(ix),
                    ..
                },
            ) if matches!(m.map_type, map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS) => {
                out.get(*ix as usize).cloned()
            }
            _ => None,
        };
        if let Some(inner) = inner {
            out.push(inner);
            let n = out.len() as u32 - 1;
            out[i].inner = Some(n);
        }
    }
    out
}

/// Why the kernel would refuse to create this map, if it would.
pub fn map_problem(m: &MapInfo) -> Option<String> {
    use map_type::*;
    match m.map_type {
        HASH | PERCPU_HASH | LRU_HASH | LRU_PERCPU_HASH if m.key_size == 0 || m.value_size == 0 => {
            Some("hash maps need key and value sizes".into())
        }
        ARRAY | PERCPU_ARRAY if m.key_size != 4 || m.value_size == 0 => Some(format!(
            "arrays need a 4-byte key and a value (key {}, value {})",
            m.key_size, m.value_size
        )),
        // Local storage (bpf_local_storage_map_alloc_check): an int key, no
        // max_entries (the storage lives with its object), BTF for the value.
        SK_STORAGE | INODE_STORAGE | TASK_STORAGE | CGRP_STORAGE => {
            if m.max_entries != 0 {
                Some(format!(
                    "local storage maps take no max_entries (it is {})",
                    m.max_entries
                ))
            } else if m.key_size != 4 || m.value_size == 0 {
                Some(format!(
                    "local storage maps need an int key and a value (key {}, value {})",
                    m.key_size, m.value_size
                ))
            } else if !m.has_btf {
                Some("local storage maps need BTF for their key and value".into())
            } else {
                None
            }
        }
        CGROUP_STORAGE | PERCPU_CGROUP_STORAGE if m.max_entries != 0 => {
            Some("cgroup storage maps take no max_entries".into())
        }
        CGROUP_STORAGE | PERCPU_CGROUP_STORAGE => None,
        _ if m.max_entries == 0 && !matches!(m.map_type, PERF_EVENT_ARRAY | RINGBUF) => {
            Some("max_entries is 0".into())
        }
        _ => None,
    }
}

/// Evidence that oxbpf's verifier accepted a program for a program type
/// (and, for raw programs, a memory length). Only this crate makes one, so
/// an engine that runs code unchecked on the strength of a `Proof` (the
/// JIT's trusted mode) needs no `unsafe` from its caller, and the digest
/// ties the proof to the exact instructions it was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proof {
    digest: u64,
    prog_type: ProgramType,
    mem_len: Option<u64>,
    needs_budget: bool,
}

impl Proof {
    /// Whether this proof is about exactly these instructions.
    pub fn covers(&self, insns: &[oxbpf_isa::RawInsn]) -> bool {
        insns_digest(insns) == self.digest
    }

    /// Whether the proof covers memory safety only: its loops were
    /// verified by widening, so a run needs an instruction budget.
    pub fn needs_budget(&self) -> bool {
        self.needs_budget
    }

    /// The program type the proof assumed.
    pub fn prog_type(&self) -> ProgramType {
        self.prog_type
    }

    /// For a raw program: the length of the memory in `r1` it assumed.
    pub fn mem_len(&self) -> Option<u64> {
        self.mem_len
    }
}

/// Evidence that every program of an object was accepted (each may
/// tail-call the others, so trusting one needs them all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectProof {
    programs: Vec<Proof>,
}

impl ObjectProof {
    /// Whether the proof is about these programs (instructions and the
    /// type each runs as), in this order.
    pub fn covers<'a>(
        &self,
        programs: impl ExactSizeIterator<Item = (&'a [oxbpf_isa::RawInsn], ProgramType)>,
    ) -> bool {
        programs.len() == self.programs.len()
            && programs
                .zip(&self.programs)
                .all(|((insns, t), p)| p.covers(insns) && p.prog_type == t)
    }
}

/// FNV-1a over the instruction bytes: a proof's tie to its program.
fn insns_digest(insns: &[oxbpf_isa::RawInsn]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in insns {
        for b in i.to_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Verifies a program and returns the proof of it.
pub fn prove(insns: &[oxbpf_isa::RawInsn], opts: &Options) -> Result<Proof, Box<Rejection>> {
    let r = verify(insns, opts)?;
    Ok(Proof {
        digest: insns_digest(insns),
        prog_type: opts.prog_type,
        mem_len: opts.raw_mem_len,
        needs_budget: r.widened,
    })
}

/// Verifies every program of `obj` (each as `prog_type` when given, else
/// as its own type) and returns the proof, or the first rejection with
/// the index of its program.
pub fn prove_object(
    obj: &Object,
    prog_type: Option<ProgramType>,
) -> Result<ObjectProof, (usize, Box<Rejection>)> {
    let opts = Options {
        prog_type: prog_type.unwrap_or(ProgramType::Unspec),
        ..Default::default()
    };
    let mut programs = Vec::new();
    for (i, p) in obj.programs.iter().enumerate() {
        verify_object_program(obj, i, &opts).map_err(|e| (i, e))?;
        programs.push(Proof {
            digest: insns_digest(&p.insns),
            prog_type: prog_type.unwrap_or(p.kind),
            mem_len: None,
            needs_budget: false,
        });
    }
    Ok(ObjectProof { programs })
}

/// Whether every program of `obj` passes (see [`prove_object`]).
pub fn verify_all_programs(obj: &Object, prog_type: Option<ProgramType>) -> bool {
    prove_object(obj, prog_type).is_ok()
}

/// Verifies program `idx` of `obj` with `base` options (its type and maps
/// are taken from the object unless `base.prog_type` is set).
pub fn verify_object_program(
    obj: &Object,
    idx: usize,
    base: &Options,
) -> Result<Report, Box<Rejection>> {
    let p = &obj.programs[idx];
    let mut o = base.clone();
    if o.prog_type == ProgramType::Unspec {
        o.prog_type = p.kind;
    }
    if o.attach.is_none() {
        o.attach = p.section.strip_prefix("cgroup/").map(String::from);
    }
    if o.btf_target.is_none() && matches!(o.prog_type, ProgramType::Tracing | ProgramType::Lsm) {
        o.btf_target = kbtf::BtfTarget::from_section(&p.section);
    }
    o.maps = maps_of(obj);
    // A map the kernel would refuse to create makes a program that uses it
    // unloadable (maps it does not use are not its concern: user space
    // often sizes those before loading).
    let used = used_maps(&p.insns, &o.maps);
    if let Some((i, why)) = o
        .maps
        .iter()
        .enumerate()
        .filter(|(i, _)| used.contains(i))
        .find_map(|(i, m)| map_problem(m).map(|w| (i, w)))
    {
        let name = obj.maps.get(i).map(|m| m.name.as_str()).unwrap_or("?");
        return Err(Box::new(Rejection {
            pc: 0,
            insn: String::new(),
            message: format!("map `{name}` has an invalid definition: {why}"),
            regs: Vec::new(),
            path: Vec::new(),
            insns_processed: 0,
            stats: Stats::default(),
            log: Vec::new(),
            related: Vec::new(),
        }));
    }
    o.gpl = obj.license.as_deref().is_some_and(|l| {
        [
            "GPL",
            "GPL v2",
            "GPL and additional rights",
            "Dual BSD/GPL",
            "Dual MIT/GPL",
            "Dual MPL/GPL",
        ]
        .contains(&l)
    });
    o.global_funcs = global_funcs(obj, p).map_err(|(pc, message)| {
        Box::new(Rejection {
            pc,
            insn: String::new(),
            message,
            regs: Vec::new(),
            path: Vec::new(),
            insns_processed: 0,
            stats: Stats::default(),
            log: Vec::new(),
            related: Vec::new(),
        })
    })?;
    // Kernel function calls name their kfunc; the kernel's BTF gives its id
    // (as libbpf resolves them before loading).
    o.kfunc_names = p.extern_calls.clone();
    o.ksym_loads = p
        .extern_loads
        .iter()
        .map(|(at, n)| {
            (
                *at,
                n.clone(),
                obj.ksyms.iter().any(|k| &k.name == n && k.weak),
            )
        })
        .collect();
    if p.extern_calls
        .iter()
        .any(|(_, n)| n.ends_with("obj_new_impl"))
    {
        o.prog_btf = obj.btf.clone().map(std::sync::Arc::new);
    }
    let mut insns = std::borrow::Cow::Borrowed(&p.insns);
    if let Some(k) = &o.kernel_btf {
        for (at, name) in &p.extern_calls {
            if let (Some(id), Some(i)) = (k.func(name), insns.to_mut().get_mut(*at)) {
                i.imm = id as i32;
            }
        }
    }
    // CO-RE: the kernel relocates the code against its own BTF before it
    // verifies it; so does oxbpf, against the BTF it was given.
    if let (Some(k), Some(btf)) = (&o.kernel_btf, &obj.btf)
        && !p.core_relos.is_empty()
    {
        let mut insns = insns.into_owned();
        let applied =
            oxbpf_obj::core::relocate(&mut insns, &p.core_relos, btf, k).map_err(|e| {
                Box::new(Rejection {
                    pc: e.insn as usize,
                    insn: String::new(),
                    message: e.to_string(),
                    regs: Vec::new(),
                    path: Vec::new(),
                    insns_processed: 0,
                    stats: Stats::default(),
                    log: Vec::new(),
                    related: Vec::new(),
                })
            })?;
        let lines: Vec<String> = if o.log {
            applied
                .iter()
                .enumerate()
                .map(|(i, a)| match a.value {
                    Some(v) => format!(
                        "CO-RE relo #{i}: insn {} <{}> {}: {v}",
                        a.insn, a.kind, a.what
                    ),
                    None => format!(
                        "CO-RE relo #{i}: insn {} <{}> {}: not in the kernel, instruction poisoned",
                        a.insn, a.kind, a.what
                    ),
                })
                .collect()
        } else {
            Vec::new()
        };
        let prefix = |log: &mut Vec<String>| {
            let mut l = lines.clone();
            l.append(log);
            *log = l;
        };
        return match verify(&insns, &o) {
            Ok(mut r) => {
                prefix(&mut r.log);
                Ok(r)
            }
            Err(mut e) => {
                prefix(&mut e.log);
                Err(e)
            }
        };
    }
    verify(&insns, &o)
}

/// Indices of the maps a program's instructions name (`BPF_PSEUDO_MAP_IDX`
/// and `_IDX_VALUE` loads), with the inner templates of maps of maps.
fn used_maps(insns: &[oxbpf_isa::RawInsn], maps: &[MapInfo]) -> std::collections::BTreeSet<usize> {
    let mut used = std::collections::BTreeSet::new();
    for i in insns {
        if i.code == 0x18
            && matches!(
                i.src,
                oxbpf_isa::raw::BPF_PSEUDO_MAP_IDX | oxbpf_isa::raw::BPF_PSEUDO_MAP_IDX_VALUE
            )
            && i.imm >= 0
        {
            used.insert(i.imm as usize);
        }
    }
    let inner: Vec<usize> = used
        .iter()
        .filter_map(|&m| maps.get(m).and_then(|x| x.inner).map(|x| x as usize))
        .collect();
    used.extend(inner);
    used
}

/// The program's global functions and their argument kinds, from BTF.
fn global_funcs(
    obj: &Object,
    p: &oxbpf_obj::ProgramDef,
) -> Result<Vec<GlobalFunc>, (usize, String)> {
    use oxbpf_obj::btf::Kind as K;
    let Some(btf) = &obj.btf else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for fi in &p.func_info {
        let pc = fi.insn as usize;
        if pc == 0 {
            continue;
        }
        let Some(f) = btf.get(fi.type_id) else {
            continue;
        };
        let K::Func { proto, linkage: 1 } = f.kind else {
            continue;
        };
        let Some(K::FuncProto { params, .. }) = btf.get(proto).map(|t| &t.kind) else {
            continue;
        };
        let mut args = Vec::new();
        for (i, (pname, ty)) in params.iter().enumerate() {
            let t = btf.resolve(*ty);
            let arg = match btf.get(t).map(|t| &t.kind) {
                Some(K::Int { .. } | K::Enum { .. } | K::Enum64 { .. }) => GlobalArg::Scalar,
                Some(K::Ptr { target }) => {
                    let tt = btf.resolve(*target);
                    let tname = btf.get(tt).map(|t| t.name.as_str()).unwrap_or("");
                    if is_ctx_type_name(tname) {
                        GlobalArg::Ctx
                    } else {
                        match btf.size_of(tt) {
                            Some(n) if n > 0 && n <= 1 << 29 => GlobalArg::Mem { size: n as u32 },
                            _ => {
                                return Err((
                                    pc,
                                    format!(
                                        "global function {}: argument {} `{pname}` points to a type of unknown size; make the function static or pass a sized type",
                                        f.name,
                                        i + 1
                                    ),
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err((
                        pc,
                        format!(
                            "global function {}: argument {} `{pname}` has a type the verifier cannot check; make the function static",
                            f.name,
                            i + 1
                        ),
                    ));
                }
            };
            args.push(arg);
        }
        out.push(GlobalFunc {
            pc,
            name: f.name.clone(),
            args,
        });
    }
    Ok(out)
}

/// Context struct names of the program types (a global function's pointer
/// to one of these is its context argument).
fn is_ctx_type_name(name: &str) -> bool {
    matches!(
        name,
        "__sk_buff"
            | "xdp_md"
            | "bpf_sock_ops"
            | "pt_regs"
            | "bpf_perf_event_data"
            | "bpf_raw_tracepoint_args"
            | "bpf_sock"
            | "bpf_sock_addr"
            | "sk_msg_md"
            | "sk_reuseport_md"
            | "bpf_sockopt"
            | "bpf_sysctl"
            | "bpf_cgroup_dev_ctx"
            | "bpf_sk_lookup"
            | "bpf_flow_keys"
    )
}
