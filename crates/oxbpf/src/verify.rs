//! `oxbpf verify`: verdicts for every program of objects.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::ValueEnum;
use oxbpf_obj::{ProgramDef, ProgramType};

/// Which verifier decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Verifier {
    /// oxbpf's own verifier (no privileges needed).
    Oxbpf,
    /// The running Linux kernel's verifier (through bpf(2) BPF_PROG_LOAD).
    Kernel,
}

/// `oxbpf verify`: which objects, which verifier, which policy.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Only this program (function or section name).
    #[arg(long = "program", short = 'p')]
    pub name: Option<String>,
    /// Program type when the section name does not say.
    #[arg(long = "type")]
    pub prog_type: Option<String>,
    #[arg(long, value_enum, default_value_t = Verifier::Oxbpf)]
    pub verifier: Verifier,
    /// One JSON object per program per line.
    #[arg(long)]
    pub json: bool,
    /// Print the verifier's log, each instruction annotated with its source line.
    #[arg(long)]
    pub log: bool,
    /// Print what each verification cost, as the kernel's log level 4
    /// does: instructions processed, states stored (in all, at most at
    /// once, at most at one instruction) and paths pruned (`stats` in
    /// `--json`).
    #[arg(long)]
    pub stats: bool,
    /// Type given to programs whose section name says none (reported as assumed).
    #[arg(long, default_value = "socket_filter")]
    pub default_type: String,
    /// oxbpf's verifier with the unprivileged policy (no pointer leaks,
    /// no uninitialized stack reads, no pointer comparisons).
    #[arg(long)]
    pub unprivileged: bool,
    /// Accept pointers stored into maps or the context, as the kernel
    /// does for root (CAP_PERFMON); by default such leaks are rejected.
    #[arg(long)]
    pub allow_ptr_leaks: bool,
    /// How loops are proven: `unroll` (every iteration, as the kernel) or
    /// `widen` (abstract interpretation with widening at loop heads: any
    /// trip count, memory safety only — termination is then not proven).
    #[arg(long, value_enum, default_value_t = crate::commands::LoopMode::Unroll)]
    pub loops: crate::commands::LoopMode,
    /// The kernel BTF that typed kernel pointers (tp_btf, fentry, lsm
    /// arguments; bpf_get_current_task_btf) are checked against: a raw BTF
    /// file such as another machine's /sys/kernel/btf/vmlinux. Default: the
    /// running kernel's, when it has BTF.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
}

/// The object in `bytes`, read from `path`; the error without the path
/// (the verdict line names it).
fn object_of(path: &Path, bytes: &[u8]) -> std::result::Result<oxbpf_obj::Object, String> {
    if crate::commands::is_bare_program(path) {
        // Assembly (.s) or raw bytecode (.bin): one program, no maps.
        let code =
            crate::commands::program_bytes(path, bytes.to_vec()).map_err(|e| format!("{e:#}"))?;
        let insns = oxbpf_isa::raw_slots(&code).map_err(|e| e.to_string())?;
        let name = path
            .file_stem()
            .map_or("program".into(), |s| s.to_string_lossy());
        return Ok(oxbpf_obj::Object::from_raw_program(&name, insns));
    }
    if let Err(e) = crate::commands::check_object_rule(path, bytes) {
        let msg = e.to_string();
        return Err(msg
            .split_once(": ")
            .map_or(msg.clone(), |x| x.1.to_string()));
    }
    oxbpf_obj::load(bytes).map_err(|e| e.to_string())
}

/// "1 entry", "2 entries".
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A file that cannot be read, said as a person would.
fn read_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => format!("cannot read it: {e}"),
    }
}

/// One verdict line; `--json` prints it as one object (docs/json.md).
#[derive(serde::Serialize)]
struct Row {
    object: String,
    program: String,
    section: String,
    #[serde(rename = "type")]
    kind: String,
    verdict: &'static str,
    insns_processed: Option<u64>,
    #[serde(serialize_with = "one_decimal")]
    time_us: Option<f64>,
    message: String,
    /// With `--stats`: what the verification cost.
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsJson>,
    /// A rejection's details: instruction, reason, source, registers, path.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    detail: Option<RejectionJson>,
}

/// Microseconds with one decimal, as the text output prints them.
fn one_decimal<S: serde::Serializer>(t: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_f64((t * 10.0).round() / 10.0),
        None => s.serialize_none(),
    }
}

/// What a verification cost (`--stats`); the kernel's log does not say
/// how many paths were pruned.
#[derive(serde::Serialize, Default)]
struct StatsJson {
    insns_processed: Option<u64>,
    total_states: Option<u64>,
    peak_states: Option<u64>,
    max_states_per_insn: Option<u64>,
    pruned: Option<u64>,
}

impl StatsJson {
    fn of(s: &oxbpf_verifier::Stats) -> StatsJson {
        StatsJson {
            insns_processed: Some(s.insns_processed),
            total_states: Some(s.total_states),
            peak_states: Some(s.peak_states),
            max_states_per_insn: Some(s.max_states_per_insn),
            pruned: Some(s.pruned),
        }
    }

    /// From the kernel's statistics line (which does not count pruned
    /// paths).
    fn of_kernel_log(log: &str) -> StatsJson {
        let k = oxbpf_sys::log_stats(log);
        StatsJson {
            insns_processed: k.insns_processed,
            total_states: k.total_states,
            peak_states: k.peak_states,
            max_states_per_insn: k.max_states_per_insn,
            pruned: None,
        }
    }

    fn text(&self) -> String {
        let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
        let mut t = format!(
            "  stats: processed {} insns, max_states_per_insn {}, total_states {}, peak_states {}",
            n(self.insns_processed),
            n(self.max_states_per_insn),
            n(self.total_states),
            n(self.peak_states)
        );
        if let Some(p) = self.pruned {
            let _ = write!(t, ", pruned {p}");
        }
        t
    }
}

/// A rejection's structured details.
#[derive(serde::Serialize)]
struct RejectionJson {
    pc: usize,
    insn: String,
    reason: String,
    source: Option<SourceJson>,
    /// Register number (`r0`...) to its abstract value, in register order.
    registers: Registers,
    /// The branch decisions that led to the rejection, oldest first.
    path: Vec<BranchJson>,
    /// Other instructions the reason is about (the acquisition of a leaked
    /// reference, the lock still held), with what they did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related: Vec<RelatedJson>,
}

/// Registers as a JSON object in register order (`r0` before `r10`).
struct Registers(Vec<(u8, String)>);

impl serde::Serialize for Registers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (n, d) in &self.0 {
            m.serialize_entry(&format!("r{n}"), d)?;
        }
        m.end()
    }
}

#[derive(serde::Serialize)]
struct SourceJson {
    file: String,
    line: u32,
    column: u32,
    text: String,
}

#[derive(serde::Serialize)]
struct BranchJson {
    pc: usize,
    taken: bool,
}

#[derive(serde::Serialize)]
struct RelatedJson {
    pc: usize,
    what: String,
}

impl Row {
    /// An object that could not be read or loaded.
    fn error(object: String, message: String) -> Row {
        Row {
            object,
            program: String::new(),
            section: String::new(),
            kind: String::new(),
            verdict: "error",
            insns_processed: None,
            time_us: None,
            message,
            stats: None,
            detail: None,
        }
    }

    fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn text(&self) -> String {
        if self.verdict == "error" && self.program.is_empty() {
            return format!("{}: error: {}", self.object, self.message);
        }
        let extra = match (self.insns_processed, self.time_us) {
            (Some(n), Some(t)) => format!(" ({n} insns processed, {t:.0} us)"),
            (None, Some(t)) => format!(" ({t:.0} us)"),
            _ => String::new(),
        };
        let msg = if self.message.is_empty() {
            String::new()
        } else {
            format!(": {}", self.message)
        };
        // A bare program (.s, .bin) has no section: its type goes there.
        let where_ = if self.section.is_empty() {
            &self.kind
        } else {
            &self.section
        };
        format!(
            "{} {} [{where_}]: {}{extra}{msg}",
            self.object, self.program, self.verdict
        )
    }
}

fn summary(log: &str) -> String {
    oxbpf_sys::log_summary(log).to_string()
}

/// Annotates `N: (..) insn` lines with the source line the object's BTF
/// gives for instruction N.
fn annotate(log: &str, def: &ProgramDef) -> String {
    let mut out = String::new();
    for line in log.lines() {
        out.push_str(line);
        let idx = line
            .split(':')
            .next()
            .and_then(|n| n.trim().parse::<usize>().ok());
        if let Some(i) = idx.filter(|_| line.contains(": ("))
            && let Some(l) = def.line_for(i)
        {
            let _ = write!(out, "    // {}:{}:{}", l.file, l.line, l.column);
        }
        out.push('\n');
    }
    out
}

pub fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    if a.verifier == Verifier::Oxbpf {
        return verify_oxbpf(a);
    }
    if let Err(e) = oxbpf_sys::available() {
        eprintln!("error: the kernel verifier needs bpf(2) (run as root): {e}");
        return Ok(ExitCode::from(2));
    }
    let override_type = match &a.prog_type {
        Some(t) => Some(crate::commands::parse_prog_type(t)?),
        None => None,
    };
    let files = oxbpf_obj::object_files(&a.paths);
    if files.is_empty() {
        return Err(anyhow!("no objects found"));
    }
    let mut out = std::io::stdout().lock();
    let (mut any_reject, mut any_error) = (false, false);
    for f in files {
        let object = f.display().to_string();
        let bytes = match std::fs::read(&f) {
            Ok(b) => b,
            Err(e) => {
                any_error = true;
                let row = Row::error(object, read_error(&e));
                writeln!(out, "{}", if a.json { row.json() } else { row.text() })?;
                continue;
            }
        };
        let obj = match object_of(&f, &bytes) {
            Ok(o) => o,
            Err(e) => {
                any_error = true;
                let row = Row::error(object, e);
                writeln!(out, "{}", if a.json { row.json() } else { row.text() })?;
                continue;
            }
        };
        // Programs whose section names no type get the default type (and
        // the output says it was assumed).
        let default = crate::commands::parse_prog_type(&a.default_type)?;
        let mut obj = obj;
        let mut assumed = vec![false; obj.programs.len()];
        if override_type.is_none() {
            for (i, p) in obj.programs.iter_mut().enumerate() {
                if p.kind == ProgramType::Unspec {
                    p.kind = default;
                    assumed[i] = true;
                }
            }
        }
        let k = oxbpf_sys::object::load_object(&obj, override_type);
        if let (Some(e), true) = (&k.btf_error, a.log) {
            writeln!(out, "{object}: BTF not loaded: {e}")?;
        }
        for (pi, p) in k.programs.iter().enumerate() {
            if a.name
                .as_ref()
                .is_some_and(|n| *n != p.def.name && *n != p.def.section)
            {
                continue;
            }
            let v = &p.verdict;
            let (verdict, message) = match &v.prog {
                Ok(_) => ("accept", String::new()),
                Err(e) if v.log.is_empty() || e.errno != libc_eacces_or_einval(e.errno) => {
                    ("error", e.to_string())
                }
                Err(_) => ("reject", summary(&v.log)),
            };
            match verdict {
                "reject" => any_reject = true,
                "error" => any_error = true,
                _ => {}
            }
            let row = Row {
                object: object.clone(),
                program: p.def.name.clone(),
                section: p.def.section.clone(),
                kind: if assumed[pi] {
                    format!("{} (assumed)", p.kind.name())
                } else {
                    p.kind.name().to_string()
                },
                verdict,
                insns_processed: v.insns_processed,
                time_us: Some(v.time.as_secs_f64() * 1e6),
                message,
                stats: a.stats.then(|| StatsJson::of_kernel_log(&v.log)),
                detail: None,
            };
            writeln!(out, "{}", if a.json { row.json() } else { row.text() })?;
            if let (Some(s), false) = (&row.stats, a.json) {
                writeln!(out, "{}", s.text())?;
            }
            if a.log && !v.log.is_empty() {
                writeln!(out, "{}", annotate(&v.log, &p.def))?;
            }
        }
    }
    Ok(if any_error {
        ExitCode::from(2)
    } else if any_reject {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A load that failed with a verifier log is a rejection when the errno is
/// the verifier's (EACCES or EINVAL with a log); other errnos are errors.
fn libc_eacces_or_einval(errno: i32) -> i32 {
    match errno {
        13 | 22 | 7 | 28 => errno,
        _ => -1,
    }
}

/// Loads every object and checks every program with oxbpf's verifier.
fn verify_oxbpf(a: &VerifyArgs) -> Result<ExitCode> {
    let override_type = match &a.prog_type {
        Some(t) => Some(crate::commands::parse_prog_type(t)?),
        None => None,
    };
    let default = crate::commands::parse_prog_type(&a.default_type)?;
    let files = oxbpf_obj::object_files(&a.paths);
    if files.is_empty() {
        return Err(anyhow!("no objects found"));
    }
    let kernel_btf = match &a.btf {
        Some(p) => Some(oxbpf_sys::vmlinux::from_file(p).map_err(|e| anyhow!(e))?),
        None => oxbpf_sys::vmlinux::shared().ok(),
    };
    let mut out = std::io::stdout().lock();
    let (mut any_reject, mut any_error) = (false, false);
    for f in files {
        let object = f.display().to_string();
        let loaded = std::fs::read(&f)
            .map_err(|e| read_error(&e))
            .and_then(|b| object_of(&f, &b));
        let obj = match loaded {
            Ok(o) => o,
            Err(message) => {
                any_error = true;
                let row = Row::error(object, message);
                writeln!(out, "{}", if a.json { row.json() } else { row.text() })?;
                continue;
            }
        };
        for (i, p) in obj.programs.iter().enumerate() {
            if a.name
                .as_ref()
                .is_some_and(|n| *n != p.name && *n != p.section)
            {
                continue;
            }
            let (kind, assumed) = match (override_type, p.kind) {
                (Some(t), _) => (t, false),
                (None, ProgramType::Unspec) => (default, true),
                (None, k) => (k, false),
            };
            let opts = oxbpf_verifier::Options {
                prog_type: kind,
                log: a.log,
                privileged: !a.unprivileged,
                allow_ptr_leaks: a.allow_ptr_leaks,
                kernel_btf: kernel_btf.clone(),
                widen_loops: a.loops == crate::commands::LoopMode::Widen,
                ..Default::default()
            };
            let start = std::time::Instant::now();
            let res = oxbpf_verifier::verify_object_program(&obj, i, &opts);
            let time_us = start.elapsed().as_secs_f64() * 1e6;
            let (verdict, processed, message, stats) = match &res {
                Ok(r) => ("accept", r.insns_processed, String::new(), r.stats),
                Err(e) => {
                    any_reject = true;
                    ("reject", e.insns_processed, e.to_string(), e.stats)
                }
            };
            let row = Row {
                object: object.clone(),
                program: p.name.clone(),
                section: p.section.clone(),
                kind: if assumed {
                    format!("{} (assumed)", kind.name())
                } else {
                    kind.name().to_string()
                },
                verdict,
                insns_processed: Some(processed),
                time_us: Some(time_us),
                message,
                stats: a.stats.then(|| StatsJson::of(&stats)),
                detail: res.as_ref().err().map(|e| rejection_json(e, p)),
            };
            writeln!(out, "{}", if a.json { row.json() } else { row.text() })?;
            if let (Some(s), false) = (&row.stats, a.json) {
                writeln!(out, "{}", s.text())?;
            }
            if let Err(e) = &res
                && !a.json
            {
                let text = e.explain(Some(p));
                write!(out, "{text}")?;
                write!(out, "{}", map_legend(&text, &obj))?;
            }
            if a.log && !a.json {
                let log = match &res {
                    Ok(r) => &r.log,
                    Err(e) => &e.log,
                };
                for l in log {
                    let src = l
                        .split(':')
                        .next()
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|i| p.line_for(i))
                        .map(|s| format!("    // {}:{}", s.file, s.line))
                        .unwrap_or_default();
                    writeln!(out, "  {l}{src}")?;
                }
            }
        }
    }
    Ok(if any_error {
        ExitCode::from(2)
    } else if any_reject {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A rejection's structured details.
fn rejection_json(e: &oxbpf_verifier::Rejection, p: &oxbpf_obj::ProgramDef) -> RejectionJson {
    RejectionJson {
        pc: e.pc,
        insn: e.insn.clone(),
        reason: e.message.clone(),
        source: p.line_for(e.pc).map(|l| SourceJson {
            file: l.file.clone(),
            line: l.line,
            column: l.column,
            text: l.text.trim().to_string(),
        }),
        registers: Registers(e.regs.clone()),
        path: e
            .path
            .iter()
            .map(|&(pc, taken)| BranchJson { pc, taken })
            .collect(),
        related: e
            .related
            .iter()
            .map(|(pc, what)| RelatedJson {
                pc: *pc,
                what: what.clone(),
            })
            .collect(),
    }
}

/// "  maps: map0 = `name` (array, key 4, value 8, 1 entries)" for the maps
/// a rejection mentions as `map0` or `map 0`.
fn map_legend(text: &str, obj: &oxbpf_obj::Object) -> String {
    let mut seen: Vec<usize> = Vec::new();
    for (i, _) in text.match_indices("map") {
        let rest = text[i + 3..].trim_start_matches(' ');
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        // Skip words such as "map_value" and "maps".
        if digits.is_empty() || (i > 0 && text.as_bytes()[i - 1].is_ascii_alphanumeric()) {
            continue;
        }
        if let Ok(n) = digits.parse::<usize>()
            && n < obj.maps.len()
            && !seen.contains(&n)
        {
            seen.push(n);
        }
    }
    if seen.is_empty() {
        return String::new();
    }
    seen.sort_unstable();
    let parts: Vec<String> = seen
        .iter()
        .map(|&n| {
            let m = &obj.maps[n];
            format!(
                "map{n} = `{}` ({}, key {}, value {}, {})",
                m.name,
                oxbpf_obj::map_type_name(m.map_type),
                m.key_size,
                m.value_size,
                plural(m.max_entries as usize, "entry", "entries")
            )
        })
        .collect();
    format!("  maps: {}\n", parts.join("; "))
}
