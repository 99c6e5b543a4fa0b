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
    /// Only this process, for probes that filter by process (uprobes).
    #[arg(long)]
    pub pid: Option<i32>,
    /// One JSON object per line (docs/json.md).
    #[arg(long)]
    pub json: bool,
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
    let opts = oxbpf_live::Options {
        pid: a.pid,
        ..Default::default()
    };
    let mut session = oxbpf_live::Session::load(object.clone(), &opts)
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
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
    if attached == 0 {
        bail!("{path}: no program names a hook to attach to (see `oxbpf inspect`)");
    }
    let mut rings = session
        .ring_buffers()
        .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
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
        if rings.is_empty() {
            std::thread::sleep(tick);
        }
        let per_ring = tick / rings.len().max(1) as u32;
        for (name, ring) in &mut rings {
            ring.wait(per_ring);
            let mut err = Ok(());
            ring.consume(|rec| {
                records += 1;
                if err.is_ok() {
                    err = print_record(&mut out, name, rec, event_type.as_ref(), a.json);
                }
            });
            err?;
        }
        out.flush()?;
        if let (Some(t), Some(i)) = (next_dump, interval)
            && Instant::now() >= t
        {
            dump_maps(&mut out, &session, &object, a.json)?;
            next_dump = Some(t + i);
        }
    }
    // Drain what arrived before the stop, then detach.
    for (name, ring) in &mut rings {
        let mut err = Ok(());
        ring.consume(|rec| {
            records += 1;
            if err.is_ok() {
                err = print_record(&mut out, name, rec, event_type.as_ref(), a.json);
            }
        });
        err?;
    }
    session.detach_all();
    eprintln!(
        "detached {}; {records} ring-buffer records in {:.1} s",
        crate::verify::plural(attached, "program", "programs"),
        start.elapsed().as_secs_f64()
    );
    dump_maps(&mut out, &session, &object, a.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_record(
    out: &mut impl std::io::Write,
    ring: &str,
    rec: &[u8],
    event_type: Option<&(oxbpf_obj::Btf, u32)>,
    as_json: bool,
) -> std::io::Result<()> {
    // A record may be longer than its type (a variable tail): decode the
    // type's prefix.
    let decoded = event_type.and_then(|(btf, id)| {
        let size = btf.size_of(*id)? as usize;
        btf.decode(*id, rec.get(..size)?)
    });
    if as_json {
        #[derive(serde::Serialize)]
        struct Record<'a> {
            ringbuf: &'a str,
            data: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            event: Option<serde_json::Value>,
        }
        let r = Record {
            ringbuf: ring,
            data: hex(rec),
            event: decoded.as_ref().map(json::btf_value),
        };
        return writeln!(out, "{}", json::line(&r));
    }
    match decoded {
        Some(v) => writeln!(out, "{ring}: {v}"),
        None => writeln!(out, "{ring}: {}", hex(rec)),
    }
}

fn dump_maps(
    out: &mut impl std::io::Write,
    session: &oxbpf_live::Session,
    object: &oxbpf_obj::Object,
    as_json: bool,
) -> Result<()> {
    for (name, m) in session.maps() {
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
