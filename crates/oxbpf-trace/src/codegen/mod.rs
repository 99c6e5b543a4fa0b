//! From the syntax tree to eBPF: types inferred for maps and variables,
//! one program per attach point, map definitions, and the tables user
//! space needs to read what the programs send (printf formats, record
//! layouts). The generated code keeps integer temporaries in the
//! callee-saved registers r7–r9 (they survive helper calls) and spills to
//! the stack beyond them; r6 holds the context.

use std::collections::{HashMap, HashSet};

use oxbpf_isa::raw::*;
use oxbpf_obj::{MapDef, MapOrigin, Object, ProgramDef, ProgramType};

mod access;
mod btf;
mod funcs;

use crate::asm::*;
use crate::ast::*;
use crate::ctypes::TypeDb;
use crate::diag::{Diagnostic, Span};
use crate::probes::{ProbeKind, parse_attach};
use crate::types::{MapKind, TpField, Ty, parse_format};

/// What the compiler asks of the system it compiles for (the runtime
/// answers from tracefs; tests answer from fixtures).
pub trait Env {
    /// The text of tracefs `events/CATEGORY/NAME/format`.
    fn tracepoint_format(&self, category: &str, name: &str) -> Result<String, String>;
    /// The tracepoints matching glob patterns `category:name`, sorted.
    fn tracepoints(&self, category: &str, name: &str) -> Result<Vec<(String, String)>, String>;
    /// The running kernel's BTF (asked for only when a script uses a
    /// kernel type: `curtask->…`, casts, typed raw tracepoint arguments).
    fn kernel_btf(&self) -> Result<&oxbpf_obj::btfindex::BtfIndex, String> {
        Err("no kernel BTF is available".into())
    }
    /// The address of a kernel symbol (`kaddr`).
    fn kernel_symbol(&self, name: &str) -> Result<u64, String> {
        Err(format!(
            "no kernel symbols are available to look up `{name}`"
        ))
    }
    /// The address of a symbol in a binary (`uaddr`).
    fn user_symbol(&self, path: &str, name: &str) -> Result<u64, String> {
        Err(format!(
            "no symbols of {path} are available to look up `{name}`"
        ))
    }
    /// Online CPUs (`ncpus`).
    fn ncpus(&self) -> u32 {
        1
    }
    /// The file a uprobe's or USDT probe's path names (`libc`, a name in
    /// PATH), as probe names show it.
    fn resolve_binary(&self, path: &str) -> Result<String, String> {
        Ok(path.to_string())
    }
    /// The functions of binary `path` whose names match the glob
    /// `pattern`, sorted (uprobe wildcards).
    fn uprobe_functions(&self, path: &str, pattern: &str) -> Result<Vec<String>, String> {
        Err(format!(
            "no symbols of {path} are available to match `{pattern}`"
        ))
    }
    /// The USDT probes of binary `path` whose provider (any, if `None`)
    /// and name match the globs, as (provider, name), each once, sorted
    /// (USDT wildcards).
    fn usdt_probes(
        &self,
        path: &str,
        _provider: Option<&str>,
        _name: &str,
    ) -> Result<Vec<(String, String)>, String> {
        Err(format!("no USDT notes of {path} are available"))
    }
    /// The id of a cgroup v2 directory (`cgroupid`): its inode number.
    fn cgroup_id(&self, path: &str) -> Result<u64, String> {
        Err(format!("no cgroup file system is available to find {path}"))
    }
}

/// Compile-time options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Positional parameters `$1…`.
    pub params: Vec<String>,
    /// Map size (config `max_map_keys`; bpftrace's default 4096).
    pub max_map_keys: Option<u32>,
    /// `--unsafe`: functions that act on the system (`system`, `signal`).
    pub unsafe_ok: bool,
    /// A `-c` command is run (`cpid` needs one).
    pub child: bool,
    /// The script's name and text, for the line records of the generated
    /// object (none when the text is empty).
    pub file: String,
    pub source: String,
}

/// helper ids
mod helper {
    pub const MAP_LOOKUP: i32 = 1;
    pub const MAP_UPDATE: i32 = 2;
    pub const MAP_DELETE: i32 = 3;
    pub const KTIME_GET_NS: i32 = 5;
    pub const GET_PRANDOM_U32: i32 = 7;
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
    pub const GET_CURRENT_PID_TGID: i32 = 14;
    pub const GET_CURRENT_UID_GID: i32 = 15;
    pub const GET_CURRENT_COMM: i32 = 16;
    pub const GET_STACKID: i32 = 27;
    pub const GET_CURRENT_TASK: i32 = 35;
    pub const GET_FUNC_IP: i32 = 173;
    pub const GET_CURRENT_CGROUP_ID: i32 = 80;
    pub const PROBE_READ_USER: i32 = 112;
    pub const PROBE_READ_KERNEL: i32 = 113;
    pub const PROBE_READ_USER_STR: i32 = 114;
    pub const PROBE_READ_KERNEL_STR: i32 = 115;
    pub const JIFFIES64: i32 = 118;
    pub const RINGBUF_OUTPUT: i32 = 130;
    pub const FOR_EACH_MAP_ELEM: i32 = 164;
    pub const MAP_LOOKUP_PERCPU_ELEM: i32 = 195;
}

/// Record kinds in the event ring buffer (the first u64 of a record);
/// printf records use their format's index plus `PRINTF_BASE`.
pub mod event {
    pub const EXIT: u64 = 1;
    pub const PRINT: u64 = 2;
    pub const CLEAR: u64 = 3;
    pub const ZERO: u64 = 4;
    /// `print_rows`/`print_hist`: the layout's index in
    /// [`super::Compiled::layouts`].
    pub const LAYOUT: u64 = 5;
    pub const PRINTF_BASE: u64 = 1000;
}

/// One `@map` of the script.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapInfo {
    /// `@name` without the `@` (empty for `@`).
    pub name: String,
    /// The key's components (empty: a scalar map, kernel key 8 zero bytes).
    pub key: Vec<Ty>,
    pub kind: MapKind,
    /// Index in the object's maps.
    pub index: usize,
    /// A per-CPU array of this many entries instead of a hash (see
    /// [`MapInfo::array_entries`]); `None` until the map is declared.
    pub array: Option<u32>,
}

impl MapInfo {
    /// A key-less aggregation held in a per-CPU array (one entry; one per
    /// bucket for histograms) whose lookup the kernel inlines, instead of
    /// a hash with one key: the same values at a fraction of the cost. An
    /// array's entries always exist, so maps whose entries a probe deletes
    /// or tests, and sums (whose zero is a value), stay hashes. bpftrace
    /// 0.17 does the same for `count()`, which is why `@c: 0` prints for a
    /// count that never ran.
    pub fn array_entries(key: &[Ty], kind: &MapKind) -> Option<u32> {
        if !key.is_empty() {
            return None;
        }
        match *kind {
            MapKind::Count | MapKind::Min | MapKind::Max | MapKind::Avg | MapKind::Stats => Some(1),
            // Bucket 0 (negative), then 2^bits a power of two: the
            // values 0 ..= 2^bits - 1 one a bucket, and up to 2^62 ..
            // 2^63 - 1 (for bits 0: 1 (zero), 2..=64 (2^0 ..= 2^62)).
            MapKind::Hist { bits } => Some(((64 - bits) << bits) + 1),
            MapKind::Lhist { min, max, step } if step > 0 && max > min => {
                let n = crate::output::lhist_buckets(min, max, step);
                u32::try_from(n + 2).ok()
            }
            _ => None,
        }
    }

    /// The kernel map's name: `AT_NAME` (`AT__` for `@`).
    pub fn symbol(&self) -> String {
        format!(
            "AT_{}",
            if self.name.is_empty() {
                "_"
            } else {
                &self.name
            }
        )
    }

    /// Bytes of the user's part of the kernel key.
    pub fn key_size(&self) -> usize {
        if self.key.is_empty() {
            8
        } else {
            self.key.iter().map(Ty::stored_size).sum()
        }
    }
}

/// One printf (or errorf, warnf, print of a value, time, system, cat)
/// of the script: a record user space formats.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PrintfInfo {
    pub kind: PrintKind,
    pub format: String,
    pub args: Vec<Ty>,
    pub span: Span,
}

/// What user space does with a formatted record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PrintKind {
    /// Writes it to the output.
    Printf,
    /// Writes it to standard error as an error or a warning, with the
    /// script's place.
    Errorf,
    Warnf,
    /// `print(value)`: the value and a newline.
    Print,
    /// `time(fmt)`: the local time by the strftime format.
    Time,
    /// Runs the text as a shell command (`--unsafe`).
    System,
    /// Writes the contents of the file it names.
    Cat,
    /// `join()`: a count, then that many strings, printed with the
    /// format (the delimiter) between them.
    Join,
}

/// One program: the probe it came from and what to attach it to.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbeProgram {
    /// The program's name in the object.
    pub program: String,
    pub kind: ProbeKind,
    /// Index of the probe in the script.
    pub probe: usize,
    pub span: Span,
    /// How many attach points it stands for (system call tracepoints
    /// share one program).
    pub count: usize,
}

/// The compiled script.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub object: Object,
    pub programs: Vec<ProbeProgram>,
    pub maps: Vec<MapInfo>,
    pub printfs: Vec<PrintfInfo>,
    /// The event ring buffer's map index.
    pub events: usize,
    /// The map holding the start time (`elapsed`), index.
    pub start_time: usize,
    /// The count of records lost to a full ring buffer ([`lost_records`]
    /// reads its value), index.
    pub lost: usize,
    /// Source line of each instruction of each program (for `-d`).
    pub lines: HashMap<String, Vec<Span>>,
    /// Map entries user space writes after load and before attaching:
    /// (map index, key, value).
    pub init: Vec<(usize, Vec<u8>, Vec<u8>)>,
    /// `config = { missing_probes = … }`: what a probe that does not
    /// exist here (a function not in the binary) does.
    pub missing_probes: MissingProbes,
    /// The script's `print_rows`/`print_hist` statements.
    pub layouts: Vec<crate::layout::Layout>,
}

/// bpftrace's `missing_probes` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MissingProbes {
    /// The run fails, naming the probe.
    Error,
    /// The probe is skipped with a warning (bpftrace's default); the run
    /// fails only if no probe is left.
    #[default]
    Warn,
    /// The probe is skipped silently.
    Ignore,
}

impl Compiled {
    /// What `-d bytecode` prints: each program's instructions, the
    /// script's line above the instructions generated for it.
    pub fn listing(&self, source: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let index = crate::diag::LineIndex::new(source);
        for (i, p) in self.programs.iter().enumerate() {
            let def = &self.object.programs[i];
            let _ = writeln!(
                out,
                "{} ({} instructions):",
                p.kind.full_name(),
                def.insns.len()
            );
            let spans = self.lines.get(&p.program).cloned().unwrap_or_default();
            let mut last_line = 0;
            for l in oxbpf_isa::decode(&def.insns).unwrap_or_default() {
                if let Some(s) = spans.get(l.index) {
                    let line = index.line_col(s.start).0;
                    if line != last_line {
                        last_line = line;
                        let text = index.line(line).trim();
                        let _ = writeln!(out, "; {text}");
                    }
                }
                let _ = writeln!(out, "{:>5}: {}", l.index, l.insn);
            }
            out.push('\n');
        }
        out
    }
}

/// System calls a raw-tracepoint program stands for.
#[derive(Clone, Debug)]
pub struct Syscalls {
    /// `sys_exit` (else `sys_enter`).
    pub exit: bool,
    /// (number, the tracepoint's full name for `probe`).
    pub calls: Vec<(u32, String)>,
    /// For several calls: the maps of member numbers and of names.
    pub tables: Option<(usize, usize)>,
}

/// The system call a `syscalls:sys_enter_X`/`sys_exit_X` tracepoint is
/// for, where its number is known: (exit, number).
fn syscall_of(kind: &ProbeKind) -> Option<(bool, u32)> {
    let ProbeKind::Tracepoint { category, name } = kind else {
        return None;
    };
    if category != "syscalls" {
        return None;
    }
    let (exit, call) = match name.strip_prefix("sys_enter_") {
        Some(c) => (false, c),
        None => (true, name.strip_prefix("sys_exit_")?),
    };
    oxbpf_abi::syscalls::number(call).map(|nr| (exit, nr))
}

/// Whether a probe reads `args`.
fn uses_args(p: &Probe) -> bool {
    let mut f = |e: &Expr| matches!(&e.kind, ExprKind::Ident(n) if n == "args");
    p.predicate.as_ref().is_some_and(|e| e.any(&mut f)) || crate::ast::any_expr(&p.body, &mut f)
}

/// Maps an entry of which is deleted or tested in a probe: these stay
/// hash maps (an array's entries cannot be deleted and always exist).
fn maps_keyed_in_probes(prog: &Program) -> HashSet<String> {
    let mut out = HashSet::new();
    for p in &prog.probes {
        let mut f = |e: &Expr| {
            if let ExprKind::Call { name, args } = &e.kind
                && (name == "delete" || name == "has_key")
                && let Some(Expr {
                    kind: ExprKind::Map { name: m, .. },
                    ..
                }) = args.first()
            {
                out.insert(m.clone());
            }
            false
        };
        if let Some(e) = &p.predicate {
            e.any(&mut f);
        }
        crate::ast::any_expr(&p.body, &mut f);
    }
    out
}

type R<T> = Result<T, Diagnostic>;

fn err<T>(span: Span, msg: impl Into<String>) -> R<T> {
    Err(Diagnostic::new(span, msg))
}

/// Builtins the language has (for "did you mean" hints).
pub const BUILTINS: &[&str] = &[
    "pid", "tid", "uid", "gid", "nsecs", "elapsed", "cpu", "cpid", "func", "comm", "cgroup",
    "curtask", "rand", "jiffies", "retval", "probe", "args", "arg0", "arg1", "arg2", "arg3",
    "arg4", "arg5", "ncpus", "kstack", "ustack", "username", "ppid", "true", "false",
];

/// Functions the language has.
pub const FUNCTIONS: &[&str] = &[
    "printf",
    "exit",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stats",
    "hist",
    "lhist",
    "delete",
    "clear",
    "zero",
    "print",
    "print_rows",
    "print_hist",
    "print_stacks",
    "str",
    "strncmp",
    "errorf",
    "warnf",
    "kstack",
    "ustack",
    "ksym",
    "usym",
    "kaddr",
    "uaddr",
    "reg",
    "time",
    "strftime",
    "ntop",
    "pton",
    "buf",
    "has_key",
    "len",
    "bswap",
    "strcontains",
    "cgroupid",
    "signal",
    "system",
    "cat",
    "kptr",
    "uptr",
    "nsecs",
    "join",
    "strerror",
    "cgroup_path",
    "syscall_name",
    "disk_name",
];

/// Compiles a parsed script.
pub fn compile(prog: &Program, env: &dyn Env, opts: &Options) -> R<Compiled> {
    let mut c = Compiler {
        env,
        opts,
        maps: Vec::new(),
        printfs: Vec::new(),
        layouts: Vec::new(),
        object_maps: Vec::new(),
        max_keys: opts.max_map_keys.unwrap_or(4096),
        stack_perf: false,
        missing_probes: MissingProbes::default(),
        types: TypeDb::new(env),
        learn: None,
        keyed: maps_keyed_in_probes(prog),
    };
    for s in &prog.structs {
        c.types.define(s).map_err(|m| Diagnostic::new(s.span, m))?;
    }
    for (name, value) in &prog.config {
        match (config_key(name).as_str(), &value.kind) {
            ("max_map_keys", ExprKind::Int(n)) if (1..=u32::MAX as u64).contains(n) => {
                c.max_keys = *n as u32;
            }
            ("missing_probes", ExprKind::Ident(m) | ExprKind::Str(m)) => {
                c.missing_probes = match m.as_str() {
                    "error" => MissingProbes::Error,
                    "warn" => MissingProbes::Warn,
                    "ignore" => MissingProbes::Ignore,
                    _ => {
                        return err(
                            value.span,
                            format!("missing_probes is `error`, `warn` or `ignore`, not `{m}`"),
                        );
                    }
                }
            }
            ("stack_mode", ExprKind::Ident(m)) => match m.as_str() {
                "perf" | "bpftrace" => c.stack_perf = m == "perf",
                _ => {
                    return err(
                        value.span,
                        format!("stack_mode is `bpftrace` or `perf`, not `{m}`"),
                    );
                }
            },
            (
                "max_strlen"
                | "max_type_res_iterations"
                | "stack_mode"
                | "print_maps_on_exit"
                | "max_bpf_progs"
                | "max_probes"
                | "perf_rb_pages"
                | "log_size"
                | "on_stack_limit"
                | "unstable_map_decl"
                | "lazy_symbolication"
                | "cache_user_symbols"
                | "cpp_demangle"
                | "str_trunc_trailer"
                | "license"
                | "print_maps"
                | "show_debug_info"
                | "symbol_source"
                | "use_blazesym"
                | "max_cat_bytes"
                | "max_ast_nodes"
                | "debug_output"
                | "unstable_macro"
                | "unstable_import"
                | "unstable_tseries"
                | "unstable_addr"
                | "unstable_map_decl_warn",
                _,
            ) => {}
            _ => {
                return err(value.span, format!("unknown config `{name}`"));
            }
        }
    }
    // Fixed maps first: the event ring buffer and the start time.
    // The event ring: 512 KiB by default (it is resident, mapped twice;
    // `config = { perf_rb_pages = N }` sizes it in pages, as bpftrace's
    // perf buffers are sized).
    let pages = prog
        .config
        .iter()
        .find(|(n, _)| config_key(n) == "perf_rb_pages")
        .and_then(|(_, v)| match v.kind {
            ExprKind::Int(n) if (1..=1 << 18).contains(&n) => Some(n as u32),
            _ => None,
        })
        .unwrap_or(128);
    c.object_maps.push(map_def(
        "events",
        oxbpf_abi::map_type::RINGBUF,
        0,
        0,
        (pages * 4096).next_power_of_two(),
    ));
    c.object_maps
        .push(map_def("start_time", oxbpf_abi::map_type::ARRAY, 4, 8, 2));
    // Types of maps: first from the syntax (aggregations, literals), then
    // from the code itself. The programs are generated, the types that
    // code gives each map's keys and values kept, and this repeated until
    // they settle (a map may be read in one probe and written in a later
    // one). Only the last round's programs are kept, and only it reports
    // errors.
    for p in &prog.probes {
        c.infer_maps(&p.body)?;
    }
    // Attach points: wildcards expanded. A wildcard over system call
    // tracepoints becomes the raw tracepoints they are built on
    // (sys_enter/sys_exit, filtered by number): a raw tracepoint attaches
    // and detaches without the two RCU waits of a perf event, and many
    // share one program when the script does not read `args` (which
    // differ from one call to the next). A single system call's
    // tracepoint stays a tracepoint, as C programs attach it: the program
    // runs for that call only and reads `args` from its record, cheaper
    // per event than a raw tracepoint that runs for every call and copies
    // the registers (its perf event's close is left to a helper process
    // at exit, `Session::end_in_background`).
    let mut plans: Vec<(usize, Span, ProbeKind, Option<Syscalls>)> = Vec::new();
    let mut init = Vec::new();
    for (i, p) in prog.probes.iter().enumerate() {
        for (text, span) in &p.attach {
            let text = c.expand_params(text, *span)?;
            let kind = parse_attach(&text, *span)?;
            let kinds = c.expand(kind, *span)?;
            let mut plan: Vec<(ProbeKind, Option<Syscalls>)> = Vec::new();
            let mut merged: [Option<Syscalls>; 2] = [None, None];
            let merge = kinds.len() > 1 && !uses_args(p);
            let kinds_len = kinds.len();
            for kind in kinds {
                match syscall_of(&kind) {
                    Some((exit, nr)) if merge => {
                        let m = merged[usize::from(exit)].get_or_insert_with(|| Syscalls {
                            exit,
                            calls: Vec::new(),
                            tables: None,
                        });
                        m.calls.push((nr, kind.full_name()));
                    }
                    Some((exit, nr)) if kinds_len > 1 => {
                        let one = Syscalls {
                            exit,
                            calls: vec![(nr, kind.full_name())],
                            tables: None,
                        };
                        plan.push((kind, Some(one)));
                    }
                    _ => plan.push((kind, None)),
                }
            }
            for m in merged.into_iter().flatten() {
                let first = ProbeKind::Tracepoint {
                    category: "syscalls".into(),
                    name: format!("sys_{}_*", if m.exit { "exit" } else { "enter" }),
                };
                plan.push((first, Some(m)));
            }
            for (kind, mut sys) in plan {
                if let Some(m) = sys.as_mut().filter(|m| m.calls.len() > 1) {
                    m.tables = Some(c.syscall_tables(m, &mut init));
                }
                plans.push((i, *span, kind, sys));
            }
        }
    }
    let fixed_maps = c.object_maps.len();
    for _round in 0..4 {
        c.learn = Some(HashMap::new());
        let printfs = c.printfs.len();
        let layouts = c.layouts.len();
        for (i, _, kind, sys) in &plans {
            // Errors wait for the last round.
            let _ = c.program(&prog.probes[*i], kind, sys.as_ref());
        }
        c.object_maps.truncate(fixed_maps);
        c.printfs.truncate(printfs);
        c.layouts.truncate(layouts);
        for m in &mut c.maps {
            m.index = 0;
        }
        let learned = c.learn.take().unwrap_or_default();
        if !c.apply(&learned) {
            break;
        }
    }
    let mut programs = Vec::new();
    let mut defs = Vec::new();
    let mut lines = HashMap::new();
    let mut funcs = Vec::new();
    for (i, span, kind, sys) in plans {
        let name = format!("probe{}_{}", i, programs.len());
        let count = sys.as_ref().map_or(1, |m| m.calls.len());
        let (insns, ptype, section, spans, subprogs) =
            c.program(&prog.probes[i], &kind, sys.as_ref())?;
        funcs.push((name.clone(), subprogs));
        programs.push(ProbeProgram {
            program: name.clone(),
            kind,
            probe: i,
            span,
            count,
        });
        lines.insert(name.clone(), spans);
        defs.push(ProgramDef {
            name,
            section,
            section_offset: 0,
            kind: ptype,
            attach: None,
            insns,
            extern_calls: Vec::new(),
            extern_loads: Vec::new(),
            line_info: Vec::new(),
            func_info: Vec::new(),
            core_relos: Vec::new(),
        });
    }
    // Records the ring buffer had no room for: one global counter (a
    // global-data section, so that the program adds to it in place,
    // without a lookup), in which each lost record adds the helper's
    // -EAGAIN (see `ringbuf_output`). It is the last map, as loaders
    // (ours, libbpf) place global data after the `.maps` section's maps,
    // so that every map keeps its index in a reloaded object; the code
    // refers to it by a placeholder until its index is known.
    c.object_maps.push(MapDef {
        origin: MapOrigin::Data {
            section: LOST_SECTION.into(),
        },
        data: Some(vec![0; 8]),
        ..map_def(LOST_SECTION, oxbpf_abi::map_type::ARRAY, 4, 8, 1)
    });
    let lost = c.object_maps.len() - 1;
    for d in &mut defs {
        for insn in &mut d.insns {
            if insn.code == (BPF_LD | BPF_IMM | BPF_DW)
                && insn.src == BPF_PSEUDO_MAP_IDX_VALUE
                && insn.imm == LOST_MAP
            {
                insn.imm = lost as i32;
            }
        }
    }
    let mut object = Object::from_raw_program("unused", Vec::new());
    let subprogs: Vec<Vec<usize>> = funcs.into_iter().map(|(_, subs)| subs).collect();
    let spans: Vec<&[Span]> = programs
        .iter()
        .map(|p| lines.get(&p.program).map(Vec::as_slice).unwrap_or(&[]))
        .collect();
    object.btf = Some(btf::describe(
        &mut defs,
        &subprogs,
        &spans,
        &mut c.object_maps,
        &c.maps,
        &opts.file,
        &opts.source,
    ));
    object.programs = defs;
    object.maps = c.object_maps;
    Ok(Compiled {
        object,
        programs,
        maps: c.maps,
        printfs: c.printfs,
        events: 0,
        start_time: 1,
        lost,
        lines,
        init,
        missing_probes: c.missing_probes,
        layouts: c.layouts,
    })
}

/// The global-data section (and map) counting lost records.
pub const LOST_SECTION: &str = ".data.lost";
/// The lost counter's map index in the code until the last map's index
/// is known (no other map has it: indexes are small).
const LOST_MAP: i32 = -1;

/// The number of records lost, from the lost counter's value (the sum of
/// the -EAGAIN each failed `bpf_ringbuf_output` returned).
pub fn lost_records(counter: &[u8]) -> u64 {
    const EAGAIN: i64 = 11;
    let v = counter
        .get(..8)
        .map_or(0, |b| i64::from_le_bytes(b.try_into().expect("8 bytes")));
    (v.wrapping_neg() / EAGAIN).max(0) as u64
}

fn map_def(name: &str, map_type: u32, key: u32, value: u32, entries: u32) -> MapDef {
    MapDef {
        name: name.into(),
        map_type,
        key_size: key,
        value_size: value,
        max_entries: entries,
        flags: 0,
        origin: MapOrigin::Btf,
        pinning: 0,
        inner: None,
        init_slots: Vec::new(),
        data: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    }
}

struct Compiler<'a> {
    env: &'a dyn Env,
    opts: &'a Options,
    maps: Vec<MapInfo>,
    printfs: Vec<PrintfInfo>,
    layouts: Vec<crate::layout::Layout>,
    object_maps: Vec<MapDef>,
    max_keys: u32,
    /// `config = { stack_mode = perf }`: stacks print in perf's layout
    /// unless kstack()/ustack() name a mode.
    stack_perf: bool,
    missing_probes: MissingProbes,
    types: TypeDb<'a>,
    /// While types are being learned: the types the generated code gave
    /// each map's keys and values (see [`compile`]).
    learn: Option<HashMap<String, Learned>>,
    /// Maps whose entries a probe deletes or tests (never arrays).
    keyed: HashSet<String>,
}

/// Types a map was seen with in one learning round.
#[derive(Clone, Debug, Default, PartialEq)]
struct Learned {
    key: Vec<Option<Ty>>,
    value: Option<Ty>,
}

/// The type that holds both `a` and `b`, if one does (integers widen,
/// strings take the longer length).
fn unify(a: &Ty, b: &Ty) -> Option<Ty> {
    match (a, b) {
        (Ty::Int { .. }, Ty::Int { .. }) => Some(widen(a.clone())),
        (Ty::Ptr { .. }, Ty::Ptr { .. }) => Some(a.clone()),
        (Ty::Ptr { .. }, Ty::Int { .. }) | (Ty::Int { .. }, Ty::Ptr { .. }) => Some(a.clone()),
        (Ty::Str(x), Ty::Str(y)) => Some(Ty::Str(*x.max(y))),
        (Ty::Tuple(x), Ty::Tuple(y)) if x.len() == y.len() => Some(Ty::Tuple(
            x.iter()
                .zip(y)
                .map(|(a, b)| unify(a, b))
                .collect::<Option<_>>()?,
        )),
        (a, b) if a == b => Some(a.clone()),
        _ => None,
    }
}

impl Compiler<'_> {
    fn max_keys(&self) -> u32 {
        self.max_keys
    }

    /// Takes a learning round's types into the maps; whether any changed.
    fn apply(&mut self, learned: &HashMap<String, Learned>) -> bool {
        let mut changed = false;
        for m in &mut self.maps {
            let Some(l) = learned.get(&m.name) else {
                continue;
            };
            if l.key.len() == m.key.len() {
                for (k, t) in m.key.iter_mut().zip(&l.key) {
                    if let Some(t) = t.clone().map(widen)
                        && *k != t
                    {
                        *k = t;
                        changed = true;
                    }
                }
            }
            if let (MapKind::Scalar(v), Some(t)) = (&mut m.kind, l.value.clone().map(widen))
                && *v != t
            {
                *v = t;
                changed = true;
            }
        }
        changed
    }

    /// Notes, while learning, that map `name`'s key component `i` (of
    /// `n`) or (`i == None`) its value had type `t`.
    fn learn(&mut self, name: &str, n: usize, i: Option<usize>, t: &Ty) {
        let Some(learn) = self.learn.as_mut() else {
            return;
        };
        let l = learn.entry(name.to_string()).or_default();
        if l.key.len() != n {
            l.key = vec![None; n];
        }
        let slot = match i {
            Some(i) => &mut l.key[i],
            None => &mut l.value,
        };
        *slot = Some(match slot.as_ref() {
            None => t.clone(),
            Some(old) => unify(old, t).unwrap_or_else(|| old.clone()),
        });
    }

    /// Tracepoint wildcards become one probe per match.
    fn expand(&self, kind: ProbeKind, span: Span) -> R<Vec<ProbeKind>> {
        let resolve = |p: &str| {
            self.env
                .resolve_binary(p)
                .map_err(|e| Diagnostic::new(span, e))
        };
        let kind = match kind {
            ProbeKind::Uprobe {
                path,
                func,
                offset,
                ret,
            } => ProbeKind::Uprobe {
                path: resolve(&path)?,
                func,
                offset,
                ret,
            },
            ProbeKind::Usdt {
                path,
                provider,
                name,
            } => ProbeKind::Usdt {
                path: resolve(&path)?,
                provider,
                name,
            },
            k => k,
        };
        match &kind {
            ProbeKind::Tracepoint { category, name }
                if category.contains(['*', '?']) || name.contains(['*', '?']) =>
            {
                let found = self
                    .env
                    .tracepoints(category, name)
                    .map_err(|e| Diagnostic::new(span, e))?;
                if found.is_empty() {
                    return err(span, format!("no tracepoint matches `{category}:{name}`"));
                }
                Ok(found
                    .into_iter()
                    .map(|(category, name)| ProbeKind::Tracepoint { category, name })
                    .collect())
            }
            // Uprobe wildcards: one probe per matching function, as
            // bpftrace expands them (each knows its `func` and `probe`).
            ProbeKind::Uprobe {
                path,
                func,
                offset: 0,
                ret,
            } if func.contains(['*', '?']) => {
                let found = self
                    .env
                    .uprobe_functions(path, func)
                    .map_err(|e| Diagnostic::new(span, e))?;
                if found.is_empty() {
                    return err(span, format!("no function of {path} matches `{func}`"));
                }
                Ok(found
                    .into_iter()
                    .map(|f| ProbeKind::Uprobe {
                        path: path.clone(),
                        func: f,
                        offset: 0,
                        ret: *ret,
                    })
                    .collect())
            }
            // USDT wildcards (`usdt:PATH:*`, `usdt:PATH:prov:probe*`): one
            // probe per matching (provider, name) of the binary's notes.
            ProbeKind::Usdt {
                path,
                provider,
                name,
            } if name.contains(['*', '?'])
                || provider.as_deref().is_some_and(|p| p.contains(['*', '?'])) =>
            {
                let found: Vec<ProbeKind> = self
                    .env
                    .usdt_probes(path, provider.as_deref(), name)
                    .map_err(|e| Diagnostic::new(span, e))?
                    .into_iter()
                    .map(|(p, n)| ProbeKind::Usdt {
                        path: path.clone(),
                        provider: Some(p),
                        name: n,
                    })
                    .collect();
                if found.is_empty() {
                    return err(
                        span,
                        format!(
                            "no USDT probe of {path} matches `{}{name}`",
                            provider
                                .as_deref()
                                .map(|p| format!("{p}:"))
                                .unwrap_or_default()
                        ),
                    );
                }
                Ok(found)
            }
            _ => Ok(vec![kind]),
        }
    }

    // ---- map type inference -------------------------------------------

    fn infer_maps(&mut self, body: &[Stmt]) -> R<()> {
        for s in body {
            match &s.kind {
                StmtKind::Assign {
                    target:
                        Expr {
                            kind: ExprKind::Map { name, keys },
                            span,
                        },
                    op,
                    value,
                } => {
                    let kind = match (&value.kind, op) {
                        (ExprKind::Call { name: f, args }, None) => {
                            self.agg_kind(f, args, value.span)?
                        }
                        _ => None,
                    };
                    let kind = match kind {
                        Some(k) => k,
                        None => MapKind::Scalar(self.static_type(value)?),
                    };
                    self.declare_map(name, keys, kind, *span)?;
                }
                StmtKind::Expr(Expr {
                    kind: ExprKind::IncDec { target, .. },
                    ..
                }) => {
                    if let ExprKind::Map { name, keys } = &target.kind {
                        self.declare_map(name, keys, MapKind::Scalar(Ty::I64), target.span)?;
                    }
                }
                StmtKind::If { then, els, .. } => {
                    self.infer_maps(then)?;
                    self.infer_maps(els)?;
                }
                StmtKind::While { body, .. }
                | StmtKind::Unroll { body, .. }
                | StmtKind::For { body, .. }
                | StmtKind::Block(body) => self.infer_maps(body)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn agg_kind(&self, f: &str, args: &[Expr], span: Span) -> R<Option<MapKind>> {
        let want = |n: usize| -> R<()> {
            if args.len() != n {
                return err(
                    span,
                    format!("{f}() takes {n} argument{}", if n == 1 { "" } else { "s" }),
                );
            }
            Ok(())
        };
        Ok(Some(match f {
            "count" => {
                want(0)?;
                MapKind::Count
            }
            "sum" | "min" | "max" | "avg" | "stats" | "hist" => {
                // hist(x, bits): each power of two in 2^bits buckets.
                let mut bits = 0;
                if f == "hist" && args.len() == 2 {
                    bits = match self.const_int(&args[1]) {
                        Some(b @ 0..=5) => b as u32,
                        Some(b) => {
                            return err(args[1].span, format!("hist: bits {b} must be 0..5"));
                        }
                        None => {
                            return err(
                                args[1].span,
                                "hist: bits must be an integer literal (0..5)",
                            );
                        }
                    };
                } else {
                    want(1)?;
                }
                match f {
                    "sum" => MapKind::Sum,
                    "min" => MapKind::Min,
                    "max" => MapKind::Max,
                    "avg" => MapKind::Avg,
                    "stats" => MapKind::Stats,
                    _ => MapKind::Hist { bits },
                }
            }
            "lhist" => {
                want(4)?;
                let lit = |e: &Expr| -> R<i64> {
                    match self.const_int(e) {
                        Some(v) => Ok(v),
                        None => err(
                            e.span,
                            "lhist()'s min, max and step must be constant integers",
                        ),
                    }
                };
                let (min, max, step) = (lit(&args[1])?, lit(&args[2])?, lit(&args[3])?);
                if step <= 0 || max <= min {
                    return err(
                        span,
                        "lhist(x, min, max, step) needs min < max and step > 0",
                    );
                }
                if (max - min) / step > 10_000 {
                    return err(span, "lhist() would have more than 10000 buckets");
                }
                MapKind::Lhist { min, max, step }
            }
            _ => return Ok(None),
        }))
    }

    fn const_int(&self, e: &Expr) -> Option<i64> {
        match &e.kind {
            ExprKind::Int(n) => Some(*n as i64),
            ExprKind::Unary {
                op: UnOp::Neg,
                expr,
            } => self.const_int(expr).map(|v| -v),
            ExprKind::Param(n) => self.param(*n).and_then(|p| p.parse().ok()),
            _ => None,
        }
    }

    /// An attach point with its positional parameters (`$1`, `$#`)
    /// replaced by their text, as bpftrace allows (`interval:s:$1`,
    /// `uprobe:$1:main`).
    fn expand_params(&self, text: &str, span: Span) -> R<String> {
        if !text.contains('$') {
            return Ok(text.to_string());
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            if let Some(r) = after.strip_prefix('#') {
                out.push_str(&self.opts.params.len().to_string());
                rest = r;
                continue;
            }
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            let n: u32 = after[..digits].parse().unwrap_or(0);
            match self.param(n) {
                Some(p) => out.push_str(p),
                None => {
                    return err(
                        span,
                        format!(
                            "the attach point uses ${n}, but {} parameter{} given",
                            self.opts.params.len(),
                            if self.opts.params.len() == 1 {
                                " was"
                            } else {
                                "s were"
                            }
                        ),
                    );
                }
            }
            rest = &after[digits..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn param(&self, n: u32) -> Option<&str> {
        self.opts
            .params
            .get((n as usize).checked_sub(1)?)
            .map(String::as_str)
    }

    fn declare_map(&mut self, name: &str, keys: &[Expr], kind: MapKind, span: Span) -> R<()> {
        let key: Vec<Ty> = keys.iter().map(|k| self.static_type(k)).collect::<R<_>>()?;
        let key: Vec<Ty> = key.into_iter().map(widen).collect();
        // Types here are first guesses (the generated code decides them);
        // only the number of keys and the kind of aggregation are settled
        // by the syntax.
        if let Some(m) = self.maps.iter_mut().find(|m| m.name == name) {
            if m.key.len() != key.len() {
                return err(
                    span,
                    format!(
                        "@{name} is used with {} key{} here and {} elsewhere",
                        key.len(),
                        if key.len() == 1 { "" } else { "s" },
                        m.key.len()
                    ),
                );
            }
            // Strings keep the longest length seen.
            for (a, b) in m.key.iter_mut().zip(&key) {
                if let (Ty::Str(x), Ty::Str(y)) = (a, b) {
                    *x = (*x).max(*y);
                }
            }
            match (&mut m.kind, &kind) {
                (MapKind::Scalar(a), MapKind::Scalar(b)) => {
                    if let (Ty::Str(x), Ty::Str(y)) = (a, b) {
                        *x = (*x).max(*y);
                    }
                }
                (a, b) if a == b => {}
                (a, b) => {
                    return err(
                        span,
                        if a.name() == b.name() {
                            format!(
                                "@{name} holds {} here but {} elsewhere: a map's buckets are the same everywhere",
                                b.describe(),
                                a.describe()
                            )
                        } else {
                            format!("@{name} holds {} here but {} elsewhere", b.name(), a.name())
                        },
                    );
                }
            }
            return Ok(());
        }
        self.maps.push(MapInfo {
            name: name.into(),
            key,
            kind,
            index: 0,
            array: None,
        });
        Ok(())
    }

    /// The type of an expression without generating code (for maps and
    /// variables declared by assignment).
    fn static_type(&self, e: &Expr) -> R<Ty> {
        Ok(match &e.kind {
            ExprKind::Int(_) | ExprKind::ParamCount => Ty::I64,
            ExprKind::Str(s) => Ty::Str(s.len() + 1),
            ExprKind::Param(n) => match self.param(*n) {
                Some(p) if p.parse::<i64>().is_err() => Ty::Str(p.len() + 1),
                _ => Ty::I64,
            },
            ExprKind::Ident(n) => match n.as_str() {
                "comm" => Ty::Str(16),
                "probe" | "func" => Ty::Str(64),
                "true" | "false" => Ty::Bool,
                _ => Ty::U64,
            },
            ExprKind::Call { name, args } => match name.as_str() {
                "str" => Ty::Str(match args.get(1).and_then(|a| self.const_int(a)) {
                    Some(n) if n > 0 => (n as usize).min(200),
                    _ => 64,
                }),
                "pton" => Ty::Buf(funcs::pton_bytes(args, e.span)?.len()),
                "strerror" => Ty::Errno,
                "syscall_name" => Ty::Syscall,
                "disk_name" => Ty::Disk,
                "cgroup_path" => Ty::CgroupPath(funcs::cgroup_filter(args)),
                _ => Ty::I64,
            },
            ExprKind::Tuple(items) => Ty::Tuple(
                items
                    .iter()
                    .map(|i| self.static_type(i).map(widen))
                    .collect::<R<_>>()?,
            ),
            ExprKind::Map { name, .. } => match self.maps.iter().find(|m| &m.name == name) {
                Some(MapInfo {
                    kind: MapKind::Scalar(t),
                    ..
                }) => t.clone(),
                _ => Ty::I64,
            },
            ExprKind::Field { expr, .. } if matches!(&expr.kind, ExprKind::Ident(a) if a == "args") =>
            {
                // A tracepoint field: resolved per probe; strings are the
                // common case to get right for keys.
                Ty::I64
            }
            ExprKind::Ternary { then, .. } => self.static_type(then)?,
            ExprKind::Cast { ty, .. }
                if matches!(ty.base.as_str(), "bool" | "_Bool")
                    && ty.pointers == 0
                    && ty.array.is_none() =>
            {
                Ty::Bool
            }
            _ => Ty::I64,
        })
    }

    // ---- programs -----------------------------------------------------

    /// The per-CPU scratch map for records too large for the stack, at
    /// least `size` bytes long.
    fn scratch_map(&mut self, size: usize) -> usize {
        let size = size.div_ceil(8) as u32 * 8;
        if let Some(i) = self.object_maps.iter().position(|m| m.name == "scratch") {
            let m = &mut self.object_maps[i];
            m.value_size = m.value_size.max(size);
            return i;
        }
        self.object_maps.push(map_def(
            "scratch",
            oxbpf_abi::map_type::PERCPU_ARRAY,
            4,
            size,
            1,
        ));
        self.object_maps.len() - 1
    }

    /// The member and name tables of a program for several system calls.
    fn syscall_tables(
        &mut self,
        m: &Syscalls,
        init: &mut Vec<(usize, Vec<u8>, Vec<u8>)>,
    ) -> (usize, usize) {
        // Names are unique: user space fills the tables by name.
        let ids = self.object_maps.len();
        self.object_maps.push(map_def(
            &format!("sys_ids_{ids}"),
            oxbpf_abi::map_type::ARRAY,
            4,
            1,
            1024,
        ));
        let names = self.object_maps.len();
        self.object_maps.push(map_def(
            &format!("sys_names_{names}"),
            oxbpf_abi::map_type::ARRAY,
            4,
            64,
            1024,
        ));
        for (nr, name) in &m.calls {
            init.push((ids, nr.to_le_bytes().to_vec(), vec![1]));
            let mut n = name.clone().into_bytes();
            n.truncate(63);
            n.resize(64, 0);
            init.push((names, nr.to_le_bytes().to_vec(), n));
        }
        (ids, names)
    }

    fn program(
        &mut self,
        p: &Probe,
        kind: &ProbeKind,
        sys: Option<&Syscalls>,
    ) -> R<GeneratedProgram> {
        let (ptype, section) = match kind {
            ProbeKind::Tracepoint { .. } if sys.is_some() => (
                ProgramType::RawTracepoint,
                format!(
                    "raw_tp/sys_{}",
                    if sys.expect("checked").exit {
                        "exit"
                    } else {
                        "enter"
                    }
                ),
            ),
            // Run once by user space (BPF_PROG_TEST_RUN), in its context.
            ProbeKind::Begin | ProbeKind::End => (ProgramType::RawTracepoint, "raw_tp".to_string()),
            ProbeKind::Tracepoint { category, name } => (
                ProgramType::Tracepoint,
                format!("tracepoint/{category}/{name}"),
            ),
            ProbeKind::RawTracepoint { name } => {
                (ProgramType::RawTracepoint, format!("raw_tp/{name}"))
            }
            ProbeKind::Uprobe {
                path, func, ret, ..
            } => (
                ProgramType::Kprobe,
                format!(
                    "{}/{path}:{func}",
                    if *ret { "uretprobe" } else { "uprobe" }
                ),
            ),
            ProbeKind::Usdt {
                path,
                provider,
                name,
            } => (
                ProgramType::Kprobe,
                format!("usdt/{path}:{}:{name}", provider.as_deref().unwrap_or("*")),
            ),
            ProbeKind::Interval { .. }
            | ProbeKind::Profile { .. }
            | ProbeKind::Software { .. }
            | ProbeKind::Watchpoint { .. } => (ProgramType::PerfEvent, "perf_event".to_string()),
            ProbeKind::Kprobe { func, offset, ret } => {
                let k = if *ret { "kretprobe" } else { "kprobe" };
                (
                    ProgramType::Kprobe,
                    if func.contains(['*', '?']) {
                        // One fprobe link on every matching function.
                        format!("{k}.multi/{func}")
                    } else if *offset != 0 {
                        format!("{k}/{func}+{offset}")
                    } else {
                        format!("{k}/{func}")
                    },
                )
            }
            ProbeKind::Fentry { func, ret } => (
                ProgramType::Tracing,
                format!("{}/{func}", if *ret { "fexit" } else { "fentry" }),
            ),
            ProbeKind::Unavailable { target, .. } => {
                (ProgramType::PerfEvent, format!("perf_event/{target}"))
            }
        };
        let fields = match kind {
            // A program for several system calls reads no `args`.
            ProbeKind::Tracepoint { .. } if sys.is_some_and(|s| s.tables.is_some()) => None,
            ProbeKind::Tracepoint { category, name } => Some(
                self.env
                    .tracepoint_format(category, name)
                    .map(|t| parse_format(&t))
                    .map_err(|e| Diagnostic::new(p.span, e))?,
            ),
            _ => None,
        };
        // A USDT program's links carry spec ids, which the runtime writes
        // to this map whether or not the script reads arguments.
        if matches!(kind, ProbeKind::Usdt { .. }) {
            self.usdt_specs();
        }
        let mut g = Gen {
            c: self,
            a: Asm::default(),
            kind: kind.clone(),
            fields,
            vars: HashMap::new(),
            frame: 0,
            peak: 0,
            over: None,
            free: vec![9, 8, 7],
            spans: Vec::new(),
            loops: Vec::new(),
            exit: None,
            sys: sys.cloned(),
            sys_slots: (0, 0),
            sys_regs: (0, regs::CS),
            fp: R10,
            sub_spans: Vec::new(),
        };
        g.a.mov(R6, R1);
        let exit = g.a.label();
        g.exit = Some(exit);
        if g.sys.is_some() {
            g.syscall_prologue(exit, uses_args(p));
        }
        if let Some(pred) = &p.predicate {
            let v = g.int(pred)?;
            let r = g.load(v, R0);
            g.a.jmp_imm(BPF_JEQ, r, 0, exit);
        }
        g.block(&p.body)?;
        g.a.place(exit);
        g.a.mov_imm(R0, 0);
        g.a.exit();
        if g.peak > 512 {
            return err(
                g.over.unwrap_or(p.span),
                format!(
                    "{} {} bytes of stack; eBPF programs have 512 (fewer or shorter strings and printf arguments)",
                    if g.over.is_some() {
                        "with this statement the probe needs"
                    } else {
                        "this probe needs"
                    },
                    g.peak
                ),
            );
        }
        let (insns, spans, subprogs) = g.finish();
        Ok((insns, ptype, section, spans, subprogs))
    }
}

/// A probe's program: its instructions, type, section, the span of each
/// instruction, where its subprograms start.
type GeneratedProgram = (
    Vec<oxbpf_isa::RawInsn>,
    ProgramType,
    String,
    Vec<Span>,
    Vec<usize>,
);

/// A `config` setting's name as bpftrace reads it: in any case, also as
/// its environment variable (`BPFTRACE_STACK_MODE` is `stack_mode`).
fn config_key(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    match lower.strip_prefix("bpftrace_") {
        Some(k) => k.to_string(),
        None => lower,
    }
}

/// Integers are 64-bit in maps and records.
fn widen(t: Ty) -> Ty {
    match t {
        Ty::Int { signed, .. } => Ty::Int { size: 8, signed },
        t => t,
    }
}

fn compatible(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Int { .. } | Ty::Ptr { .. }, Ty::Int { .. } | Ty::Ptr { .. }) => true,
        (Ty::Str(_), Ty::Str(_)) => true,
        (Ty::Tuple(x), Ty::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| compatible(a, b))
        }
        (a, b) => a == b,
    }
}

/// Where an integer value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Val {
    Reg(Reg),
    /// A stack slot (`r10 + off`).
    Slot(i16),
}

/// A value of any type: integers in a register or slot, the rest in stack
/// memory.
#[derive(Clone, Debug)]
enum Value {
    Int(Val, Ty),
    /// Bytes at `r10 + off`, `ty.stored_size()` long.
    Mem(i16, Ty),
}

struct Gen<'c, 'a> {
    c: &'c mut Compiler<'a>,
    a: Asm,
    kind: ProbeKind,
    fields: Option<Vec<TpField>>,
    /// `$name` -> (slot, type).
    vars: HashMap<String, (i16, Ty)>,
    /// Bytes of stack in use (grows down from r10).
    frame: usize,
    /// The most bytes of stack in use at any point (statements reuse the
    /// space of the ones before).
    peak: usize,
    /// The innermost statement with which the stack use passed 512 bytes.
    over: Option<Span>,
    /// Free temporaries.
    free: Vec<Reg>,
    spans: Vec<Span>,
    /// (continue, break) labels of the enclosing loops.
    loops: Vec<(Label, Label)>,
    exit: Option<Label>,
    /// A raw-tracepoint program for system call tracepoints.
    sys: Option<Syscalls>,
    /// Stack slots of `struct pt_regs *` and the call's number.
    sys_slots: (i16, i16),
    /// The copy of `struct pt_regs` the prologue read in one go: its stack
    /// offset and the first register offset it holds (through `cs`).
    sys_regs: (i16, i16),
    /// The register the stack slots are addressed from: r10 in a probe;
    /// in a `for` callback, r7, the probe's frame passed as the callback's
    /// context, so that the body sees the probe's variables.
    fp: Reg,
    /// Spans of the subprograms' instructions, in the order they are
    /// appended.
    sub_spans: Vec<Vec<Span>>,
}

/// `struct pt_regs` offsets on x86-64.
mod regs {
    pub const ARGS: [i16; 6] = [112, 104, 96, 56, 72, 64]; // di si dx r10 r8 r9
    /// The lowest of them (r10).
    pub const FIRST_ARG: i16 = 56;
    pub const ORIG_AX: i16 = 120;
    pub const CS: i16 = 136;
    /// `__USER_CS`: a 64-bit system call (ia32 ones are not the
    /// `syscalls:` tracepoints' business).
    pub const USER_CS: i32 = 0x33;
}

impl Gen<'_, '_> {
    /// Reads the u64 at `regs + off` (a kernel pointer in the slot
    /// `regs_slot`) into r0.
    fn read_regs(&mut self, regs_slot: i16, off: i16) {
        let tmp = self.alloc(8);
        self.a.mov(R1, self.fp);
        self.a.alu_imm(BPF_ADD, R1, tmp as i32);
        self.a.mov_imm(R2, 8);
        self.a.ldx(8, R3, self.fp, regs_slot);
        self.a.alu_imm(BPF_ADD, R3, off as i32);
        self.a.call(helper::PROBE_READ_KERNEL);
        self.a.ldx(8, R0, self.fp, tmp);
    }

    /// The raw tracepoint's arguments: (regs, id) for sys_enter, (regs,
    /// ret) for sys_exit; only 64-bit calls of the wanted numbers go on.
    /// The registers wanted (`cs`; the number on exit; the arguments when
    /// the probe reads them) are copied from `struct pt_regs` with one
    /// helper call.
    fn syscall_prologue(&mut self, exit: Label, args: bool) {
        let sys = self.sys.clone().expect("set");
        let regs_slot = self.alloc(8);
        let id_slot = self.alloc(8);
        self.sys_slots = (regs_slot, id_slot);
        let first = if sys.exit {
            regs::ORIG_AX
        } else if args {
            regs::FIRST_ARG
        } else {
            regs::CS
        };
        let copy = self.alloc((regs::CS + 8 - first) as usize);
        self.sys_regs = (copy, first);
        self.a.ldx(8, R0, R6, 0);
        self.a.stx(8, self.fp, regs_slot, R0);
        let read_copy = |g: &mut Self| {
            g.a.mov(R1, g.fp);
            g.a.alu_imm(BPF_ADD, R1, copy as i32);
            g.a.mov_imm(R2, (regs::CS + 8 - first) as i64);
            g.a.ldx(8, R3, g.fp, regs_slot);
            g.a.alu_imm(BPF_ADD, R3, first as i32);
            g.a.call(helper::PROBE_READ_KERNEL);
        };
        // The number first (cheap on entry), then whether it is a 64-bit
        // call.
        if sys.exit {
            read_copy(self);
            self.a.ldx(8, R0, self.fp, copy + regs::ORIG_AX - first);
        } else {
            self.a.ldx(8, R0, R6, 8);
        }
        self.a.stx(8, self.fp, id_slot, R0);
        match sys.tables {
            None => {
                let nr = sys.calls[0].0;
                self.a.jmp_imm(BPF_JNE, R0, nr as i32, exit);
            }
            Some((ids, _)) => {
                self.a.jmp_imm(BPF_JGE, R0, 1024, exit);
                let key = self.alloc(8);
                self.a.stx(4, self.fp, key, R0);
                self.a.ld_map(R1, ids);
                self.a.mov(R2, self.fp);
                self.a.alu_imm(BPF_ADD, R2, key as i32);
                self.a.call(helper::MAP_LOOKUP);
                self.a.jmp_imm(BPF_JEQ, R0, 0, exit);
                self.a.ldx(1, R0, R0, 0);
                self.a.jmp_imm(BPF_JEQ, R0, 0, exit);
            }
        }
        if !sys.exit {
            read_copy(self);
        }
        self.a.ldx(8, R0, self.fp, copy + regs::CS - first);
        self.a.jmp_imm(BPF_JNE, R0, regs::USER_CS, exit);
    }

    fn mark(&mut self, span: Span) {
        while self.spans.len() < self.a.len() {
            self.spans.push(span);
        }
    }

    /// Stack space, 8-aligned.
    fn alloc(&mut self, bytes: usize) -> i16 {
        self.frame += bytes.div_ceil(8) * 8;
        self.peak = self.peak.max(self.frame);
        -(self.frame.min(32760) as i16)
    }

    fn zero(&mut self, off: i16, bytes: usize) {
        for i in (0..bytes.div_ceil(8) * 8).step_by(8) {
            self.a.st_imm(8, self.fp, off + i as i16, 0);
        }
    }

    /// A temporary for an integer: a callee-saved register, or a slot.
    fn temp(&mut self) -> Val {
        match self.free.pop() {
            Some(r) => Val::Reg(r),
            None => Val::Slot(self.alloc(8)),
        }
    }

    fn release(&mut self, v: Val) {
        if let Val::Reg(r) = v
            && !self.free.contains(&r)
        {
            self.free.push(r);
        }
    }

    /// Puts `v` in a register (`scratch` when it is in a slot).
    fn load(&mut self, v: Val, scratch: Reg) -> Reg {
        match v {
            Val::Reg(r) => r,
            Val::Slot(off) => {
                self.a.ldx(8, scratch, self.fp, off);
                scratch
            }
        }
    }

    /// Stores register `r` into `v`.
    fn store(&mut self, v: Val, r: Reg) {
        match v {
            Val::Reg(d) if d == r => {}
            Val::Reg(d) => self.a.mov(d, r),
            Val::Slot(off) => self.a.stx(8, self.fp, off, r),
        }
    }

    /// The register to compute temporary `t` in: its own, or r0 for one
    /// that lives in a stack slot (then [`Gen::store`]d there).
    fn reg_of(t: Val) -> Reg {
        match t {
            Val::Reg(r) => r,
            Val::Slot(_) => R0,
        }
    }

    /// A new temporary holding the u64 at `ctx + off` (a register of
    /// `struct pt_regs`, a raw tracepoint's argument).
    fn ctx_u64(&mut self, off: i16) -> Val {
        let t = self.temp();
        let r = Self::reg_of(t);
        self.a.ldx(8, r, R6, off);
        self.store(t, r);
        t
    }

    /// A new temporary holding r0 (after a helper call).
    fn take_r0(&mut self) -> Val {
        let t = self.temp();
        self.store(t, R0);
        t
    }

    /// The type of an expression, from code that is then dropped.
    fn type_of(&mut self, e: &Expr) -> R<Ty> {
        let mark = self.a.checkpoint();
        let (frame, peak, free, vars) = (self.frame, self.peak, self.free.clone(), self.vars.len());
        let v = self.value(e);
        self.a.rollback(mark);
        (self.frame, self.peak, self.free) = (frame, peak, free);
        debug_assert_eq!(vars, self.vars.len());
        Ok(match v? {
            Value::Int(_, t) | Value::Mem(_, t) => t,
        })
    }

    /// A temporary holding a constant.
    fn constant(&mut self, v: i64) -> Value {
        self.constant_of(v, Ty::I64)
    }

    /// A temporary holding a constant of integer type `ty`.
    fn constant_of(&mut self, v: i64, ty: Ty) -> Value {
        let t = self.temp();
        let r = Self::reg_of(t);
        self.a.mov_imm(r, v);
        self.store(t, r);
        Value::Int(t, ty)
    }

    fn block(&mut self, stmts: &[Stmt]) -> R<()> {
        for s in stmts {
            let keep = (self.free.clone(), self.frame);
            self.stmt(s)?;
            self.mark(s.span);
            if self.peak > 512 && self.over.is_none() {
                self.over = Some(s.span);
            }
            // Temporaries of a statement are done with, registers and
            // stack: the next statement reuses the space, except where
            // variables live (also ones the statement declared).
            self.free = keep.0;
            let vars = self
                .vars
                .values()
                .map(|(off, _)| usize::from(off.unsigned_abs()))
                .max()
                .unwrap_or(0);
            self.frame = keep.1.max(vars);
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> R<()> {
        match &s.kind {
            StmtKind::Expr(e) => self.expr_stmt(e),
            StmtKind::Assign { target, op, value } => self.assign(target, *op, value, s.span),
            StmtKind::Let { name, value, .. } => match value {
                Some(v) => self.assign_var(name, v, s.span),
                None => {
                    let off = self.alloc(8);
                    self.zero(off, 8);
                    self.vars.insert(name.clone(), (off, Ty::I64));
                    Ok(())
                }
            },
            StmtKind::If { cond, then, els } => {
                let v = self.int(cond)?;
                let r = self.load(v, R0);
                self.release(v);
                let l_else = self.a.label();
                let l_end = self.a.label();
                self.a.jmp_imm(BPF_JEQ, r, 0, l_else);
                self.block(then)?;
                self.a.ja(l_end);
                self.a.place(l_else);
                self.block(els)?;
                self.a.place(l_end);
                Ok(())
            }
            StmtKind::While { cond, body } => {
                let top = self.a.label();
                let end = self.a.label();
                self.a.place(top);
                let v = self.int(cond)?;
                let r = self.load(v, R0);
                self.release(v);
                self.a.jmp_imm(BPF_JEQ, r, 0, end);
                self.loops.push((top, end));
                self.block(body)?;
                self.loops.pop();
                self.a.ja(top);
                self.a.place(end);
                Ok(())
            }
            StmtKind::Unroll { count, body } => {
                let n = self
                    .c
                    .const_int(count)
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        Diagnostic::new(count.span, "unroll() takes a constant from 1 to 100")
                    })?;
                for _ in 0..n {
                    self.block(body)?;
                }
                Ok(())
            }
            StmtKind::For {
                var,
                iter: ForIter::Range(a, b),
                body,
            } => {
                let (off, _) = self.var_slot(var, Ty::I64);
                let v = self.int(a)?;
                let r = self.load(v, R0);
                self.a.stx(8, self.fp, off, r);
                self.release(v);
                let hi = self.int(b)?;
                let top = self.a.label();
                let next = self.a.label();
                let end = self.a.label();
                self.a.place(top);
                let rh = self.load(hi, R1);
                self.a.ldx(8, R0, self.fp, off);
                self.a.jmp(BPF_JSGE, R0, rh, end);
                self.loops.push((next, end));
                self.block(body)?;
                self.loops.pop();
                self.a.place(next);
                self.a.ldx(8, R0, self.fp, off);
                self.a.alu_imm(BPF_ADD, R0, 1);
                self.a.stx(8, self.fp, off, R0);
                self.a.ja(top);
                self.a.place(end);
                self.release(hi);
                Ok(())
            }
            StmtKind::For {
                var,
                iter: ForIter::Map(name, span),
                body,
            } => self.for_map(var, name, *span, body),
            StmtKind::Break | StmtKind::Continue => {
                let Some(&(cont, brk)) = self.loops.last() else {
                    return err(s.span, "break and continue belong in a loop");
                };
                self.a.ja(if matches!(s.kind, StmtKind::Break) {
                    brk
                } else {
                    cont
                });
                Ok(())
            }
            StmtKind::Return(_) => {
                let exit = self.exit.expect("set");
                self.a.ja(exit);
                Ok(())
            }
            StmtKind::Block(b) => self.block(b),
        }
    }

    /// The code with its subprograms appended: (instructions, the span of
    /// each, where each subprogram starts).
    fn finish(mut self) -> (Vec<RawInsn>, Vec<Span>, Vec<usize>) {
        let last = self.spans.last().copied().unwrap_or_default();
        self.mark(last);
        for r in self.a.peephole() {
            self.spans.remove(r);
        }
        let (mut insns, mut starts) = self.a.finish();
        let mut spans = self.spans;
        spans.extend(self.sub_spans.into_iter().flatten());
        // The prologue keeps the context in r6; a program that never reads
        // it does without (every jump and call is relative and after it).
        // Any register field naming r6 counts as a use (an lddw's src is
        // a pseudo kind, its second half no instruction).
        let saves_ctx = insns
            .first()
            .is_some_and(|i| i.code == (BPF_ALU64 | BPF_MOV | BPF_X) && i.dst == 6 && i.src == 1);
        let names_r6 = |k: usize| {
            let i = insns[k];
            let second_half = k > 0 && insns[k - 1].code == LDDW;
            !second_half && (i.dst == 6 || (i.src == 6 && i.code != LDDW))
        };
        if saves_ctx && !(1..insns.len()).any(names_r6) {
            insns.remove(0);
            if !spans.is_empty() {
                spans.remove(0);
            }
            for s in &mut starts {
                *s -= 1;
            }
        }
        (insns, spans, starts)
    }

    /// `for ($kv : @m) { … }`: `bpf_for_each_map_elem` with the body as
    /// its callback. The callback's context is this frame, so the body
    /// reads and writes the probe's variables where they are; `$kv` is
    /// the key and the value side by side (a tuple). `break` stops the
    /// walk, `continue` goes to the next entry, `return` and `exit()` stop
    /// the walk and the probe.
    fn for_map(&mut self, var: &str, name: &str, span: Span, body: &[Stmt]) -> R<()> {
        let m = self.map(name, span)?;
        // count(), sum(), min(), max(), avg(): the value over every CPU's
        // (stats() and histograms are not integers; bpftrace refuses them
        // too).
        let per_cpu = matches!(
            m.kind,
            MapKind::Count | MapKind::Sum | MapKind::Min | MapKind::Max | MapKind::Avg
        ) && m.array.is_none();
        let value = &match &m.kind {
            MapKind::Scalar(value) => value.clone(),
            _ if per_cpu => Ty::I64,
            k => {
                return err(
                    span,
                    format!(
                        "for loops over @{name}, which holds {}, are not supported (maps of values, count(), sum(), min(), max() and avg() are)",
                        k.name()
                    ),
                );
            }
        };
        if m.key.is_empty() {
            return err(span, format!("@{name} has no keys to loop over"));
        }
        let key = if m.key.len() == 1 {
            m.key[0].clone()
        } else {
            Ty::Tuple(m.key.clone())
        };
        let key_size = m.key_size();
        let value_size = value.stored_size();
        // The loop's variable is the loop's own (another loop may use the
        // name for a map of other types).
        let kv_ty = Ty::Tuple(vec![key, value.clone()]);
        let kv = self.alloc(kv_ty.stored_size());
        let outer = self.vars.insert(var.to_string(), (kv, kv_ty));
        let stop = self.alloc(8);
        self.a.st_imm(8, self.fp, stop, 0);
        let ctx = self.alloc(8);
        self.a.stx(8, self.fp, ctx, R6);
        let mut g = Gen {
            c: &mut *self.c,
            a: Asm::default(),
            kind: self.kind.clone(),
            fields: self.fields.clone(),
            vars: self.vars.clone(),
            frame: self.frame,
            peak: self.frame,
            over: None,
            free: vec![9, 8],
            spans: Vec::new(),
            loops: Vec::new(),
            exit: None,
            sys: self.sys.clone(),
            sys_slots: self.sys_slots,
            sys_regs: self.sys_regs,
            fp: 7,
            sub_spans: Vec::new(),
        };
        // (map, key, value, ctx): the frame first, then the entry copied
        // into $kv, then the probe's context back in r6.
        g.a.mov(7, R4);
        let copies: &[(Reg, i16, usize)] = if per_cpu {
            &[(R2, kv, key_size)]
        } else {
            &[(R2, kv, key_size), (R3, kv + key_size as i16, value_size)]
        };
        for &(from, at, size) in copies {
            for i in (0..size).step_by(8) {
                g.a.ldx(8, R0, from, i as i16);
                g.a.stx(8, 7, at + i as i16, R0);
            }
        }
        if per_cpu {
            g.merge_over_cpus(&m.kind, m.index, kv, kv + key_size as i16);
        }
        g.a.ldx(8, R6, 7, ctx);
        g.mark(span);
        let next = g.a.label();
        let end = g.a.label();
        let exit = g.a.label();
        g.exit = Some(exit);
        g.loops.push((next, end));
        g.block(body)?;
        g.a.place(next);
        g.a.mov_imm(R0, 0);
        g.a.exit();
        g.a.place(end);
        g.a.mov_imm(R0, 1);
        g.a.exit();
        g.a.place(exit);
        g.a.st_imm(8, 7, stop, 1);
        g.a.mov_imm(R0, 1);
        g.a.exit();
        g.mark(span);
        self.frame = self.frame.max(g.frame);
        self.peak = self.peak.max(g.peak);
        self.over = self.over.or(g.over);
        let (insns, spans, inner) = g.finish();
        let at = self.a.label();
        self.a.subprog(at, (insns, inner));
        self.sub_spans.push(spans);
        self.a.ld_map(R1, m.index);
        self.a.ld_func(R2, at);
        self.a.mov(R3, self.fp);
        self.a.mov_imm(R4, 0);
        self.a.call(helper::FOR_EACH_MAP_ELEM);
        self.a.ldx(8, R0, self.fp, stop);
        let exit = self.exit.expect("set");
        self.a.jmp_imm(BPF_JNE, R0, 0, exit);
        match outer {
            Some(v) => self.vars.insert(var.to_string(), v),
            None => self.vars.remove(var),
        };
        Ok(())
    }

    /// `*(i64 *)(fp + out)` = an aggregation's value over every CPU, at
    /// the key at `fp + key` of per-CPU map `map`
    /// (`bpf_map_lookup_percpu_elem`), as bpftrace reads a per-CPU map
    /// coerced to an integer: count() and sum() summed; min() and max()
    /// the least or greatest of the CPUs that have a value (0 if none);
    /// avg() the total over the count, truncated toward zero (0 with no
    /// values).
    fn merge_over_cpus(&mut self, kind: &MapKind, map: usize, key: i16, out: i16) {
        let cpus = self.c.env.ncpus();
        let cpu = self.alloc(8);
        // min/max: whether a CPU had a value; avg: the count.
        let aux = self.alloc(8);
        self.a.st_imm(8, self.fp, out, 0);
        self.a.st_imm(8, self.fp, aux, 0);
        self.a.st_imm(8, self.fp, cpu, 0);
        let top = self.a.label();
        let next = self.a.label();
        let done = self.a.label();
        self.a.place(top);
        self.a.ldx(8, R3, self.fp, cpu);
        self.a.jmp_imm(BPF_JGE, R3, cpus as i32, done);
        self.a.ld_map(R1, map);
        self.a.mov(R2, self.fp);
        self.a.alu_imm(BPF_ADD, R2, key as i32);
        self.a.call(helper::MAP_LOOKUP_PERCPU_ELEM);
        self.a.jmp_imm(BPF_JEQ, R0, 0, next);
        self.a.ldx(8, R1, R0, 0);
        match kind {
            MapKind::Min | MapKind::Max => {
                let take = self.a.label();
                self.a.ldx(8, R2, R0, 8);
                self.a.jmp_imm(BPF_JEQ, R2, 0, next);
                self.a.ldx(8, R2, self.fp, aux);
                self.a.jmp_imm(BPF_JEQ, R2, 0, take);
                self.a.ldx(8, R2, self.fp, out);
                // Keep the value so far when it is already the extreme.
                let keep = if *kind == MapKind::Min {
                    BPF_JSLE
                } else {
                    BPF_JSGE
                };
                self.a.jmp(keep, R2, R1, next);
                self.a.place(take);
                self.a.stx(8, self.fp, out, R1);
                self.a.st_imm(8, self.fp, aux, 1);
            }
            _ => {
                self.a.ldx(8, R2, self.fp, out);
                self.a.alu(BPF_ADD, R2, R1);
                self.a.stx(8, self.fp, out, R2);
                if matches!(kind, MapKind::Avg | MapKind::Stats) {
                    self.a.ldx(8, R1, R0, 8);
                    self.a.ldx(8, R2, self.fp, aux);
                    self.a.alu(BPF_ADD, R2, R1);
                    self.a.stx(8, self.fp, aux, R2);
                }
            }
        }
        self.a.place(next);
        self.a.ldx(8, R3, self.fp, cpu);
        self.a.alu_imm(BPF_ADD, R3, 1);
        self.a.stx(8, self.fp, cpu, R3);
        self.a.ja(top);
        self.a.place(done);
        if matches!(kind, MapKind::Avg | MapKind::Stats) {
            // out = total / count: unsigned division of the magnitude, the
            // sign put back (BPF_DIV by 0 gives 0).
            let positive = self.a.label();
            let end = self.a.label();
            self.a.ldx(8, R1, self.fp, out);
            self.a.ldx(8, R2, self.fp, aux);
            self.a.jmp_imm(BPF_JSGE, R1, 0, positive);
            self.a.alu_imm(BPF_NEG, R1, 0);
            self.a.alu(BPF_DIV, R1, R2);
            self.a.alu_imm(BPF_NEG, R1, 0);
            self.a.ja(end);
            self.a.place(positive);
            self.a.alu(BPF_DIV, R1, R2);
            self.a.place(end);
            self.a.stx(8, self.fp, out, R1);
        }
    }

    fn var_slot(&mut self, name: &str, ty: Ty) -> (i16, Ty) {
        if let Some(v) = self.vars.get(name) {
            return v.clone();
        }
        let off = self.alloc(ty.stored_size());
        self.vars.insert(name.to_string(), (off, ty.clone()));
        (off, ty)
    }

    fn assign_var(&mut self, name: &str, value: &Expr, span: Span) -> R<()> {
        let v = self.value(value)?;
        match v {
            Value::Int(val, ty) => {
                let (off, old) = self.var_slot(name, widen(ty));
                if !old.is_int() {
                    return err(
                        span,
                        format!("${name} holds {} and cannot take an integer", old.name()),
                    );
                }
                let r = self.load(val, R0);
                self.a.stx(8, self.fp, off, r);
                self.release(val);
            }
            Value::Mem(src, ty) => {
                // A string variable holds any string up to bpftrace's
                // default length, whatever it was first given (`$a = "";
                // … $a = "hi"`).
                let slot_ty = match ty {
                    Ty::Str(n) => Ty::Str(n.max(64)),
                    ref t => t.clone(),
                };
                let (off, old) = self.var_slot(name, slot_ty);
                if old.stored_size() < ty.stored_size() || old.is_int() {
                    return err(
                        span,
                        format!("${name} holds {} and cannot take {}", old.name(), ty.name()),
                    );
                }
                self.copy(off, src, ty.stored_size());
            }
        }
        Ok(())
    }

    fn copy(&mut self, dst: i16, src: i16, bytes: usize) {
        for i in (0..bytes).step_by(8) {
            self.a.ldx(8, R0, self.fp, src + i as i16);
            self.a.stx(8, self.fp, dst + i as i16, R0);
        }
    }

    fn assign(&mut self, target: &Expr, op: Option<BinOp>, value: &Expr, span: Span) -> R<()> {
        match &target.kind {
            ExprKind::Var(name) => match op {
                None => self.assign_var(name, value, span),
                Some(op) => {
                    let sum = Expr {
                        kind: ExprKind::Binary {
                            op,
                            lhs: Box::new(target.clone()),
                            rhs: Box::new(value.clone()),
                        },
                        span,
                    };
                    self.assign_var(name, &sum, span)
                }
            },
            ExprKind::Map { name, keys } => {
                let m = self.map(name, target.span)?;
                if let (None, ExprKind::Call { name: f, args }) = (op, &value.kind)
                    && self.c.agg_kind(f, args, value.span)?.is_some()
                {
                    return self.aggregate(&m, keys, args, value.span);
                }
                let value = match op {
                    None => value.clone(),
                    Some(op) => Expr {
                        kind: ExprKind::Binary {
                            op,
                            lhs: Box::new(target.clone()),
                            rhs: Box::new(value.clone()),
                        },
                        span,
                    },
                };
                let MapKind::Scalar(ty) = m.kind.clone() else {
                    return err(
                        span,
                        format!(
                            "@{} holds {}: assign it with {0} again",
                            m.name,
                            m.kind.name()
                        ),
                    );
                };
                let key = self.key(&m, keys, target.span)?;
                let v = self.value(&value)?;
                let vt = match &v {
                    Value::Int(_, t) | Value::Mem(_, t) => t.clone(),
                };
                self.c.learn(&m.name, m.key.len(), None, &vt);
                if self.c.learn.is_none() && !compatible(&vt, &ty) {
                    return err(
                        value.span,
                        format!(
                            "@{} holds {} elsewhere, not {}",
                            m.name,
                            ty.name(),
                            vt.name()
                        ),
                    );
                }
                let voff = match v {
                    Value::Int(val, _) => {
                        let off = self.alloc(8);
                        let r = self.load(val, R0);
                        self.a.stx(8, self.fp, off, r);
                        self.release(val);
                        off
                    }
                    Value::Mem(off, t) => {
                        let size = ty.stored_size();
                        if t.stored_size() < size {
                            let pad = self.alloc(size);
                            self.zero(pad, size);
                            self.copy(pad, off, t.stored_size());
                            pad
                        } else {
                            off
                        }
                    }
                };
                self.a.ld_map(R1, m.index);
                self.a.mov(R2, self.fp);
                self.a.alu_imm(BPF_ADD, R2, key as i32);
                self.a.mov(R3, self.fp);
                self.a.alu_imm(BPF_ADD, R3, voff as i32);
                self.a.mov_imm(R4, 0);
                self.a.call(helper::MAP_UPDATE);
                Ok(())
            }
            _ => err(target.span, "only $variables and @maps can be assigned"),
        }
    }

    fn map(&mut self, name: &str, span: Span) -> R<MapInfo> {
        let Some(i) = self.c.maps.iter().position(|m| m.name == name) else {
            let d = Diagnostic::new(span, format!("@{name} is used but never assigned"));
            let names: Vec<String> = self.c.maps.iter().map(|m| m.name.clone()).collect();
            return Err(d.suggest(name, names.iter().map(String::as_str), "@"));
        };
        if self.c.maps[i].index == 0 {
            let m = &self.c.maps[i];
            let per_cpu = m.kind.per_cpu();
            let bucket = if m.kind.bucketed() { 8 } else { 0 };
            let array =
                MapInfo::array_entries(&m.key, &m.kind).filter(|_| !self.c.keyed.contains(&m.name));
            let name = m.symbol();
            let def = match array {
                Some(n) => map_def(
                    &name,
                    oxbpf_abi::map_type::PERCPU_ARRAY,
                    4,
                    m.kind.value_size() as u32,
                    n,
                ),
                None => map_def(
                    &name,
                    if per_cpu {
                        oxbpf_abi::map_type::PERCPU_HASH
                    } else {
                        oxbpf_abi::map_type::HASH
                    },
                    (m.key_size() + bucket) as u32,
                    m.kind.value_size() as u32,
                    self.c.max_keys(),
                ),
            };
            self.c.maps[i].array = array;
            self.c.maps[i].index = self.c.object_maps.len();
            self.c.object_maps.push(def);
        }
        Ok(self.c.maps[i].clone())
    }

    /// Builds the kernel key of `m` for `keys` on the stack (with room for
    /// a bucket index after it for histograms); returns its offset.
    fn key(&mut self, m: &MapInfo, keys: &[Expr], span: Span) -> R<i16> {
        let size = m.key_size() + if m.kind.bucketed() { 8 } else { 0 };
        let off = self.alloc(size);
        if keys.is_empty() {
            self.zero(off, size);
            if !m.key.is_empty() {
                return err(span, format!("@{} needs a key ([…])", m.name));
            }
            return Ok(off);
        }
        if keys.len() != m.key.len() {
            return err(
                span,
                format!(
                    "@{} takes {} key(s), not {}",
                    m.name,
                    m.key.len(),
                    keys.len()
                ),
            );
        }
        let learning = self.c.learn.is_some();
        let mut values = Vec::with_capacity(keys.len());
        for k in keys {
            values.push(self.value(k)?);
        }
        // One string or tuple key of the key's very layout: its own slot
        // (written in full, padding zeroed, never written again) is the key.
        if let ([Value::Mem(src, t)], [ty], false) = (&values[..], &m.key[..], m.kind.bucketed())
            && t == ty
            && !learning
        {
            return Ok(*src);
        }
        // Zeroed where it is not written in full: the bucket (written by
        // aggregations only) and components shorter than their place.
        if m.kind.bucketed() {
            self.zero(off + m.key_size() as i16, 8);
        }
        let mut at = off;
        for (i, ((k, ty), v)) in keys.iter().zip(&m.key).zip(values).enumerate() {
            let vt = match &v {
                Value::Int(_, t) | Value::Mem(_, t) => t.clone(),
            };
            self.c.learn(&m.name, m.key.len(), Some(i), &vt);
            if !learning && !compatible(&vt, ty) {
                return err(
                    k.span,
                    format!(
                        "this key is {} where @{} has {} elsewhere",
                        vt.name(),
                        m.name,
                        ty.name()
                    ),
                );
            }
            let place = ty.stored_size();
            match v {
                Value::Int(val, _) => {
                    if place > 8 {
                        self.zero(at, place);
                    }
                    let r = self.load(val, R0);
                    self.a.stx(8, self.fp, at, r);
                    self.release(val);
                }
                Value::Mem(src, t) => {
                    let n = t.stored_size().min(place);
                    if n < place {
                        self.zero(at, place);
                    }
                    self.copy(at, src, n);
                }
            }
            at += place as i16;
        }
        Ok(off)
    }

    /// `@m[k] = count()` and the other aggregations: look the entry up,
    /// create it when missing, update it in place (per-CPU: no atomics).
    fn aggregate(&mut self, m: &MapInfo, keys: &[Expr], args: &[Expr], span: Span) -> R<()> {
        // The value first when it comes from the context alone (the order
        // cannot be seen), else the key first.
        let early = match args.first() {
            Some(a) if self.reads_only_context(a) => Some(self.int(a)?),
            _ => None,
        };
        let key = self.key(m, keys, span)?;
        let arg = match (early, args.first()) {
            (Some(v), _) => Some(v),
            (None, Some(a)) => Some(self.int(a)?),
            (None, None) => None,
        };
        if let (Some(v), true) = (arg, m.kind.bucketed()) {
            // The bucket index goes after the user's key.
            let r = self.load(v, R0);
            let bucket_at = key + m.key_size() as i16;
            match m.kind {
                MapKind::Hist { bits } => self.log2_bucket(r, bucket_at, bits),
                MapKind::Lhist { min, max, step } => {
                    self.linear_bucket(r, bucket_at, min, max, step)
                }
                _ => {}
            }
        }
        // r0 = lookup(map, &key)
        let found = self.a.label();
        let done = self.a.label();
        // An array's key is the bucket index (a u32: the low half of the
        // u64 after the user's key) or 0.
        let kernel_key = if m.array.is_some() && m.kind.bucketed() {
            key + m.key_size() as i16
        } else {
            key
        };
        self.a.ld_map(R1, m.index);
        self.a.mov(R2, self.fp);
        self.a.alu_imm(BPF_ADD, R2, kernel_key as i32);
        self.a.call(helper::MAP_LOOKUP);
        if m.array.is_some() {
            // Every index in range exists: only the verifier's null case.
            self.a.jmp_imm(BPF_JEQ, R0, 0, done);
        } else {
            self.a.jmp_imm(BPF_JNE, R0, 0, found);
            self.insert_first(m, key, arg);
            self.a.ja(done);
        }
        // Found: update in place.
        self.a.place(found);
        let x = arg.map(|v| self.load(v, R1));
        match m.kind {
            MapKind::Count | MapKind::Hist { .. } | MapKind::Lhist { .. } => {
                self.a.ldx(8, R2, R0, 0);
                self.a.alu_imm(BPF_ADD, R2, 1);
                self.a.stx(8, R0, 0, R2);
            }
            MapKind::Sum => {
                let x = x.expect("one argument");
                self.a.ldx(8, R2, R0, 0);
                self.a.alu(BPF_ADD, R2, x);
                self.a.stx(8, R0, 0, R2);
            }
            MapKind::Min | MapKind::Max => {
                let x = x.expect("one argument");
                let skip = self.a.label();
                if m.array.is_some() {
                    // An array entry starts unset: the first value is
                    // taken whatever it is.
                    let set = self.a.label();
                    self.a.ldx(8, R2, R0, 8);
                    self.a.jmp_imm(BPF_JNE, R2, 0, set);
                    self.a.st_imm(8, R0, 8, 1);
                    self.a.stx(8, R0, 0, x);
                    self.a.ja(skip);
                    self.a.place(set);
                }
                self.a.ldx(8, R2, R0, 0);
                // Keep the old value when it is already the extreme.
                let op = if m.kind == MapKind::Min {
                    BPF_JSLE
                } else {
                    BPF_JSGE
                };
                self.a.jmp(op, R2, x, skip);
                self.a.stx(8, R0, 0, x);
                self.a.place(skip);
            }
            MapKind::Avg | MapKind::Stats => {
                let x = x.expect("one argument");
                self.a.ldx(8, R2, R0, 0);
                self.a.alu(BPF_ADD, R2, x);
                self.a.stx(8, R0, 0, R2);
                self.a.ldx(8, R2, R0, 8);
                self.a.alu_imm(BPF_ADD, R2, 1);
                self.a.stx(8, R0, 8, R2);
            }
            MapKind::Scalar(_) => unreachable!(),
        }
        self.a.place(done);
        if let Some(v) = arg {
            self.release(v);
        }
        Ok(())
    }

    /// An aggregation's entry missing from its hash: inserts the first
    /// value.
    fn insert_first(&mut self, m: &MapInfo, key: i16, arg: Option<Val>) {
        let init = self.alloc(16);
        let x = arg.map(|v| self.load(v, R1));
        match m.kind {
            MapKind::Count | MapKind::Hist { .. } | MapKind::Lhist { .. } => {
                self.a.st_imm(8, self.fp, init, 1);
            }
            MapKind::Sum => {
                self.a.stx(8, self.fp, init, x.expect("one argument"));
            }
            MapKind::Min | MapKind::Max => {
                self.a.stx(8, self.fp, init, x.expect("one argument"));
                self.a.st_imm(8, self.fp, init + 8, 1);
            }
            MapKind::Avg | MapKind::Stats => {
                self.a.stx(8, self.fp, init, x.expect("one argument"));
                self.a.st_imm(8, self.fp, init + 8, 1);
            }
            MapKind::Scalar(_) => unreachable!("not an aggregation"),
        }
        self.a.ld_map(R1, m.index);
        self.a.mov(R2, self.fp);
        self.a.alu_imm(BPF_ADD, R2, key as i32);
        self.a.mov(R3, self.fp);
        self.a.alu_imm(BPF_ADD, R3, init as i32);
        self.a.mov_imm(R4, 1); // BPF_NOEXIST
        self.a.call(helper::MAP_UPDATE);
    }

    /// bpftrace's power-of-two buckets: 0 for negatives; with `bits` = 0,
    /// 1 for zero and `k + 2` for `[2^k, 2^(k+1))`; with `bits` = b above
    /// 0, `x + 1` for x below 2^b, and above that, with `l` the position
    /// of x's leftmost 1 and `y` the b bits after it,
    /// `((l - b + 1) << b) + y + 1`. Stores the index at `r10 + at`.
    fn log2_bucket(&mut self, x: Reg, at: i16, bits: u32) {
        // r1 = x; r2 = index (r4 = x, for bits > 0)
        self.a.mov(R1, x);
        let done = self.a.label();
        self.a.mov_imm(R2, 0);
        self.a.jmp_imm(BPF_JSLT, R1, 0, done);
        let mask = (1i32 << bits) - 1;
        if bits == 0 {
            self.a.mov_imm(R2, 1);
            self.a.jmp_imm(BPF_JEQ, R1, 0, done);
            // index = 2 + floor(log2(x)), below.
            self.a.mov_imm(R2, 2);
        } else {
            self.a.mov(R2, R1);
            self.a.alu_imm(BPF_ADD, R2, 1);
            self.a.jmp_imm(BPF_JLE, R1, mask, done);
            self.a.mov(R4, R1);
            self.a.mov_imm(R2, 0);
        }
        // r2 += floor(log2(x)), by halving steps of 32, 16, 8, 4, 2, 1: a
        // step is taken when x has a bit at or above it (for 32, whose
        // bound is no 32-bit immediate, tested by shifting a copy).
        for shift in [32, 16, 8, 4, 2, 1] {
            let skip = self.a.label();
            if shift == 32 {
                self.a.mov(R3, R1);
                self.a.alu_imm(BPF_RSH, R3, shift);
                self.a.jmp_imm(BPF_JEQ, R3, 0, skip);
                self.a.mov(R1, R3);
            } else {
                self.a.jmp_imm(BPF_JLT, R1, 1 << shift, skip);
                self.a.alu_imm(BPF_RSH, R1, shift);
            }
            self.a.alu_imm(BPF_ADD, R2, shift);
            self.a.place(skip);
        }
        if bits > 0 {
            // r2 = l - bits (x >= 2^bits, so l >= bits); r4 = the bits
            // after the leftmost 1; index = ((r2 + 1) << bits) + r4 + 1.
            self.a.alu_imm(BPF_SUB, R2, bits as i32);
            self.a.alu(BPF_RSH, R4, R2);
            self.a.alu_imm(BPF_AND, R4, mask);
            self.a.alu_imm(BPF_ADD, R2, 1);
            self.a.alu_imm(BPF_LSH, R2, bits as i32);
            self.a.alu(BPF_ADD, R2, R4);
            self.a.alu_imm(BPF_ADD, R2, 1);
        }
        self.a.place(done);
        self.a.stx(8, self.fp, at, R2);
    }

    /// lhist buckets: 0 below `min`, then one per `step`, the last for
    /// `max` and above.
    fn linear_bucket(&mut self, x: Reg, at: i16, min: i64, max: i64, step: i64) {
        // Values from the last whole step up share the overflow bucket, as
        // bpftrace counts them.
        let n = crate::output::lhist_buckets(min, max, step) as i64;
        let done = self.a.label();
        // Constants as immediates where they fit in 32 bits (x is r0 or a
        // temporary, never r2 or r3).
        let imm = |n: i64| i32::try_from(n).ok();
        self.a.mov_imm(R2, 0);
        match imm(min) {
            Some(k) => self.a.jmp_imm(BPF_JSLT, x, k, done),
            None => {
                self.a.mov_imm(R3, min);
                self.a.jmp(BPF_JSLT, x, R3, done);
            }
        }
        self.a.mov_imm(R2, n + 1);
        match imm(max) {
            Some(k) => self.a.jmp_imm(BPF_JSGE, x, k, done),
            None => {
                self.a.mov_imm(R3, max);
                self.a.jmp(BPF_JSGE, x, R3, done);
            }
        }
        self.a.mov(R2, x);
        match imm(min) {
            Some(0) => {}
            Some(k) => self.a.alu_imm(BPF_SUB, R2, k),
            None => {
                self.a.mov_imm(R3, min);
                self.a.alu(BPF_SUB, R2, R3);
            }
        }
        match imm(step) {
            Some(k) => self.a.alu_imm(BPF_DIV, R2, k),
            None => {
                self.a.mov_imm(R3, step);
                self.a.alu(BPF_DIV, R2, R3);
            }
        }
        self.a.alu_imm(BPF_ADD, R2, 1);
        self.a.place(done);
        self.a.stx(8, self.fp, at, R2);
    }

    fn expr_stmt(&mut self, e: &Expr) -> R<()> {
        match &e.kind {
            ExprKind::Call { name, args } => match name.as_str() {
                "printf" | "errorf" | "warnf" => self.printf(name, args, e.span),
                "exit" => {
                    let rec = self.alloc(16);
                    self.a.st_imm(8, self.fp, rec, event::EXIT as i32);
                    match args.first() {
                        Some(a) => {
                            let v = self.int(a)?;
                            let r = self.load(v, R0);
                            self.a.stx(8, self.fp, rec + 8, r);
                        }
                        None => self.a.st_imm(8, self.fp, rec + 8, 0),
                    }
                    self.output(rec, 16);
                    let exit = self.exit.expect("set");
                    self.a.ja(exit);
                    Ok(())
                }
                "delete" => {
                    let [target] = &args[..] else {
                        return err(e.span, "delete() takes one map entry: delete(@m[key])");
                    };
                    let ExprKind::Map { name, keys } = &target.kind else {
                        return err(target.span, "delete() takes a map entry: delete(@m[key])");
                    };
                    let m = self.map(name, target.span)?;
                    let key = self.key(&m, keys, target.span)?;
                    self.a.ld_map(R1, m.index);
                    self.a.mov(R2, self.fp);
                    self.a.alu_imm(BPF_ADD, R2, key as i32);
                    self.a.call(helper::MAP_DELETE);
                    Ok(())
                }
                "time" | "system" | "cat" => self.printf(name, args, e.span),
                "join" => self.join(args, e.span),
                "print" if !matches!(args.first().map(|a| &a.kind), Some(ExprKind::Map { keys, .. }) if keys.is_empty()) =>
                {
                    let [_] = &args[..] else {
                        return err(
                            e.span,
                            "print() takes a map (with top and div), or one value",
                        );
                    };
                    self.printf(name, args, e.span)
                }
                "clear" | "zero" | "print" => self.map_event(name, args, e.span),
                "print_rows" | "print_hist" | "print_stacks" => {
                    self.layout_event(name, args, e.span)
                }
                _ => {
                    let v = self.value(e)?;
                    if let Value::Int(v, _) = v {
                        self.release(v);
                    }
                    Ok(())
                }
            },
            ExprKind::IncDec { inc, target, .. } => {
                let one = Expr {
                    kind: ExprKind::Int(1),
                    span: e.span,
                };
                self.assign(
                    target,
                    Some(if *inc { BinOp::Add } else { BinOp::Sub }),
                    &one,
                    e.span,
                )
            }
            _ => {
                if let Value::Int(v, _) = self.value(e)? {
                    self.release(v);
                }
                Ok(())
            }
        }
    }

    /// `bpf_ringbuf_output(&events, r10 + rec, len, 0)`.
    fn output(&mut self, rec: i16, len: usize) {
        self.a.ld_map(R1, 0);
        self.a.mov(R2, self.fp);
        self.a.alu_imm(BPF_ADD, R2, rec as i32);
        self.a.mov_imm(R3, len as i64);
        self.a.mov_imm(R4, 0);
        self.ringbuf_output();
    }

    /// `bpf_ringbuf_output` with its arguments in r1–r4; a record the
    /// ring buffer has no room for is counted in the lost counter, which
    /// user space reports. The helper's only failure with flags 0 is
    /// -EAGAIN (no room), and that return value itself is what is added
    /// (atomically: every CPU adds to the one counter), which saves
    /// setting up a 1 on a path no event normally takes; user space
    /// divides by -EAGAIN ([`lost_records`]).
    fn ringbuf_output(&mut self) {
        self.a.call(helper::RINGBUF_OUTPUT);
        let ok = self.a.label();
        self.a.jmp_imm(BPF_JEQ, R0, 0, ok);
        self.a.ld_map_value(R1, LOST_MAP as u32 as usize, 0);
        self.a.atomic_add(R1, 0, R0);
        self.a.place(ok);
    }

    fn printf(&mut self, name: &str, args: &[Expr], span: Span) -> R<()> {
        let kind = match name {
            "errorf" => PrintKind::Errorf,
            "warnf" => PrintKind::Warnf,
            "system" => PrintKind::System,
            "cat" => PrintKind::Cat,
            "time" => PrintKind::Time,
            "print" => PrintKind::Print,
            _ => PrintKind::Printf,
        };
        if matches!(kind, PrintKind::System) && !self.c.opts.unsafe_ok {
            return err(
                span,
                format!("{name}() runs commands in user space: it needs --unsafe"),
            );
        }
        let (fmt, rest) = match (kind, args.first().map(|a| &a.kind)) {
            (PrintKind::Print, _) => (String::new(), args),
            (PrintKind::Time, None) => ("%H:%M:%S\n".to_string(), args),
            (_, Some(ExprKind::Str(f))) => (f.clone(), &args[1..]),
            _ => return err(span, format!("{name}() takes a format string first")),
        };
        if kind == PrintKind::Time && !rest.is_empty() {
            return err(span, "time() takes one format string");
        }
        // Arguments from the context alone first (the order cannot be
        // seen), then the others, each in the script's order.
        let mut computed: Vec<Option<(Value, Span)>> = vec![None; rest.len()];
        for first in [true, false] {
            for (i, a) in rest.iter().enumerate() {
                if self.reads_only_context(a) == first {
                    computed[i] = Some((self.value(a)?, a.span));
                }
            }
        }
        let mut values: Vec<(Value, Span)> = computed.into_iter().flatten().collect();
        let size: usize = 8 + values
            .iter()
            .map(|(v, _)| match v {
                Value::Int(..) => 8,
                Value::Mem(_, t) => t.stored_size(),
            })
            .sum::<usize>();
        // The record is built on the stack when small, else in a per-CPU
        // scratch map value (the stack has 512 bytes in all).
        let (base, rec, scratch_reg) = if size <= 128 {
            (self.fp, self.alloc(size), None)
        } else {
            if self.free.is_empty() {
                // Every register holds an argument: one goes to the stack
                // to make room for the record's pointer.
                if let Some((Value::Int(v, _), _)) = values
                    .iter_mut()
                    .find(|(v, _)| matches!(v, Value::Int(Val::Reg(_), _)))
                    && let Val::Reg(r) = *v
                {
                    let off = self.alloc(8);
                    self.a.stx(8, self.fp, off, r);
                    *v = Val::Slot(off);
                    self.free.push(r);
                }
            }
            let Some(p) = self.free.pop() else {
                return err(span, "this printf's arguments are too many to hold at once");
            };
            let scratch = self.c.scratch_map(size);
            let key = self.alloc(8);
            self.a.st_imm(8, self.fp, key, 0);
            self.a.ld_map(R1, scratch);
            self.a.mov(R2, self.fp);
            self.a.alu_imm(BPF_ADD, R2, key as i32);
            self.a.call(helper::MAP_LOOKUP);
            let exit = self.exit.expect("set");
            self.a.jmp_imm(BPF_JEQ, R0, 0, exit);
            self.a.mov(p, R0);
            (p, 0i16, Some(p))
        };
        let id = self.c.printfs.len();
        self.a
            .st_imm(8, base, rec, (event::PRINTF_BASE + id as u64) as i32);
        let mut at = rec + 8;
        let mut types = Vec::new();
        for (v, _) in values {
            match v {
                Value::Int(val, ty) => {
                    let r = self.load(val, R0);
                    self.a.stx(8, base, at, r);
                    self.release(val);
                    at += 8;
                    types.push(widen(ty));
                }
                Value::Mem(off, ty) => {
                    let n = ty.stored_size();
                    for i in (0..n).step_by(8) {
                        self.a.ldx(8, R0, self.fp, off + i as i16);
                        self.a.stx(8, base, at + i as i16, R0);
                    }
                    at += n as i16;
                    types.push(ty);
                }
            }
        }
        if !matches!(kind, PrintKind::Print | PrintKind::Time) {
            crate::format::check(&fmt, &types).map_err(|m| Diagnostic::new(args[0].span, m))?;
        }
        self.c.printfs.push(PrintfInfo {
            kind,
            format: fmt,
            args: types,
            span,
        });
        // bpf_ringbuf_output(&events, base + rec, size, 0)
        self.a.ld_map(R1, 0);
        self.a.mov(R2, base);
        if rec != 0 {
            self.a.alu_imm(BPF_ADD, R2, rec as i32);
        }
        self.a.mov_imm(R3, size as i64);
        self.a.mov_imm(R4, 0);
        self.ringbuf_output();
        if let Some(p) = scratch_reg {
            self.free.push(p);
        }
        Ok(())
    }

    /// A string known when compiling, written to the stack as a NUL-padded
    /// string of `len` bytes (truncated to leave its NUL).
    fn const_str(&mut self, text: &str, len: usize) -> Value {
        let ty = Ty::Str(len);
        let off = self.alloc(ty.stored_size());
        let mut bytes = text.as_bytes().to_vec();
        bytes.truncate(len.saturating_sub(1));
        bytes.resize(ty.stored_size(), 0);
        for (i, c) in bytes.chunks(8).enumerate() {
            let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.a.lddw(R0, v, 0);
            self.a.stx(8, self.fp, off + 8 * i as i16, R0);
        }
        Value::Mem(off, ty)
    }

    /// An integer-valued expression.
    fn int(&mut self, e: &Expr) -> R<Val> {
        match self.value(e)? {
            Value::Int(v, _) => Ok(v),
            Value::Mem(_, t) => err(
                e.span,
                format!("expected an integer here, found {}", t.name()),
            ),
        }
    }

    /// Calls a helper with no arguments and keeps r0.
    fn helper0(&mut self, id: i32) -> Val {
        self.a.call(id);
        self.take_r0()
    }

    fn value(&mut self, e: &Expr) -> R<Value> {
        let int = |v: Val| Value::Int(v, Ty::U64);
        Ok(match &e.kind {
            ExprKind::Int(n) => self.constant(*n as i64),
            ExprKind::Str(s) => self.const_str(s, s.len() + 1),
            ExprKind::Param(n) => match self.c.param(*n).map(str::to_string) {
                Some(p) => match p.parse::<i64>() {
                    Ok(v) => {
                        let t = self.temp();
                        self.a.mov_imm(R0, v);
                        self.store(t, R0);
                        Value::Int(t, Ty::I64)
                    }
                    // A parameter that is not a number is a string, as
                    // in bpftrace since 0.20 (`str($1)` still works).
                    Err(_) => self.const_str(&p, p.len() + 1),
                },
                None => {
                    let t = self.temp();
                    self.a.mov_imm(R0, 0);
                    self.store(t, R0);
                    Value::Int(t, Ty::I64)
                }
            },
            ExprKind::ParamCount => {
                let t = self.temp();
                self.a.mov_imm(R0, self.c.opts.params.len() as i64);
                self.store(t, R0);
                Value::Int(t, Ty::I64)
            }
            ExprKind::Ident(name) => self.builtin(name, e.span)?,
            ExprKind::Var(name) => {
                let Some((off, ty)) = self.vars.get(name).cloned() else {
                    let names: Vec<String> = self.vars.keys().cloned().collect();
                    let d =
                        Diagnostic::new(e.span, format!("${name} is used before it is assigned"));
                    return Err(d.suggest(name, names.iter().map(String::as_str), "$"));
                };
                if ty.is_int() {
                    let t = self.temp();
                    self.a.ldx(8, R0, self.fp, off);
                    self.store(t, R0);
                    Value::Int(t, ty)
                } else {
                    Value::Mem(off, ty)
                }
            }
            ExprKind::Map { name, keys } => {
                let m = self.map(name, e.span)?;
                let key = self.key(&m, keys, e.span)?;
                let ty = match &m.kind {
                    MapKind::Scalar(t) => t.clone(),
                    // A per-CPU aggregation read as an integer: its value
                    // over every CPU (as bpftrace coerces one).
                    k @ (MapKind::Count
                    | MapKind::Sum
                    | MapKind::Min
                    | MapKind::Max
                    | MapKind::Avg) => {
                        let out = self.alloc(8);
                        self.merge_over_cpus(k, m.index, key, out);
                        let t = self.temp();
                        let r = Self::reg_of(t);
                        self.a.ldx(8, r, self.fp, out);
                        self.store(t, r);
                        return Ok(Value::Int(t, Ty::I64));
                    }
                    k => {
                        return err(
                            e.span,
                            format!(
                                "@{} holds {} and cannot be read in a probe",
                                m.name,
                                k.name()
                            ),
                        );
                    }
                };
                self.a.ld_map(R1, m.index);
                self.a.mov(R2, self.fp);
                self.a.alu_imm(BPF_ADD, R2, key as i32);
                self.a.call(helper::MAP_LOOKUP);
                let missing = self.a.label();
                let done = self.a.label();
                if ty.is_int() {
                    let t = self.temp();
                    let r = match t {
                        Val::Reg(r) => r,
                        Val::Slot(_) => R1,
                    };
                    self.a.mov_imm(r, 0);
                    self.a.jmp_imm(BPF_JEQ, R0, 0, done);
                    self.a.ldx(8, r, R0, 0);
                    self.a.place(done);
                    self.store(t, r);
                    let _ = missing;
                    Value::Int(t, ty)
                } else {
                    let off = self.alloc(ty.stored_size());
                    self.zero(off, ty.stored_size());
                    self.a.jmp_imm(BPF_JEQ, R0, 0, done);
                    for i in (0..ty.stored_size()).step_by(8) {
                        self.a.ldx(8, R1, R0, i as i16);
                        self.a.stx(8, self.fp, off + i as i16, R1);
                    }
                    self.a.place(done);
                    let _ = missing;
                    Value::Mem(off, ty)
                }
            }
            ExprKind::Binary { op, lhs, rhs } => return self.binary(*op, lhs, rhs, e.span),
            ExprKind::Unary {
                op: UnOp::AddrOf,
                expr,
            } => return self.address_of(expr),
            ExprKind::Unary {
                op: UnOp::Deref, ..
            } => {
                let p = self.place(e)?;
                return self.read_place(p, e.span);
            }
            ExprKind::Unary { op, expr } => {
                let (v, vty) = match self.value(expr)? {
                    Value::Int(v, t) => (v, t),
                    Value::Mem(_, t) => {
                        return err(
                            expr.span,
                            format!("expected an integer here, found {}", t.name()),
                        );
                    }
                };
                let r = self.load(v, R0);
                match op {
                    UnOp::Neg => self.a.neg(r),
                    UnOp::BitNot => self.a.alu_imm(BPF_XOR, r, -1),
                    UnOp::Not => {
                        self.truth(r);
                        self.a.alu_imm(BPF_XOR, r, 1);
                    }
                    UnOp::Deref | UnOp::AddrOf => unreachable!("handled above"),
                }
                self.store(v, r);
                // `!` of a boolean is one (bpftrace 0.21+); of an integer,
                // 0 or 1 as in C.
                let ty = if *op == UnOp::Not && vty == Ty::Bool {
                    Ty::Bool
                } else {
                    Ty::I64
                };
                Value::Int(v, ty)
            }
            ExprKind::Ternary { cond, then, els }
                if !self.type_of(then)?.is_int() || !self.type_of(els)?.is_int() =>
            {
                // Strings (and tuples): both branches into one slot as
                // large as the larger.
                let (ta, tb) = (self.type_of(then)?, self.type_of(els)?);
                let ty = match (&ta, &tb) {
                    (Ty::Str(x), Ty::Str(y)) => Ty::Str(*x.max(y)),
                    (a, b) if a == b => a.clone(),
                    (a, b) => {
                        return err(
                            e.span,
                            format!("the branches of `?:` are {} and {}", a.name(), b.name()),
                        );
                    }
                };
                let size = ty.stored_size();
                let out = self.alloc(size);
                self.zero(out, size);
                let c = self.int(cond)?;
                let rc = self.load(c, R0);
                self.release(c);
                let l_else = self.a.label();
                let l_end = self.a.label();
                self.a.jmp_imm(BPF_JEQ, rc, 0, l_else);
                for (i, branch) in [then, els].into_iter().enumerate() {
                    if let Value::Mem(src, t) = self.value(branch)? {
                        self.copy(out, src, t.stored_size().min(size));
                    }
                    if i == 0 {
                        self.a.ja(l_end);
                        self.a.place(l_else);
                    }
                }
                self.a.place(l_end);
                Value::Mem(out, ty)
            }
            ExprKind::Ternary { cond, then, els } => {
                let c = self.int(cond)?;
                let rc = self.load(c, R0);
                self.release(c);
                let l_else = self.a.label();
                let l_end = self.a.label();
                let out = self.temp();
                self.a.jmp_imm(BPF_JEQ, rc, 0, l_else);
                let a = self.value(then)?;
                let ty = match a {
                    Value::Int(v, t) => {
                        let r = self.load(v, R0);
                        self.store(out, r);
                        self.release(v);
                        t
                    }
                    Value::Mem(..) => {
                        return err(then.span, "conditional strings are not supported yet");
                    }
                };
                self.a.ja(l_end);
                self.a.place(l_else);
                let b = self.int(els)?;
                let r = self.load(b, R0);
                self.store(out, r);
                self.release(b);
                self.a.place(l_end);
                Value::Int(out, ty)
            }
            ExprKind::Field { expr, field, .. } => {
                if matches!(&expr.kind, ExprKind::Ident(a) if a == "args") {
                    if matches!(
                        self.kind,
                        ProbeKind::RawTracepoint { .. } | ProbeKind::Fentry { .. }
                    ) {
                        return self.raw_tp_named(field, e.span);
                    }
                    return self.tp_field(field, e.span);
                }
                if let Ok(i) = field.parse::<usize>() {
                    // `$t.0`: an element of a tuple.
                    let v = self.value(expr)?;
                    let Value::Mem(off, Ty::Tuple(items)) = v else {
                        return err(e.span, format!("`.{i}` takes a tuple"));
                    };
                    let Some(t) = items.get(i).cloned() else {
                        return err(
                            e.span,
                            format!(
                                "the tuple has {} elements (.0 … .{})",
                                items.len(),
                                items.len().saturating_sub(1)
                            ),
                        );
                    };
                    let at = off + items[..i].iter().map(Ty::stored_size).sum::<usize>() as i16;
                    if t.is_int() {
                        let v = self.temp();
                        self.a.ldx(8, R0, self.fp, at);
                        self.store(v, R0);
                        return Ok(Value::Int(v, t));
                    }
                    return Ok(Value::Mem(at, t));
                }
                let p = self.place(e)?;
                return self.read_place(p, e.span);
            }
            ExprKind::Cast { ty, expr } if ty.pointers > 0 => {
                return self.cast_pointer(ty, expr, e.span);
            }
            ExprKind::Cast { ty, expr }
                if matches!(ty.base.as_str(), "bool" | "_Bool") && ty.array.is_none() =>
            {
                // `(bool)x`: true when x is not zero.
                let v = self.int(expr)?;
                let r = self.load(v, R0);
                self.truth(r);
                self.store(v, r);
                Value::Int(v, Ty::Bool)
            }
            ExprKind::Cast { ty, expr }
                if matches!(&expr.kind, ExprKind::Call { name, .. } if name == "pton") =>
            {
                // `(uint32)pton("127.0.0.1")`: the address's bytes read as
                // a native (little-endian) integer, known at compile time.
                let ExprKind::Call { args, .. } = &expr.kind else {
                    unreachable!("matched above")
                };
                let bytes = funcs::pton_bytes(args, expr.span)?;
                let Some((size, signed)) = crate::ctypes::builtin_int(&ty.base) else {
                    return err(e.span, "pton()'s bytes are cast to an integer type such as uint32");
                };
                let size = size as usize;
                if size > bytes.len() {
                    return err(
                        e.span,
                        format!("this address has {} bytes, fewer than {}", bytes.len(), ty.base),
                    );
                }
                let mut word = [0u8; 8];
                word[..size].copy_from_slice(&bytes[..size]);
                let mut n = u64::from_le_bytes(word) as i64;
                if signed && size < 8 {
                    let shift = 64 - 8 * size;
                    n = (n << shift) >> shift;
                }
                self.constant_of(
                    n,
                    Ty::Int {
                        size: size as u8,
                        signed,
                    },
                )
            }
            ExprKind::Cast { ty, expr } => {
                if ty.base.starts_with("struct ") || ty.base.starts_with("union ") {
                    return err(
                        e.span,
                        format!(
                            "a value cannot be cast to {}; cast to a pointer: `({} *)`",
                            ty.base, ty.base
                        ),
                    );
                }
                let v = self.int(expr)?;
                let r = self.load(v, R0);
                let (size, signed) = match crate::ctypes::builtin_int(&ty.base) {
                    Some(x) => x,
                    None => {
                        // A kernel typedef or enum, by BTF.
                        let id = self.c.types.named(&ty.base);
                        match self.value_type(id, false, e.span)? {
                            (n, Ty::Int { signed, .. }) => (n, signed),
                            (_, t) => {
                                return err(
                                    e.span,
                                    format!("{} is {}, not an integer type", ty.base, t.name()),
                                );
                            }
                        }
                    }
                };
                if signed {
                    self.a.sext(r, size);
                } else {
                    self.a.trunc(r, size);
                }
                self.store(v, r);
                Value::Int(
                    v,
                    Ty::Int {
                        size: size as u8,
                        signed,
                    },
                )
            }
            ExprKind::Tuple(items) => {
                let mut vals = Vec::new();
                for i in items {
                    vals.push(self.value(i)?);
                }
                let types: Vec<Ty> = vals
                    .iter()
                    .map(|v| match v {
                        Value::Int(_, t) => widen(t.clone()),
                        Value::Mem(_, t) => t.clone(),
                    })
                    .collect();
                let ty = Ty::Tuple(types);
                let off = self.alloc(ty.stored_size());
                let mut at = off;
                for v in vals {
                    match v {
                        Value::Int(val, _) => {
                            let r = self.load(val, R0);
                            self.a.stx(8, self.fp, at, r);
                            self.release(val);
                            at += 8;
                        }
                        Value::Mem(src, t) => {
                            self.copy(at, src, t.stored_size());
                            at += t.stored_size() as i16;
                        }
                    }
                }
                Value::Mem(off, ty)
            }
            ExprKind::Call { name, args } => return self.call(name, args, e.span),
            ExprKind::IncDec { .. } => return err(e.span, "++ and -- are statements here"),
            ExprKind::Index { .. } => {
                let p = self.place(e)?;
                return self.read_place(p, e.span);
            }
            ExprKind::SizeofType(ty) => {
                let n = self.sizeof_type(ty, e.span)?;
                return Ok(self.constant(n as i64));
            }
            ExprKind::SizeofExpr(x) => {
                // The expression's type, from code that is then dropped.
                let mark = self.a.checkpoint();
                let (frame, peak, free) = (self.frame, self.peak, self.free.clone());
                let v = self.value(x)?;
                self.a.rollback(mark);
                (self.frame, self.peak, self.free) = (frame, peak, free);
                let n = match &v {
                    Value::Int(_, t) => match t {
                        Ty::Int { size, .. } => *size as usize,
                        t => t.stored_size(),
                    },
                    Value::Mem(_, Ty::Str(n)) => *n,
                    Value::Mem(_, t) => t.stored_size(),
                };
                return Ok(self.constant(n as i64));
            }
            ExprKind::Offsetof { ty, field } => {
                let n = self.offsetof(ty, field, e.span)?;
                return Ok(self.constant(n as i64));
            }
        })
        .map(|v| match v {
            Value::Int(v, t) if t == Ty::U64 => int(v),
            v => v,
        })
    }

    fn binary(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr, span: Span) -> R<Value> {
        if matches!(op, BinOp::LAnd | BinOp::LOr) {
            let out = self.temp();
            let a = self.int(lhs)?;
            let ra = self.load(a, R0);
            self.release(a);
            let short = self.a.label();
            let done = self.a.label();
            self.a.jmp_imm(
                if op == BinOp::LAnd { BPF_JEQ } else { BPF_JNE },
                ra,
                0,
                short,
            );
            let b = self.int(rhs)?;
            let rb = self.load(b, R0);
            self.release(b);
            let t = self.a.label();
            self.a.jmp_imm(BPF_JNE, rb, 0, t);
            self.a.mov_imm(R0, 0);
            self.store(out, R0);
            self.a.ja(done);
            self.a.place(t);
            self.a.mov_imm(R0, 1);
            self.store(out, R0);
            self.a.ja(done);
            self.a.place(short);
            self.a.mov_imm(R0, i64::from(op == BinOp::LOr));
            self.store(out, R0);
            self.a.place(done);
            return Ok(Value::Int(out, Ty::I64));
        }
        // A string against a literal: compared a word at a time.
        if let (BinOp::Eq | BinOp::Ne, Some((lit, other))) = (
            op,
            match (&lhs.kind, &rhs.kind) {
                (_, ExprKind::Str(l)) => Some((l, lhs)),
                (ExprKind::Str(l), _) => Some((l, rhs)),
                _ => None,
            },
        ) {
            let v = self.value(other)?;
            if let Value::Mem(x, Ty::Str(n)) = v
                && n > lit.len()
            {
                let out = self.temp();
                self.str_eq_literal(x, lit.as_bytes(), out, op == BinOp::Eq);
                return Ok(Value::Int(out, Ty::I64));
            }
            let l = self.value(if std::ptr::eq(other, lhs) { rhs } else { lhs })?;
            let (a, b) = if std::ptr::eq(other, lhs) {
                (v, l)
            } else {
                (l, v)
            };
            return self.binary_values(op, a, b, span);
        }
        let a = self.value(lhs)?;
        let b = self.value(rhs)?;
        self.binary_values(op, a, b, span)
    }

    /// Whether the string at `r10 + x` (at least `lit.len() + 1` bytes)
    /// holds `lit`: its bytes and the NUL after them, compared in the
    /// widest loads that fit (what follows the NUL does not matter, as in
    /// a byte-wise comparison).
    fn str_eq_literal(&mut self, x: i16, lit: &[u8], out: Val, eq: bool) {
        let mut want = lit.to_vec();
        want.push(0);
        let differ = self.a.label();
        let done = self.a.label();
        let mut i = 0;
        while i < want.len() {
            let size = [8, 4, 2, 1]
                .into_iter()
                .find(|&n| n <= want.len() - i)
                .unwrap_or(1);
            let mut word = [0u8; 8];
            word[..size].copy_from_slice(&want[i..i + size]);
            self.a.ldx(size as u32, R0, self.fp, x + i as i16);
            self.a.mov_imm(R1, i64::from_le_bytes(word));
            self.a.jmp(BPF_JNE, R0, R1, differ);
            i += size;
        }
        self.a.mov_imm(R0, i64::from(eq));
        self.store(out, R0);
        self.a.ja(done);
        self.a.place(differ);
        self.a.mov_imm(R0, i64::from(!eq));
        self.store(out, R0);
        self.a.place(done);
    }

    fn binary_values(&mut self, op: BinOp, a: Value, b: Value, span: Span) -> R<Value> {
        match (a, b) {
            (Value::Int(a, ta), Value::Int(b, tb)) => {
                // C's usual conversions on 64-bit values: unsigned if
                // either side is a 64-bit unsigned integer or a pointer
                // (narrower unsigned ones promote to signed).
                let unsigned = |t: &Ty| {
                    matches!(
                        t,
                        Ty::Int {
                            signed: false,
                            size: 8
                        } | Ty::Ptr { .. }
                    )
                };
                let signed = !unsigned(&ta) && !unsigned(&tb);
                let ra = self.load(a, R0);
                let rb = self.load(b, R1);
                // Pointer arithmetic counts elements, as in C.
                if let (Ty::Ptr { to, .. }, Ty::Int { .. }, BinOp::Add | BinOp::Sub) =
                    (&ta, &tb, op)
                {
                    let n = self.pointee_size(*to);
                    if n != 1 {
                        self.a.alu_imm(BPF_MUL, rb, n as i32);
                    }
                    self.a
                        .alu(if op == BinOp::Add { BPF_ADD } else { BPF_SUB }, ra, rb);
                    self.store(a, ra);
                    self.release(b);
                    return Ok(Value::Int(a, ta));
                }
                let code = match op {
                    BinOp::Add => Some(BPF_ADD),
                    BinOp::Sub => Some(BPF_SUB),
                    BinOp::Mul => Some(BPF_MUL),
                    BinOp::Div => Some(BPF_DIV),
                    BinOp::Mod => Some(BPF_MOD),
                    BinOp::And => Some(BPF_AND),
                    BinOp::Or => Some(BPF_OR),
                    BinOp::Xor => Some(BPF_XOR),
                    BinOp::Shl => Some(BPF_LSH),
                    BinOp::Shr => Some(BPF_RSH),
                    _ => None,
                };
                if let Some(code) = code {
                    if signed && matches!(op, BinOp::Div | BinOp::Mod) {
                        self.a.alu_signed(code, ra, rb);
                    } else {
                        self.a.alu(code, ra, rb);
                    }
                } else {
                    let jop = match (op, signed) {
                        (BinOp::Eq, _) => BPF_JEQ,
                        (BinOp::Ne, _) => BPF_JNE,
                        (BinOp::Lt, true) => BPF_JSLT,
                        (BinOp::Lt, false) => BPF_JLT,
                        (BinOp::Le, true) => BPF_JSLE,
                        (BinOp::Le, false) => BPF_JLE,
                        (BinOp::Gt, true) => BPF_JSGT,
                        (BinOp::Gt, false) => BPF_JGT,
                        (BinOp::Ge, true) => BPF_JSGE,
                        (BinOp::Ge, false) => BPF_JGE,
                        _ => unreachable!("handled above"),
                    };
                    let yes = self.a.label();
                    let done = self.a.label();
                    self.a.jmp(jop, ra, rb, yes);
                    self.a.mov_imm(ra, 0);
                    self.a.ja(done);
                    self.a.place(yes);
                    self.a.mov_imm(ra, 1);
                    self.a.place(done);
                }
                self.store(a, ra);
                self.release(b);
                let ty = if op.is_comparison() || signed {
                    Ty::I64
                } else {
                    Ty::U64
                };
                Ok(Value::Int(a, ty))
            }
            (Value::Mem(x, tx), Value::Mem(y, ty)) if matches!(op, BinOp::Eq | BinOp::Ne) => {
                let (Ty::Str(nx), Ty::Str(ny)) = (&tx, &ty) else {
                    return err(span, "only strings and integers can be compared");
                };
                let out = self.temp();
                self.strcmp(x, y, (*nx).min(*ny).max(1), out, op == BinOp::Eq);
                Ok(Value::Int(out, Ty::I64))
            }
            (a, b) => {
                let name = |v: &Value| match v {
                    Value::Int(_, t) | Value::Mem(_, t) => t.name(),
                };
                err(
                    span,
                    format!(
                        "`{}` cannot take {} and {}",
                        op.symbol(),
                        name(&a),
                        name(&b)
                    ),
                )
            }
        }
    }

    /// `r` = 1 if it is not zero, else 0.
    fn truth(&mut self, r: Reg) {
        let done = self.a.label();
        self.a.jmp_imm(BPF_JEQ, r, 0, done);
        self.a.mov_imm(r, 1);
        self.a.place(done);
    }

    /// Compares the strings at `x` and `y` up to `n` bytes or a NUL;
    /// `out` = 1 when they are equal (`eq`) or differ (`!eq`).
    fn strcmp(&mut self, x: i16, y: i16, n: usize, out: Val, eq: bool) {
        let differ = self.a.label();
        let same = self.a.label();
        let done = self.a.label();
        for i in 0..n {
            self.a.ldx(1, R0, self.fp, x + i as i16);
            self.a.ldx(1, R1, self.fp, y + i as i16);
            self.a.jmp(BPF_JNE, R0, R1, differ);
            self.a.jmp_imm(BPF_JEQ, R0, 0, same);
        }
        self.a.ja(same);
        self.a.place(differ);
        self.a.mov_imm(R0, i64::from(!eq));
        self.store(out, R0);
        self.a.ja(done);
        self.a.place(same);
        self.a.mov_imm(R0, i64::from(eq));
        self.store(out, R0);
        self.a.place(done);
    }

    fn builtin(&mut self, name: &str, span: Span) -> R<Value> {
        let int = |v| Value::Int(v, Ty::U64);
        Ok(match name {
            "pid" => {
                self.a.call(helper::GET_CURRENT_PID_TGID);
                self.a.alu_imm(BPF_RSH, R0, 32);
                int(self.take_r0())
            }
            "tid" => {
                self.a.call(helper::GET_CURRENT_PID_TGID);
                self.a.zext32(R0);
                int(self.take_r0())
            }
            "uid" => {
                self.a.call(helper::GET_CURRENT_UID_GID);
                self.a.zext32(R0);
                int(self.take_r0())
            }
            "gid" => {
                self.a.call(helper::GET_CURRENT_UID_GID);
                self.a.alu_imm(BPF_RSH, R0, 32);
                int(self.take_r0())
            }
            "nsecs" => int(self.helper0(helper::KTIME_GET_NS)),
            "elapsed" => {
                // nsecs - the start time user space stored before attaching.
                let now = self.helper0(helper::KTIME_GET_NS);
                let key = self.alloc(8);
                self.a.st_imm(4, self.fp, key, 0);
                self.a.ld_map(R1, 1);
                self.a.mov(R2, self.fp);
                self.a.alu_imm(BPF_ADD, R2, key as i32);
                self.a.call(helper::MAP_LOOKUP);
                let none = self.a.label();
                self.a.jmp_imm(BPF_JEQ, R0, 0, none);
                let r = self.load(now, R1);
                self.a.ldx(8, R2, R0, 0);
                self.a.alu(BPF_SUB, r, R2);
                self.store(now, r);
                self.a.place(none);
                int(now)
            }
            "cpu" => int(self.helper0(helper::GET_SMP_PROCESSOR_ID)),
            // The pid of the -c command, which user space writes to slot 1
            // of the start-time map before the command runs.
            "cpid" => {
                if !self.c.opts.child {
                    return err(span, "cpid cannot be used without a -c command");
                }
                let t = self.temp();
                let key = self.alloc(8);
                self.a.st_imm(4, self.fp, key, 1);
                self.a.ld_map(R1, 1);
                self.a.mov(R2, self.fp);
                self.a.alu_imm(BPF_ADD, R2, key as i32);
                self.a.call(helper::MAP_LOOKUP);
                let none = self.a.label();
                self.a.mov_imm(R1, 0);
                self.a.jmp_imm(BPF_JEQ, R0, 0, none);
                self.a.ldx(8, R1, R0, 0);
                self.a.place(none);
                self.store(t, R1);
                int(t)
            }
            // The probed function's name, known when compiling.
            "func" => {
                let name = match &self.kind {
                    ProbeKind::Uprobe { func, .. } => func.clone(),
                    // The kernel function that ran, by its address
                    // (bpf_get_func_ip), named in user space: one type
                    // whether the probe names one function or a pattern.
                    ProbeKind::Kprobe { .. } | ProbeKind::Fentry { .. } => {
                        let off = self.alloc(8);
                        self.a.mov(R1, R6);
                        self.a.call(helper::GET_FUNC_IP);
                        self.a.stx(8, self.fp, off, R0);
                        return Ok(Value::Mem(off, Ty::Sym { user: false }));
                    }
                    _ => return err(span, "func is for uprobes, kprobes and fentry probes"),
                };
                return Ok(self.const_str(&name, 64));
            }
            "cgroup" => int(self.helper0(helper::GET_CURRENT_CGROUP_ID)),
            // The parent's pid: `curtask->real_parent->tgid`, by BTF.
            "ppid" => {
                let at = |kind| Expr { kind, span };
                let e = at(ExprKind::Field {
                    expr: Box::new(at(ExprKind::Field {
                        expr: Box::new(at(ExprKind::Ident("curtask".into()))),
                        field: "real_parent".into(),
                        arrow: true,
                    })),
                    field: "tgid".into(),
                    arrow: true,
                });
                return self.value(&e);
            }
            "curtask" => {
                let v = self.helper0(helper::GET_CURRENT_TASK);
                let to = self.c.types.named("struct task_struct");
                Value::Int(v, Ty::Ptr { to, user: false })
            }
            "rand" => int(self.helper0(helper::GET_PRANDOM_U32)),
            "kstack" | "ustack" => return self.stack(name == "ustack", &[], span),
            "username" => return Ok(self.username()),
            "true" | "false" => return Ok(self.constant_of(i64::from(name == "true"), Ty::Bool)),
            "ncpus" => {
                let n = self.c.env.ncpus();
                return Ok(self.constant(i64::from(n)));
            }
            "jiffies" => int(self.helper0(helper::JIFFIES64)),
            "comm" => {
                // The helper writes all 16 bytes (the name zero-padded).
                let off = self.alloc(16);
                self.a.mov(R1, self.fp);
                self.a.alu_imm(BPF_ADD, R1, off as i32);
                self.a.mov_imm(R2, 16);
                self.a.call(helper::GET_CURRENT_COMM);
                Value::Mem(off, Ty::Str(16))
            }
            "probe" if self.sys.as_ref().is_some_and(|s| s.tables.is_some()) => {
                let (_, names) = self.sys.as_ref().and_then(|s| s.tables).expect("checked");
                let off = self.alloc(64);
                self.zero(off, 64);
                let key = self.alloc(8);
                self.a.ldx(8, R0, self.fp, self.sys_slots.1);
                self.a.stx(4, self.fp, key, R0);
                self.a.ld_map(R1, names);
                self.a.mov(R2, self.fp);
                self.a.alu_imm(BPF_ADD, R2, key as i32);
                self.a.call(helper::MAP_LOOKUP);
                let none = self.a.label();
                self.a.jmp_imm(BPF_JEQ, R0, 0, none);
                for i in (0..64).step_by(8) {
                    self.a.ldx(8, R1, R0, i);
                    self.a.stx(8, self.fp, off + i, R1);
                }
                self.a.place(none);
                Value::Mem(off, Ty::Str(64))
            }
            "probe" => {
                let full = self.kind.full_name();
                self.const_str(&full, 64)
            }
            n if n.starts_with("arg") && n[3..].parse::<u32>().is_ok() => {
                let i: usize = n[3..].parse().expect("checked");
                // pt_regs on x86-64: di, si, dx, cx, r8, r9.
                const ARGS: [i16; 6] = [112, 104, 96, 88, 72, 64];
                match &self.kind {
                    ProbeKind::Uprobe { ret: false, .. } | ProbeKind::Kprobe { ret: false, .. } => {
                    }
                    ProbeKind::RawTracepoint { .. } | ProbeKind::Fentry { .. } => {
                        return self.raw_tp_arg(i, span);
                    }
                    ProbeKind::Usdt { .. } => return self.usdt_arg(i, span),
                    _ => {
                        return err(
                            span,
                            format!(
                                "{n} is for uprobes and kprobes (not their return probes); use args.FIELD in tracepoints"
                            ),
                        );
                    }
                }
                let Some(&off) = ARGS.get(i) else {
                    return err(
                        span,
                        "arguments past arg5 are on the stack: not supported yet",
                    );
                };
                int(self.ctx_u64(off))
            }
            "retval" => match &self.kind {
                ProbeKind::Uprobe { ret: true, .. } | ProbeKind::Kprobe { ret: true, .. } => {
                    int(self.ctx_u64(80))
                }
                // fexit: the return value follows the arguments.
                ProbeKind::Fentry { ret: true, .. } => return self.fexit_retval(span),
                _ => {
                    return err(
                        span,
                        "retval is for uretprobes, kretprobes and fexit probes",
                    );
                }
            },
            "args" => return err(span, "args is a record: use args.FIELD (or args->FIELD)"),
            other => {
                // An enumerator of the kernel's (TCP_ESTABLISHED,
                // SKB_DROP_REASON_NOT_SPECIFIED …), by BTF, as bpftrace
                // has them once it reads the kernel's types.
                if let Some(v) = self.c.types.kernel().ok().and_then(|k| k.enumerator(other)) {
                    return Ok(self.constant(v));
                }
                let d = Diagnostic::new(span, format!("unknown identifier `{other}`"));
                return Err(d.suggest(other, BUILTINS.iter().copied(), ""));
            }
        })
    }

    /// Whether `e` is computed from the context alone, without a call
    /// or a side effect (integer literals and tracepoint record fields
    /// read in place, combined by operators): such a value may be
    /// computed before its neighbours, while r1 still holds the context
    /// ([`Asm::peephole`] then does without the context's copy).
    fn reads_only_context(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Int(_) => true,
            ExprKind::Field { expr, field, .. } => {
                matches!(&expr.kind, ExprKind::Ident(a) if a == "args")
                    && matches!(self.kind, ProbeKind::Tracepoint { .. })
                    && self.sys.is_none()
                    && self.fields.as_ref().is_some_and(|fs| {
                        fs.iter()
                            .any(|f| f.name == *field && !f.char_array && !f.data_loc)
                    })
            }
            ExprKind::Binary { lhs, rhs, .. } => {
                self.reads_only_context(lhs) && self.reads_only_context(rhs)
            }
            ExprKind::Unary {
                op: UnOp::Neg | UnOp::Not | UnOp::BitNot,
                expr,
            } => self.reads_only_context(expr),
            _ => false,
        }
    }

    fn tp_field(&mut self, field: &str, span: Span) -> R<Value> {
        let Some(fields) = &self.fields else {
            return err(span, "args.FIELD is for tracepoints");
        };
        let Some(f) = fields.iter().find(|f| f.name == field).cloned() else {
            let names: Vec<&str> = fields
                .iter()
                .filter(|f| !f.name.starts_with("common_"))
                .map(|f| f.name.as_str())
                .collect();
            let d = Diagnostic::new(
                span,
                format!(
                    "the tracepoint has no field `{field}` (it has: {})",
                    names.join(", ")
                ),
            );
            return Err(d.suggest(field, names.iter().copied(), ""));
        };
        if let Some(sys) = self.sys.clone() {
            // A system call's record: the number, then its arguments (or
            // its return value), each 8 bytes from offset 16.
            let t = self.temp();
            if f.name == "__syscall_nr" {
                self.a.ldx(8, R0, self.fp, self.sys_slots.1);
            } else if sys.exit {
                self.a.ldx(8, R0, R6, 8);
            } else {
                let i = (f.offset.saturating_sub(16) / 8) as usize;
                let Some(&off) = regs::ARGS.get(i) else {
                    return err(
                        span,
                        format!("`{field}` is not an argument of this system call"),
                    );
                };
                let (copy, first) = self.sys_regs;
                if off >= first {
                    self.a.ldx(8, R0, self.fp, copy + off - first);
                } else {
                    let slot = self.sys_slots.0;
                    self.read_regs(slot, off);
                }
            }
            let size = f.size.min(8);
            if f.signed {
                self.a.sext(R0, size);
            } else {
                self.a.trunc(R0, size);
            }
            self.store(t, R0);
            let ty = self.field_type(&f, true);
            return Ok(Value::Int(t, ty));
        }
        if f.char_array {
            let ty = Ty::Str(f.size as usize);
            let off = self.alloc(ty.stored_size());
            self.zero(off, ty.stored_size());
            self.a.mov(R1, self.fp);
            self.a.alu_imm(BPF_ADD, R1, off as i32);
            self.a.mov_imm(R2, f.size as i64);
            self.a.mov(R3, R6);
            self.a.alu_imm(BPF_ADD, R3, f.offset as i32);
            self.a.call(helper::PROBE_READ_KERNEL);
            return Ok(Value::Mem(off, ty));
        }
        if f.ctype.contains('[') && f.size > 8 {
            // An array of bytes wider than a register (`__u8
            // saddr_v6[16]`): its bytes, for ntop() and buf().
            let n = f.size as usize;
            let ty = Ty::Buf(n);
            let off = self.alloc(ty.stored_size());
            self.zero(off, ty.stored_size());
            self.a.st_imm(8, self.fp, off, n as i32);
            self.a.mov(R1, self.fp);
            self.a.alu_imm(BPF_ADD, R1, off as i32 + 8);
            self.a.mov_imm(R2, n as i64);
            self.a.mov(R3, R6);
            self.a.alu_imm(BPF_ADD, R3, f.offset as i32);
            self.a.call(helper::PROBE_READ_KERNEL);
            return Ok(Value::Mem(off, ty));
        }
        if f.data_loc {
            // The low 16 bits: offset in the record; the string is read
            // from there.
            let ty = Ty::Str(64);
            let off = self.alloc(64);
            self.zero(off, 64);
            self.a.ldx(4, R3, R6, f.offset as i16);
            self.a.alu_imm(BPF_AND, R3, 0xffff);
            self.a.alu(BPF_ADD, R3, R6);
            self.a.mov(R1, self.fp);
            self.a.alu_imm(BPF_ADD, R1, off as i32);
            self.a.mov_imm(R2, 64);
            self.a.call(helper::PROBE_READ_KERNEL_STR);
            return Ok(Value::Mem(off, ty));
        }
        let t = self.temp();
        let r = Self::reg_of(t);
        let size = f.size.min(8);
        // The kernel takes only aligned loads from a tracepoint's record
        // (`__u8 saddr[4]` at offset 34 is two 2-byte loads): a field
        // whose offset is not a multiple of its size is read in pieces of
        // the largest size its offset allows, the lowest address the least
        // significant (x86-64 is little-endian).
        let piece = (1u32 << f.offset.trailing_zeros().min(3)).min(size);
        if piece == size {
            self.a.ldx(size, r, R6, f.offset as i16);
        } else {
            self.a.mov_imm(r, 0);
            for i in (0..size / piece).rev() {
                self.a.alu_imm(BPF_LSH, r, (piece * 8) as i32);
                self.a.ldx(piece, R0, R6, (f.offset + i * piece) as i16);
                self.a.alu(BPF_OR, r, R0);
            }
        }
        if f.signed {
            self.a.sext(r, size);
        }
        self.store(t, r);
        // A system call's pointer arguments point into the caller's memory.
        let user = self.user_space();
        let ty = self.field_type(&f, user);
        Ok(Value::Int(t, ty))
    }

    /// The type of an integer or pointer field of a tracepoint record:
    /// pointers keep what they point to (`struct sk_buff *`), looked up
    /// in BTF only if the script follows them.
    fn field_type(&mut self, f: &TpField, user: bool) -> Ty {
        // Qualifiers change nothing read here: `const char *const *argv`
        // is a pointer to pointers to char.
        let spaced = f.ctype.replace('*', " * ");
        let words: Vec<&str> = spaced
            .split_whitespace()
            .filter(|w| !matches!(*w, "const" | "volatile"))
            .collect();
        let stars = words.iter().rev().take_while(|w| **w == "*").count();
        if stars == 0 || f.size != 8 {
            return Ty::Int {
                size: 8,
                signed: f.signed,
            };
        }
        let base = words[..words.len() - stars].join(" ");
        let mut to = self.c.types.named(&base);
        for _ in 1..stars {
            to = self.c.types.ptr_to(to);
        }
        Ty::Ptr { to, user }
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> R<Value> {
        match name {
            "str" => {
                if args.is_empty() || args.len() > 2 {
                    return err(
                        span,
                        "str() takes a pointer and an optional length: str(p[, n])",
                    );
                }
                let len = match args.get(1) {
                    Some(a) => match self.c.const_int(a) {
                        Some(n) if (1..=200).contains(&n) => n as usize + 1,
                        _ => return err(a.span, "str()'s length must be a constant from 1 to 200"),
                    },
                    None => 64,
                };
                // str() of a string (a tracepoint's string field) is the
                // string itself.
                let (p, user) = match self.value(&args[0])? {
                    Value::Int(v, Ty::Ptr { user, .. }) => (v, user),
                    Value::Int(v, _) => (v, self.user_space()),
                    Value::Mem(off, Ty::Str(n)) => return Ok(Value::Mem(off, Ty::Str(n.min(len)))),
                    Value::Mem(_, t) => {
                        return err(
                            args[0].span,
                            format!("str() takes a pointer, not {}", t.name()),
                        );
                    }
                };
                let ty = Ty::Str(len);
                let off = self.alloc(ty.stored_size());
                self.zero(off, ty.stored_size());
                let rp = self.load(p, R3);
                self.a.mov(R3, rp);
                self.release(p);
                self.a.mov(R1, self.fp);
                self.a.alu_imm(BPF_ADD, R1, off as i32);
                self.a.mov_imm(R2, len as i64);
                // The pointer's address space (plain integers: user memory
                // in uprobes and system call tracepoints, kernel memory
                // elsewhere).
                self.a.call(if user {
                    helper::PROBE_READ_USER_STR
                } else {
                    helper::PROBE_READ_KERNEL_STR
                });
                Ok(Value::Mem(off, ty))
            }
            "strncmp" => {
                let [a, b, n] = args else {
                    return err(span, "strncmp(a, b, n) takes three arguments");
                };
                let Some(n) = self.c.const_int(n).filter(|n| (0..=200).contains(n)) else {
                    return err(n.span, "strncmp()'s length must be a constant up to 200");
                };
                let (Value::Mem(x, Ty::Str(nx)), Value::Mem(y, Ty::Str(ny))) =
                    (self.value(a)?, self.value(b)?)
                else {
                    return err(span, "strncmp() compares two strings");
                };
                let out = self.temp();
                // strncmp is 0 when equal: the negation of equality.
                self.strcmp(x, y, (n as usize).min(nx).min(ny), out, false);
                Ok(Value::Int(out, Ty::I64))
            }
            "kstack" | "ustack" => self.stack(name == "ustack", args, span),
            "ksym" | "usym" => self.sym(name == "usym", args, span),
            "kaddr" | "uaddr" => self.addr_of_symbol(name == "uaddr", args, span),
            "reg" => self.reg(args, span),
            _ if args.is_empty() && BUILTINS.contains(&name) && name != "args" => {
                self.builtin(name, span)
            }
            _ if let Some(v) = self.value_call(name, args, span)? => Ok(v),
            "count" | "sum" | "avg" | "min" | "max" | "stats" | "hist" | "lhist" => err(
                span,
                format!("{name}() is an aggregation: assign it to a map (@x = {name}(…))"),
            ),
            "printf" | "exit" | "delete" | "clear" | "zero" | "print" | "errorf" | "warnf"
            | "time" | "join" | "system" | "cat" | "print_rows" | "print_hist" | "print_stacks" => {
                err(span, format!("{name}() is a statement, not a value"))
            }
            other => {
                let d = Diagnostic::new(span, format!("unknown function `{other}`"));
                Err(d.suggest(other, FUNCTIONS.iter().copied(), ""))
            }
        }
    }
}
