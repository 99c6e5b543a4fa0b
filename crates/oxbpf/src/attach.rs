//! `oxbpf attach`: load an object into the kernel, attach its programs to
//! the hooks their sections name, stream ring-buffer records until Ctrl-C
//! or `--duration`, then detach everything and print the maps.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::object_run::{hex, json, write_map};

#[derive(clap::Args)]
pub struct AttachArgs {
    /// A BPF ELF object.
    pub file: PathBuf,
    /// Attach only this program (function name; repeatable). Default: every
    /// program whose section names a hook.
    #[arg(short, long = "program")]
    pub programs: Vec<String>,
    /// Decode ring-buffer records as this type of the object's BTF
    /// (`struct event`); hex otherwise.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Stop after this many seconds (default: at Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Also print the maps every this many seconds.
    #[arg(long)]
    pub interval: Option<f64>,
    /// Set a global variable before load (`const volatile` filters in
    /// .rodata, or .data/.bss), typed through BTF: NAME=VALUE (repeatable).
    #[arg(long = "rodata", value_name = "NAME=VALUE")]
    pub globals: Vec<String>,
    /// Override a map's size before load: NAME.max_entries=N (repeatable).
    #[arg(long = "map", value_name = "NAME.max_entries=N")]
    pub maps: Vec<String>,
    /// Only this process, for probes that filter by process (uprobes,
    /// sampling events).
    #[arg(long)]
    pub pid: Option<i32>,
    /// `perf_event` programs: sample about this many times a second on
    /// every CPU (default 99).
    #[arg(long, conflicts_with = "period")]
    pub freq: Option<u64>,
    /// `perf_event` programs: sample every N events (nanoseconds for the
    /// clocks).
    #[arg(long)]
    pub period: Option<u64>,
    /// `perf_event` programs: the software event to sample (cpu-clock,
    /// task-clock, page-faults, context-switches, cpu-migrations, ...).
    #[arg(long, default_value = "cpu-clock")]
    pub event: String,
    /// The network interface for XDP, tc and socket-filter programs.
    #[arg(long)]
    pub iface: Option<String>,
    /// Where XDP programs run: auto (native when the driver has it),
    /// native or generic.
    #[arg(long, value_enum, default_value_t = XdpMode::Auto)]
    pub xdp_mode: XdpMode,
    /// The cgroup v2 directory for cgroup programs.
    #[arg(long)]
    pub cgroup: Option<PathBuf>,
    /// Pin the maps and links in this bpffs directory: the programs stay
    /// attached after oxbpf exits, until the pins are removed.
    #[arg(long)]
    pub pin: Option<PathBuf>,
    /// Where maps marked `LIBBPF_PIN_BY_NAME` are found and pinned, as
    /// libbpf's pin_root_path (a matching pinned map is reused; a new one
    /// stays pinned).
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf")]
    pub pin_root: PathBuf,
    /// The sockmap or sockhash of the object that sk_msg and sk_skb
    /// programs attach to (needed only when it has more than one).
    #[arg(long, value_name = "MAP")]
    pub sockmap: Option<String>,
    /// Of alternate programs for one event (tp_btf/X, raw_tp/X,
    /// tracepoint/C/X; fentry/F, kprobe/F; fexit/F, kretprobe/F), load only
    /// the best this kernel supports.
    #[arg(long)]
    pub auto: bool,
    /// One JSON object per line (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum XdpMode {
    Auto,
    Native,
    Generic,
}

fn seconds(what: &str, s: Option<f64>) -> Result<Option<Duration>> {
    match s {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => bail!("--{what} {s}: expected a positive number of seconds"),
    }
}

pub fn attach(a: &AttachArgs) -> Result<ExitCode> {
    let duration = seconds("duration", a.duration)?;
    let interval = seconds("interval", a.interval)?;
    let path = a.file.display().to_string();
    let bytes = std::fs::read(&a.file).with_context(|| path.clone())?;
    crate::commands::check_object_rule(&a.file, &bytes)?;
    let mut object = oxbpf_obj::load(&bytes).with_context(|| path.clone())?;
    for g in &a.globals {
        let (name, value) = g
            .split_once('=')
            .with_context(|| format!("--rodata {g:?}: expected NAME=VALUE"))?;
        object
            .set_global(name.trim(), value)
            .with_context(|| format!("--rodata {g}"))?;
    }
    for m in &a.maps {
        let parsed = m.split_once('=').and_then(|(k, v)| {
            Some((
                k.strip_suffix(".max_entries")?,
                v.trim().parse::<u32>().ok()?,
            ))
        });
        let (name, n) =
            parsed.with_context(|| format!("--map {m:?}: expected NAME.max_entries=N"))?;
        object
            .set_max_entries(name, n)
            .with_context(|| format!("--map {m}"))?;
    }
    let event_type = match &a.event_type {
        None => None,
        Some(t) => {
            let btf = object.btf.as_ref().with_context(|| {
                format!("--event-type {t:?}: {path} has no BTF to decode it with")
            })?;
            let id = btf
                .named(t)
                .with_context(|| format!("--event-type {t:?}: no such type in {path}'s BTF"))?;
            Some((btf.clone(), id))
        }
    };
    for p in &a.programs {
        if !object.programs.iter().any(|d| &d.name == p) {
            let names: Vec<&str> = object.programs.iter().map(|d| d.name.as_str()).collect();
            bail!(
                "{path}: no program `{p}`; the programs are {}",
                names.join(", ")
            );
        }
    }
    // Stop on Ctrl-C and SIGTERM: the loop below notices within 100 ms,
    // and everything is detached and closed on the way out.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the SIGINT/SIGTERM handler")?;
    }
    let event = oxbpf_sys::perf::SOFTWARE_EVENTS
        .iter()
        .find(|(n, _)| *n == a.event)
        .map(|(_, c)| *c)
        .with_context(|| {
            let names: Vec<&str> = oxbpf_sys::perf::SOFTWARE_EVENTS
                .iter()
                .map(|(n, _)| *n)
                .collect();
            format!(
                "--event {}: not a software event this kernel has; the events are {}",
                a.event,
                names.join(", ")
            )
        })?;
    let rate = match (a.freq, a.period) {
        (_, Some(0)) | (Some(0), _) => bail!("--freq and --period must be at least 1"),
        (_, Some(p)) => oxbpf_sys::perf::Sampling::Period(p),
        (Some(f), None) => oxbpf_sys::perf::Sampling::Frequency(f),
        (None, None) => oxbpf_sys::perf::Sampling::Frequency(99),
    };
    let opts = oxbpf_live::Options {
        pid: a.pid,
        sampling: oxbpf_live::Sampling { event, rate },
        iface: a.iface.clone(),
        xdp_mode: match a.xdp_mode {
            XdpMode::Auto => oxbpf_live::XdpMode::Auto,
            XdpMode::Native => oxbpf_live::XdpMode::Native,
            XdpMode::Generic => oxbpf_live::XdpMode::Generic,
        },
        cgroup: a.cgroup.clone(),
        default_type: None,
        partial: false,
        pin_root: Some(a.pin_root.clone()),
        auto: a.auto,
        sockmap: a.sockmap.clone(),
    };
    let mut session = oxbpf_live::Session::load(object.clone(), &opts)
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    for c in session.choices() {
        match &c.chosen {
            Some((name, section)) => eprintln!("{}: {name} ({section}) chosen", c.event),
            None => eprintln!("{}: this kernel supports none of its programs", c.event),
        }
        for (name, section, why) in &c.dropped {
            eprintln!("  not loaded: {name} ({section}): {why}");
        }
    }
    for m in session.pinned_maps() {
        if m.reused {
            eprintln!("map {} reused from its pin {}", m.name, m.path);
        } else {
            eprintln!(
                "map {} pinned at {} (LIBBPF_PIN_BY_NAME; it stays until removed)",
                m.name, m.path
            );
        }
    }
    let attached = if a.programs.is_empty() {
        session
            .attach_all()
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?
    } else {
        for p in &a.programs {
            session
                .attach(p)
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        }
        a.programs.len()
    };
    for at in session.attachments() {
        eprintln!("attached {} to {}", at.program, at.hook);
    }
    if let Some(dir) = &a.pin {
        let pins = session
            .pin(dir)
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
        eprintln!(
            "pinned {} in {} (they stay until removed: rm -r {})",
            crate::verify::plural(pins.len(), "object", "objects"),
            dir.display(),
            dir.display()
        );
    }
    if attached == 0 {
        bail!("{path}: no program names a hook to attach to (see `oxbpf inspect`)");
    }
    let mut rings = session
        .ring_buffers()
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    // Perf event arrays: a 64-page ring per CPU (libbpf-tools' size).
    let mut perfs = session
        .perf_buffers(64)
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let mut lost_seen = vec![0u64; perfs.len()];
    // bpf_trace_printk output: the kernel's trace pipe, read without
    // blocking, when a program calls the helper (the pipe is global: lines
    // of other tracers show too, with their comm and pid).
    let printk = object.programs.iter().any(|p| {
        p.insns.iter().any(|i| {
            i.code == oxbpf_isa::raw::opcode::CALL
                && i.src == 0
                && i.imm as u32 == oxbpf_abi::helper::TRACE_PRINTK
        })
    });
    let mut trace_pipe = if printk { open_trace_pipe() } else { None };
    eprintln!(
        "{}; Ctrl-C to stop",
        match duration {
            Some(d) => format!("running for {:.1} s", d.as_secs_f64()),
            None => "running".into(),
        }
    );
    let start = Instant::now();
    let mut next_dump = interval.map(|i| start + i);
    let mut out = std::io::stdout().lock();
    let mut records = 0u64;
    while !stop.load(Ordering::SeqCst) && duration.is_none_or(|d| start.elapsed() < d) {
        let tick = Duration::from_millis(100);
        if rings.is_empty() && perfs.is_empty() {
            std::thread::sleep(tick);
        }
        let per_ring = tick / (rings.len() + perfs.len()).max(1) as u32;
        for (i, (name, pb)) in perfs.iter_mut().enumerate() {
            pb.wait(per_ring);
            records += drain_perf(
                &mut out,
                name,
                pb,
                event_type.as_ref(),
                a.json,
                &mut lost_seen[i],
            )?;
        }
        for (name, ring) in &mut rings {
            ring.wait(per_ring);
            records += drain_ring(&mut out, name, ring, event_type.as_ref(), a.json)?;
        }
        if let Some(tp) = trace_pipe.as_mut() {
            records += drain_trace_pipe(&mut out, tp, a.json)?;
        }
        out.flush()?;
        if let (Some(t), Some(i)) = (next_dump, interval)
            && Instant::now() >= t
        {
            dump_maps(&mut out, &session, &object, a.pid, a.json)?;
            next_dump = Some(t + i);
        }
    }
    // Drain what arrived before the stop, then detach.
    for (name, ring) in &mut rings {
        records += drain_ring(&mut out, name, ring, event_type.as_ref(), a.json)?;
    }
    session.detach_all();
    for (i, (name, pb)) in perfs.iter_mut().enumerate() {
        records += drain_perf(
            &mut out,
            name,
            pb,
            event_type.as_ref(),
            a.json,
            &mut lost_seen[i],
        )?;
    }
    let lost: u64 = perfs.iter().map(|(_, pb)| pb.lost).sum();
    eprintln!(
        "detached {}; {records} records in {:.1} s{}",
        crate::verify::plural(attached, "program", "programs"),
        start.elapsed().as_secs_f64(),
        if perfs.is_empty() {
            String::new()
        } else {
            format!("; {lost} perf samples lost")
        }
    );
    dump_maps(&mut out, &session, &object, a.pid, a.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The trace pipe, opened non-blocking.
fn open_trace_pipe() -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = oxbpf_sys::perf::tracefs_root()?.join("trace_pipe");
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(path)
        .ok()
}

/// `O_NONBLOCK` on Linux.
const fn libc_o_nonblock() -> i32 {
    0o4000
}

/// Prints the complete lines waiting in the trace pipe.
fn drain_trace_pipe(
    out: &mut impl std::io::Write,
    tp: &mut std::fs::File,
    as_json: bool,
) -> Result<u64> {
    use std::io::Read as _;
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        match tp.read(&mut buf) {
            Ok(0) => break,
            Ok(len) => {
                for line in String::from_utf8_lossy(&buf[..len]).lines() {
                    // "comm-pid [cpu] flags ts: bpf_trace_printk: text"
                    let text = line
                        .split_once("bpf_trace_printk: ")
                        .map_or(line, |(_, t)| t);
                    if as_json {
                        #[derive(serde::Serialize)]
                        struct Line<'a> {
                            trace_printk: &'a str,
                            line: &'a str,
                        }
                        writeln!(
                            out,
                            "{}",
                            json::line(&Line {
                                trace_printk: text,
                                line: line.trim()
                            })
                        )?;
                    } else {
                        writeln!(out, "trace_printk: {text}")?;
                    }
                    n += 1;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}

/// Prints the records waiting in a ring buffer; returns how many.
fn drain_ring(
    out: &mut impl std::io::Write,
    name: &str,
    ring: &mut oxbpf_sys::ringbuf::RingBuf,
    event_type: Option<&(oxbpf_obj::Btf, u32)>,
    as_json: bool,
) -> Result<u64> {
    let mut n = 0u64;
    let mut err = Ok(());
    ring.consume(|rec| {
        n += 1;
        if err.is_ok() {
            err = print_event(out, Source::Ring(name), rec, event_type, as_json);
        }
    });
    err?;
    Ok(n)
}

/// Prints the samples waiting in a perf buffer; says on stderr when the
/// kernel reports more lost samples. Returns how many it printed.
fn drain_perf(
    out: &mut impl std::io::Write,
    name: &str,
    pb: &mut oxbpf_sys::perfbuf::PerfBuffer,
    event_type: Option<&(oxbpf_obj::Btf, u32)>,
    as_json: bool,
    lost_seen: &mut u64,
) -> Result<u64> {
    let mut n = 0u64;
    let mut err = Ok(());
    pb.consume(|cpu, rec| {
        n += 1;
        if err.is_ok() {
            err = print_event(out, Source::Perf(name, cpu), rec, event_type, as_json);
        }
    });
    err?;
    if pb.lost > *lost_seen {
        eprintln!("{name}: {} samples lost (rings full)", pb.lost - *lost_seen);
        *lost_seen = pb.lost;
    }
    Ok(n)
}

/// Where a record came from.
#[derive(Clone, Copy)]
enum Source<'a> {
    Ring(&'a str),
    Perf(&'a str, u32),
}

/// Prints one record: decoded through `--event-type` (its prefix: a
/// record may carry a variable tail) or as hex; as a JSON object with
/// `ringbuf` or `perf_event` + `cpu`.
fn print_event(
    out: &mut impl std::io::Write,
    from: Source<'_>,
    rec: &[u8],
    event_type: Option<&(oxbpf_obj::Btf, u32)>,
    as_json: bool,
) -> std::io::Result<()> {
    let decoded = event_type.and_then(|(btf, id)| {
        let size = btf.size_of(*id)? as usize;
        btf.decode(*id, rec.get(..size)?)
    });
    if as_json {
        #[derive(serde::Serialize)]
        struct Record<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            ringbuf: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            perf_event: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            cpu: Option<u32>,
            data: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            event: Option<serde_json::Value>,
        }
        let (ringbuf, perf_event, cpu) = match from {
            Source::Ring(n) => (Some(n), None, None),
            Source::Perf(n, c) => (None, Some(n), Some(c)),
        };
        let r = Record {
            ringbuf,
            perf_event,
            cpu,
            data: hex(rec),
            event: decoded.as_ref().map(json::btf_value),
        };
        return writeln!(out, "{}", json::line(&r));
    }
    let label = match from {
        Source::Ring(n) => n.to_string(),
        Source::Perf(n, c) => format!("{n} (cpu {c})"),
    };
    match decoded {
        Some(v) => writeln!(out, "{label}: {v}"),
        None => writeln!(out, "{label}: {}", hex(rec)),
    }
}

fn dump_maps(
    out: &mut impl std::io::Write,
    session: &oxbpf_live::Session,
    object: &oxbpf_obj::Object,
    pid: Option<i32>,
    as_json: bool,
) -> Result<()> {
    let pids = user_stack_pids(session, object);
    // With --pid every user stack is that process's.
    let pids = match pid {
        Some(p) => StackPids::All(p as u32),
        None => StackPids::ById(pids),
    };
    for (name, m) in session.maps() {
        if m.spec.map_type == oxbpf_abi::map_type::STACK_TRACE {
            write_stacks(out, name, m, &pids, as_json)?;
            continue;
        }
        if !oxbpf_sys::map_is_dumpable(m.spec.map_type) {
            continue;
        }
        let entries = m
            .entries()
            .map_err(|e| anyhow::anyhow!("map {name}: {e}"))?;
        write_map(out, object, name, m.spec.map_type, &entries, as_json)?;
    }
    Ok(())
}

/// The process a user stack came from.
enum StackPids {
    All(u32),
    ById(std::collections::HashMap<u32, u32>),
}

impl StackPids {
    fn get(&self, id: u32) -> Option<u32> {
        match self {
            StackPids::All(p) => Some(*p),
            StackPids::ById(m) => m.get(&id).copied(),
        }
    }
}

/// Which process each user stack id came from, as far as the object's
/// maps tell: a map whose BTF key is a struct with a `pid` (or `tgid`)
/// member and a user-stack-id member (`user_stack`, `user_stack_id`,
/// `ustack`, … — libbpf-tools' and BCC's profile keys) pairs them.
fn user_stack_pids(
    session: &oxbpf_live::Session,
    object: &oxbpf_obj::Object,
) -> std::collections::HashMap<u32, u32> {
    use oxbpf_obj::btf::Kind;
    let mut out = std::collections::HashMap::new();
    let Some(btf) = &object.btf else {
        return out;
    };
    for def in &object.maps {
        let Some(Kind::Struct { members, .. }) =
            btf.get(btf.resolve(def.btf_key_type_id)).map(|t| &t.kind)
        else {
            continue;
        };
        let field = |pred: &dyn Fn(&str) -> bool| {
            members
                .iter()
                .find(|m| m.bitfield_size == 0 && m.offset % 8 == 0 && pred(&m.name))
                .filter(|m| btf.size_of(m.type_id) == Some(4))
                .map(|m| (m.offset / 8) as usize)
        };
        let Some(pid_at) = field(&|n| n == "pid" || n == "tgid") else {
            continue;
        };
        let Some(stack_at) = field(&|n| {
            let n = n.to_ascii_lowercase();
            n.starts_with("ustack") || (n.contains("user") && n.contains("stack"))
        }) else {
            continue;
        };
        let Ok(m) = session.map(&def.name) else {
            continue;
        };
        let u32_at = |b: &[u8], o: usize| {
            b.get(o..o + 4)
                .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        };
        for (k, _) in m.entries().unwrap_or_default() {
            if let (Some(pid), Some(id)) = (u32_at(&k, pid_at), u32_at(&k, stack_at))
                && (id as i32) >= 0
            {
                out.entry(id).or_insert(pid);
            }
        }
    }
    out
}

/// A stack-trace map: each stack with its frames, kernel addresses
/// symbolized through /proc/kallsyms, user addresses through the ELF and
/// DWARF symbols of the process they came from (`pids`, from the maps that
/// pair a pid with a user stack id) while it still runs; otherwise they
/// stay numbers.
fn write_stacks(
    out: &mut impl std::io::Write,
    name: &str,
    m: &oxbpf_sys::Map,
    pids: &StackPids,
    as_json: bool,
) -> Result<()> {
    let symbols = oxbpf_live::symbols::Symbolizer::new();
    let entries = m
        .entries()
        .map_err(|e| anyhow::anyhow!("map {name}: {e}"))?;
    let mut stacks = Vec::new();
    for (k, v) in &entries {
        let id = u32::from_le_bytes(k.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
        let addrs = oxbpf_live::symbols::stack_addresses(v);
        // The kernel's half of the address space.
        let frames: Vec<String> = if addrs.first().is_some_and(|&a| a >= 0xffff_8000_0000_0000) {
            symbols
                .kernel(&addrs)
                .iter()
                .map(|f| f.to_string())
                .collect()
        } else if let Some(pid) = pids.get(id) {
            symbols
                .user(pid, &addrs)
                .iter()
                .map(|f| f.to_string())
                .collect()
        } else {
            addrs.iter().map(|a| format!("{a:#x}")).collect()
        };
        stacks.push((id, frames));
    }
    stacks.sort();
    if as_json {
        #[derive(serde::Serialize)]
        struct Stack {
            id: u32,
            frames: Vec<String>,
        }
        #[derive(serde::Serialize)]
        struct Stacks<'a> {
            map: &'a str,
            stacks: Vec<Stack>,
        }
        let s = Stacks {
            map: name,
            stacks: stacks
                .into_iter()
                .map(|(id, frames)| Stack { id, frames })
                .collect(),
        };
        writeln!(out, "{}", json::line(&s))?;
        return Ok(());
    }
    writeln!(
        out,
        "map {name} ({}):",
        crate::verify::plural(stacks.len(), "stack", "stacks")
    )?;
    for (id, frames) in stacks {
        writeln!(out, "  stack {id}:")?;
        for f in frames {
            writeln!(out, "    {f}")?;
        }
    }
    Ok(())
}
