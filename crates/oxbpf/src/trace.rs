//! `oxbpf trace`: bpftrace scripts compiled by `oxbpf-trace`, loaded and
//! attached through `oxbpf-live`, their events printed as bpftrace prints
//! them. BEGIN and END are raw tracepoint programs run once, in this
//! process, with `BPF_PROG_TEST_RUN` (nothing to attach or detach).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oxbpf_live::Session;
use oxbpf_live::symbols::Symbolizer;
use oxbpf_trace::codegen::{MapInfo, PrintKind, event};
use oxbpf_trace::format::{Arg, Piece};
use oxbpf_trace::output::{Datum, Symbols as _, json_datum, json_record, json_str, print_map_json};
use oxbpf_trace::probes::ProbeKind;

#[derive(clap::Args, Default)]
pub struct TraceArgs {
    /// The script file ("-" for stdin), then its positional parameters.
    #[arg(value_name = "FILE|ARGS")]
    pub args: Vec<String>,
    /// The program text (then every positional argument is a parameter).
    #[arg(short = 'e', value_name = "PROGRAM")]
    pub program: Option<String>,
    /// Print the syntax tree (`ast`) or the generated eBPF with the script
    /// line above each stretch of instructions (`bytecode`), and exit.
    #[arg(short = 'd', value_name = "ast|bytecode")]
    pub debug: Option<String>,
    /// Do not print "Attaching N probes...".
    #[arg(short = 'q')]
    pub quiet: bool,
    /// Run this command, trace while it runs, exit when it exits.
    #[arg(short = 'c', value_name = "CMD")]
    pub command: Option<String>,
    /// Write the output here instead of stdout.
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Stop after this many seconds (as if exit() ran).
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Uprobes, uretprobes and profile probes fire for this process only.
    #[arg(short = 'p', value_name = "PID")]
    pub pid: Option<i32>,
    /// List the probes matching the pattern given as the argument
    /// (`tracepoint:syscalls:*`, `uprobe:/bin/bash:read*`, `software:*`).
    #[arg(short = 'l')]
    pub list: bool,
    /// With -l: the arguments of each tracepoint.
    #[arg(short = 'v')]
    pub verbose: bool,
    /// Allow functions that act on the system: system(), signal().
    #[arg(long = "unsafe")]
    pub unsafe_ok: bool,
    /// Output format: `text` (bpftrace's) or `json` (bpftrace's NDJSON
    /// records).
    #[arg(short = 'f', value_name = "text|json", default_value = "text")]
    pub format: String,
    /// Compile the script ahead of time into this BPF object (programs,
    /// maps with BTF, the script's line records, and what the tracer needs
    /// to attach and print), then exit; `--run` runs it.
    #[arg(long = "emit-elf", value_name = "OUT.o", conflicts_with = "run")]
    pub emit_elf: Option<PathBuf>,
    /// Run a script compiled with `--emit-elf`: nothing is compiled (its
    /// positional parameters were fixed when it was compiled).
    #[arg(long = "run", value_name = "FILE.o", conflicts_with = "program")]
    pub run: Option<PathBuf>,
    /// At the end, write the maps that count by stack (`@[kstack] =
    /// count()`, `@[comm, ustack] = sum(…)`) to this file as folded
    /// stacks (`comm;outer;…;inner COUNT`, for flame graph tools) instead
    /// of printing them.
    #[arg(long = "folded", value_name = "FILE")]
    pub folded: Option<PathBuf>,
    /// At the end, draw the maps that count by stack as an interactive
    /// SVG flame graph in this file instead of printing them.
    #[arg(long = "flamegraph", value_name = "FILE.svg")]
    pub flamegraph: Option<PathBuf>,
    /// At the end, draw the histograms (`hist()`, `lhist()`) as bar
    /// charts in this SVG file (they are printed as well).
    #[arg(long = "plot", value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The script's name in messages, for a program given as text
    /// (`oxbpf tool`'s scripts); `-e` otherwise.
    #[arg(skip)]
    pub name: Option<String>,
    /// Macros defined before the script's first line (a tool's options).
    #[arg(skip)]
    pub defines: Vec<(String, String)>,
    /// A tool's run (`oxbpf tool`): only what the script prints — no
    /// blank lines before the maps, no emptied maps.
    #[arg(skip)]
    pub tool: bool,
}

/// `-l [PATTERN]`: probes as bpftrace lists them.
fn list(pattern: Option<&str>, verbose: bool, out: &mut dyn Write) -> Result<()> {
    let pattern = pattern.unwrap_or("*");
    let (provider, rest) = pattern.split_once(':').unwrap_or(("*", pattern));
    let provider = match provider {
        "t" => "tracepoint",
        "u" => "uprobe",
        "s" => "software",
        p => p,
    };
    let glob = oxbpf_sys::perf::glob_match;
    if provider == "uprobe" {
        let (path, func) = rest.rsplit_once(':').unwrap_or((rest, "*"));
        let file = oxbpf_live::uprobe::resolve_path(path)?;
        for (f, _) in oxbpf_live::uprobe::matching_functions(&file, func)? {
            writeln!(out, "uprobe:{}:{f}", file.display())?;
        }
        return Ok(());
    }
    if glob(provider, "tracepoint") {
        let (cat, name) = rest.split_once(':').unwrap_or((rest, "*"));
        let env = Tracefs;
        let found = oxbpf_trace::Env::tracepoints(&env, cat, name).map_err(anyhow::Error::msg)?;
        for (c, n) in found {
            writeln!(out, "tracepoint:{c}:{n}")?;
            if verbose {
                let text = oxbpf_trace::Env::tracepoint_format(&env, &c, &n).unwrap_or_default();
                for line in text.lines() {
                    let Some(decl) = line.trim().strip_prefix("field:") else {
                        continue;
                    };
                    let decl = decl.split(';').next().unwrap_or("").trim();
                    if !decl.contains("common_") {
                        writeln!(out, "    {decl}")?;
                    }
                }
            }
        }
    }
    if glob(provider, "software") {
        let (name, _) = rest.split_once(':').unwrap_or((rest, ""));
        for (e, _) in oxbpf_sys::perf::SOFTWARE_EVENTS {
            if glob(name, e) {
                writeln!(out, "software:{e}:")?;
            }
        }
    }
    Ok(())
}

/// An error in (or about) the script, rendered at its place.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScriptError(pub String);

/// The system the compiler asks about: tracefs.
struct Tracefs;

impl oxbpf_trace::Env for Tracefs {
    fn kernel_btf(&self) -> Result<&oxbpf_obj::btfindex::BtfIndex, String> {
        oxbpf_sys::vmlinux::index()
    }

    fn kernel_symbol(&self, name: &str) -> Result<u64, String> {
        oxbpf_sys::vmlinux::kallsyms_addr(name)?.ok_or_else(|| {
            format!("`{name}` is not in /proc/kallsyms (data symbols are listed there only with CONFIG_KALLSYMS_ALL)")
        })
    }

    fn user_symbol(&self, path: &str, name: &str) -> Result<u64, String> {
        let p = oxbpf_live::uprobe::resolve_path(path).map_err(|e| e.to_string())?;
        oxbpf_live::uprobe::symbol_address(&p, name).map_err(|e| e.to_string())
    }

    fn ncpus(&self) -> u32 {
        oxbpf_sys::online_cpus().len() as u32
    }

    fn resolve_binary(&self, path: &str) -> Result<String, String> {
        oxbpf_live::uprobe::resolve_path(path)
            .map(|p| p.display().to_string())
            .map_err(|e| e.to_string())
    }

    fn uprobe_functions(&self, path: &str, pattern: &str) -> Result<Vec<String>, String> {
        let p = oxbpf_live::uprobe::resolve_path(path).map_err(|e| e.to_string())?;
        let mut names: Vec<String> = oxbpf_live::uprobe::matching_functions(&p, pattern)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.dedup();
        Ok(names)
    }

    fn usdt_probes(
        &self,
        path: &str,
        provider: Option<&str>,
        name: &str,
    ) -> Result<Vec<(String, String)>, String> {
        use oxbpf_sys::perf::glob_match;
        let p = oxbpf_live::uprobe::resolve_path(path).map_err(|e| e.to_string())?;
        let mut all: Vec<(String, String)> = oxbpf_live::usdt::probes(&p)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|pr| {
                provider.is_none_or(|want| glob_match(want, &pr.provider))
                    && glob_match(name, &pr.name)
            })
            .map(|pr| (pr.provider, pr.name))
            .collect();
        all.sort();
        all.dedup();
        Ok(all)
    }

    fn cgroup_id(&self, path: &str) -> Result<u64, String> {
        use std::os::unix::fs::MetadataExt;
        let root = oxbpf_sys::net::cgroup2_mount().ok_or("no cgroup v2 file system is mounted")?;
        let p = std::path::Path::new(path);
        // An absolute path in the cgroup tree, or one below its mount.
        let full = if p.starts_with(&root) {
            p.to_path_buf()
        } else {
            root.join(path.trim_start_matches('/'))
        };
        std::fs::metadata(&full)
            .map(|m| m.ino())
            .map_err(|e| format!("{}: {e}", full.display()))
    }

    fn tracepoint_format(&self, category: &str, name: &str) -> Result<String, String> {
        let root = oxbpf_sys::perf::tracefs_root().ok_or("tracefs is not mounted")?;
        let plain = |s: &str| !s.is_empty() && !s.contains('/') && s != "..";
        if !plain(category) || !plain(name) {
            return Err(format!("`{category}:{name}` is not a tracepoint name"));
        }
        let p = root.join("events").join(category).join(name).join("format");
        std::fs::read_to_string(&p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!(
                    "tracepoint {category}:{name} does not exist (no {})",
                    p.display()
                )
            }
            _ => format!("{}: {e}", p.display()),
        })
    }

    fn tracepoints(&self, category: &str, name: &str) -> Result<Vec<(String, String)>, String> {
        let root = oxbpf_sys::perf::tracefs_root().ok_or("tracefs is not mounted")?;
        let mut cats: Vec<String> = std::fs::read_dir(root.join("events"))
            .map_err(|e| e.to_string())?
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|c| oxbpf_sys::perf::glob_match(category, c))
            .collect();
        cats.sort();
        let mut out = Vec::new();
        for c in cats {
            for n in oxbpf_sys::perf::tracepoints_matching(&c, name).map_err(|e| e.to_string())? {
                out.push((c.clone(), n));
            }
        }
        Ok(out)
    }
}

pub fn trace(a: &TraceArgs) -> Result<ExitCode> {
    if a.format != "text" && a.format != "json" {
        bail!("-f {}: the output formats are text and json", a.format);
    }
    if a.list {
        let mut out = std::io::stdout().lock();
        match list(a.args.first().map(String::as_str), a.verbose, &mut out) {
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {}
            r => r?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(obj) = &a.run {
        return run_object(a, obj);
    }
    let (name, source, params) = match &a.program {
        Some(p) => (
            a.name.clone().unwrap_or_else(|| "-e".to_string()),
            p.clone(),
            a.args.clone(),
        ),
        None => {
            let Some(file) = a.args.first() else {
                bail!("give a script file or -e 'PROGRAM'");
            };
            let text = if file == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
                s
            } else {
                std::fs::read_to_string(file).with_context(|| file.clone())?
            };
            (
                if file == "-" {
                    "stdin".into()
                } else {
                    file.clone()
                },
                text,
                a.args[1..].to_vec(),
            )
        }
    };
    let diag =
        |d: oxbpf_trace::Diagnostic| anyhow::Error::new(ScriptError(d.render(&name, &source)));
    let ast = oxbpf_trace::parse_with(&source, &a.defines).map_err(diag)?;
    // Output to a closed pipe (`| head`) ends the listing quietly.
    let quiet_pipe = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    };
    if a.debug.as_deref() == Some("ast") {
        quiet_pipe(writeln!(std::io::stdout().lock(), "{ast:#?}"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let opts = oxbpf_trace::Options {
        params,
        unsafe_ok: a.unsafe_ok,
        child: a.command.is_some(),
        file: name.clone(),
        source: source.clone(),
        ..Default::default()
    };
    let compiled = oxbpf_trace::compile(&ast, &Tracefs, &opts).map_err(diag)?;
    if let Some(path) = &a.emit_elf {
        let origin = oxbpf_trace::aot::Origin {
            file: name.clone(),
            source: source.clone(),
            kernel: oxbpf_sys::kconfig::kernel_release().unwrap_or_default(),
            compiler: env!("CARGO_PKG_VERSION").to_string(),
            child: a.command.is_some(),
        };
        let bytes = oxbpf_trace::aot::emit(&compiled, &origin)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        std::fs::write(path, bytes).with_context(|| path.display().to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.debug.as_deref() == Some("bytecode") {
        quiet_pipe(
            std::io::stdout()
                .lock()
                .write_all(compiled.listing(&source).as_bytes()),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(d) = &a.debug {
        bail!("-d takes ast or bytecode, not `{d}`");
    }
    check_stack_maps(a, &compiled)?;
    let mut out = output(a)?;
    run(a, &compiled, &name, &source, &mut out)
}

/// Maps that `--folded` / `--flamegraph` can draw: counts or sums keyed
/// by a stack.
fn stack_maps(c: &oxbpf_trace::Compiled) -> Vec<&MapInfo> {
    c.maps
        .iter()
        .filter(|m| m.index != 0 && oxbpf_trace::output::is_stack_map(m))
        .collect()
}

/// `--folded` / `--flamegraph` need a map to draw: refused before
/// anything is attached when the script keeps none.
fn check_stack_maps(a: &TraceArgs, c: &oxbpf_trace::Compiled) -> Result<()> {
    if (a.folded.is_some() || a.flamegraph.is_some()) && stack_maps(c).is_empty() {
        bail!(
            "--folded and --flamegraph draw maps that count by stack (such as `@[kstack] = count()`), and this script keeps none"
        );
    }
    if a.plot.is_some() && !c.maps.iter().any(oxbpf_trace::output::is_histogram) {
        bail!("--plot draws histograms (hist(), lhist()), and this script makes none");
    }
    Ok(())
}

/// `--plot`: the histogram maps as they are when tracing stops, before
/// END runs (which may print and clear them, as the tools do).
fn histograms_at_stop<'c>(
    a: &TraceArgs,
    session: &Session,
    c: &'c oxbpf_trace::Compiled,
) -> Result<Vec<(&'c MapInfo, Vec<oxbpf_trace::output::RawEntry>)>> {
    let mut maps = Vec::new();
    if a.plot.is_some() {
        for m in c
            .maps
            .iter()
            .filter(|m| m.index != 0 && oxbpf_trace::output::is_histogram(m))
        {
            maps.push((m, read_map(session, m)?));
        }
    }
    Ok(maps)
}

/// `--plot`: the histograms drawn.
fn write_plot(
    a: &TraceArgs,
    session: &Session,
    syms: &Symbolizer,
    maps: &[(&MapInfo, Vec<oxbpf_trace::output::RawEntry>)],
    title: &str,
) -> Result<()> {
    let Some(p) = &a.plot else {
        return Ok(());
    };
    let s = SessionSymbols { session, syms };
    let svg = oxbpf_trace::output::hist_svg(title, maps, &s);
    std::fs::write(p, svg).with_context(|| p.display().to_string())
}

/// Writes the stack maps' folded stacks and flame graph; the maps
/// written are left out of the printed ones.
fn write_stacks(
    a: &TraceArgs,
    session: &Session,
    syms: &Symbolizer,
    c: &oxbpf_trace::Compiled,
    title: &str,
) -> Result<Vec<usize>> {
    if a.folded.is_none() && a.flamegraph.is_none() {
        return Ok(Vec::new());
    }
    let s = SessionSymbols { session, syms };
    let mut lines = Vec::new();
    let mut drawn = Vec::new();
    for m in stack_maps(c) {
        if let Some(l) = oxbpf_trace::output::folded_map(m, &read_map(session, m)?, &s) {
            lines.extend(l);
            drawn.push(m.index);
        }
    }
    if let Some(p) = &a.folded {
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        std::fs::write(p, text).with_context(|| p.display().to_string())?;
    }
    if let Some(p) = &a.flamegraph {
        let mut opts = inferno::flamegraph::Options::default();
        opts.title = title.to_string();
        opts.count_name = "samples".into();
        if lines.is_empty() {
            // inferno refuses an empty profile; the page says why it is
            // empty.
            let svg = format!(
                "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" width=\"1200\" height=\"60\" xmlns=\"http://www.w3.org/2000/svg\"><text x=\"600\" y=\"24\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{}</text><text x=\"600\" y=\"48\" text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"12\">no stacks were recorded</text></svg>\n",
                title.replace('&', "&amp;").replace('<', "&lt;")
            );
            std::fs::write(p, svg).with_context(|| p.display().to_string())?;
            return Ok(drawn);
        }
        let f = std::fs::File::create(p).with_context(|| p.display().to_string())?;
        inferno::flamegraph::from_lines(
            &mut opts,
            lines.iter().map(String::as_str),
            std::io::BufWriter::new(f),
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    Ok(drawn)
}

/// `--run FILE.o`: a script compiled ahead of time.
fn run_object(a: &TraceArgs, path: &std::path::Path) -> Result<ExitCode> {
    if !a.args.is_empty() {
        bail!(
            "--run takes no script or parameters ({}): the parameters were fixed when {} was compiled",
            a.args.join(" "),
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let loaded =
        oxbpf_trace::aot::load(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let o = &loaded.origin;
    if o.child && a.command.is_none() {
        bail!(
            "{} was compiled for a -c command (it uses cpid): run it with -c CMD",
            path.display()
        );
    }
    let here = oxbpf_sys::kconfig::kernel_release().unwrap_or_default();
    if !o.kernel.is_empty() && o.kernel != here {
        eprintln!(
            "WARNING: {} was compiled for Linux {} and this is {here}: tracepoint layouts and system call numbers may differ",
            path.display(),
            o.kernel
        );
    }
    if a.debug.as_deref() == Some("bytecode") {
        std::io::stdout()
            .lock()
            .write_all(loaded.compiled.listing(&o.source).as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(d) = &a.debug {
        bail!("-d with --run takes bytecode, not `{d}`");
    }
    check_stack_maps(a, &loaded.compiled)?;
    let mut out = output(a)?;
    run(a, &loaded.compiled, &o.file, &o.source, &mut out)
}

/// Where records go: `-o FILE` or stdout, block-buffered (flushed after
/// every batch of records): a line-buffered stdout makes one write(2) per
/// printf record, which a script tracing write(2) would trace again
/// without end.
fn output(a: &TraceArgs) -> Result<Box<dyn Write>> {
    Ok(match &a.output {
        Some(p) => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::fs::File::create(p).with_context(|| p.display().to_string())?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout().lock(),
        )),
    })
}

/// Where the printing of records stands.
struct Printer<'a> {
    compiled: &'a oxbpf_trace::Compiled,
    formats: Vec<Vec<Piece>>,
    exit: Option<i64>,
    syms: Symbolizer,
    /// The script's name and text (for errorf and warnf).
    script: (String, String),
    /// `-f json`.
    json: bool,
    /// Records lost so far (reported as the count grows).
    lost: u64,
}

impl Printer<'_> {
    /// Reports records lost to a full ring buffer since the last report,
    /// as bpftrace does ("Lost N events").
    fn report_lost(&mut self, session: &Session, out: &mut dyn Write) -> Result<()> {
        let name = &self.compiled.object.maps[self.compiled.lost].name;
        let Ok(map) = session.map(name) else {
            return Ok(());
        };
        let total = match map.lookup(&0u32.to_le_bytes())? {
            Some(v) => oxbpf_trace::lost_records(&v),
            None => 0,
        };
        if total > self.lost {
            let n = total - self.lost;
            self.lost = total;
            if self.json {
                let data = format!("{{\"events\": {n}}}");
                out.write_all(json_record("lost_events", &data).as_bytes())?;
            } else {
                writeln!(out, "Lost {n} events")?;
            }
        }
        Ok(())
    }

    fn record(&mut self, rec: &[u8], session: &Session, out: &mut dyn Write) -> Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        let word = |at: usize| -> u64 {
            rec.get(at..at + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .unwrap_or(0)
        };
        match word(0) {
            event::EXIT => self.exit = Some(word(8) as i64),
            event::PRINT | event::CLEAR | event::ZERO => {
                let index = word(8) as usize;
                let Some(m) = self.compiled.maps.iter().find(|m| m.index == index) else {
                    return Ok(());
                };
                match word(0) {
                    event::PRINT if self.json => {
                        let s = SessionSymbols {
                            session,
                            syms: &self.syms,
                        };
                        let text = print_map_json(m, &read_map(session, m)?, &s);
                        out.write_all(text.as_bytes())?
                    }
                    event::PRINT => {
                        let (top, div) = (word(16) as usize, word(24));
                        out.write_all(print_map_top(session, &self.syms, m, top, div)?.as_bytes())?
                    }
                    event::CLEAR => clear_map(session, m, false)?,
                    _ => clear_map(session, m, true)?,
                }
            }
            event::LAYOUT => {
                let Some(layout) = self.compiled.layouts.get(word(8) as usize) else {
                    return Ok(());
                };
                let s = SessionSymbols {
                    session,
                    syms: &self.syms,
                };
                let mut maps = Vec::new();
                for name in layout.maps() {
                    if let Some(m) = self.compiled.maps.iter().find(|m| m.name == name) {
                        maps.push((m, read_map(session, m)?));
                    }
                }
                if self.json {
                    // The maps themselves, as print() sends them.
                    for (m, entries) in &maps {
                        out.write_all(print_map_json(m, entries, &s).as_bytes())?;
                    }
                } else {
                    let text = oxbpf_trace::layout::print_layout(layout, &maps, &s);
                    out.write_all(text.as_bytes())?;
                }
            }
            id if id >= event::PRINTF_BASE => {
                let i = (id - event::PRINTF_BASE) as usize;
                let Some(info) = self.compiled.printfs.get(i) else {
                    return Ok(());
                };
                let mut at = 8;
                let mut data = Vec::new();
                let syms = SessionSymbols {
                    session,
                    syms: &self.syms,
                };
                for t in &info.args {
                    let b = rec.get(at..).unwrap_or(&[]);
                    data.push(oxbpf_trace::output::decode_with(t, b, &syms));
                    at += t.stored_size();
                }
                let args: Vec<Arg> = data.iter().map(oxbpf_trace::layout::format_arg).collect();
                let text = || oxbpf_trace::format::render(&self.formats[i], &args);
                let json = |kind: &str, data: String| json_record(kind, &data);
                match info.kind {
                    PrintKind::Printf if self.json => {
                        out.write_all(json("printf", json_str(&text())).as_bytes())?
                    }
                    PrintKind::Print if self.json => {
                        let v = data.first().map(json_datum).unwrap_or_default();
                        out.write_all(json("value", v).as_bytes())?
                    }
                    PrintKind::Time if self.json => {
                        let now = oxbpf_sys::monotonic_ns();
                        let t = syms.strftime(&info.format, now);
                        out.write_all(json("time", json_str(&t)).as_bytes())?
                    }
                    PrintKind::Printf => out.write_all(text().as_bytes())?,
                    PrintKind::Errorf | PrintKind::Warnf => {
                        out.flush()?;
                        let (word, level) = if info.kind == PrintKind::Errorf {
                            ("error", "ERROR")
                        } else {
                            ("warning", "WARNING")
                        };
                        let place = oxbpf_trace::Diagnostic::new(info.span, String::new())
                            .render(&self.script.0, &self.script.1);
                        let place = place.lines().next().unwrap_or("");
                        let place = place
                            .split_once(&format!(" {word}:"))
                            .or_else(|| place.split_once(" error:"))
                            .map_or(place, |(p, _)| p);
                        out.flush()?;
                        eprintln!("{place} {level}: {}", text().trim_end_matches('\n'));
                    }
                    PrintKind::Print => {
                        let v = data.first().map(Datum::to_string).unwrap_or_default();
                        writeln!(out, "{v}")?;
                    }
                    PrintKind::Time => {
                        let now = oxbpf_sys::monotonic_ns();
                        out.write_all(syms.strftime(&info.format, now).as_bytes())?;
                    }
                    PrintKind::System => {
                        out.flush()?;
                        let cmd = text();
                        let o = std::process::Command::new("/bin/sh")
                            .args(["-c", &cmd])
                            .stderr(std::process::Stdio::inherit())
                            .output()
                            .with_context(|| format!("system(\"{cmd}\")"))?;
                        out.write_all(&o.stdout)?;
                    }
                    PrintKind::Cat => {
                        let path = text();
                        match std::fs::read(&path) {
                            Ok(b) => out.write_all(&b)?,
                            Err(e) => {
                                out.flush()?;
                                eprintln!("cat(\"{path}\"): {e}")
                            }
                        }
                    }
                    PrintKind::Join => {
                        let n = match data.first() {
                            Some(Datum::Int(n)) => (*n).clamp(0, 16) as usize,
                            _ => 0,
                        };
                        let parts: Vec<String> =
                            data.iter().skip(1).take(n).map(Datum::to_string).collect();
                        let joined = parts.join(&info.format);
                        if self.json {
                            out.write_all(json("join", json_str(&joined)).as_bytes())?;
                        } else {
                            writeln!(out, "{joined}")?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn map_name(m: &MapInfo) -> String {
    format!("AT_{}", if m.name.is_empty() { "_" } else { &m.name })
}

/// A map's entries with each CPU's value apart.
fn read_map(session: &Session, m: &MapInfo) -> Result<Vec<oxbpf_trace::output::RawEntry>> {
    let map = session.map(&map_name(m))?;
    let size = m.kind.value_size();
    let stride = size.div_ceil(8) * 8;
    let entries = map
        .entries()?
        .into_iter()
        .map(|(k, v)| {
            let cpus = if m.kind.per_cpu() {
                v.chunks(stride)
                    .map(|c| c[..size.min(c.len())].to_vec())
                    .collect()
            } else {
                vec![v]
            };
            (k, cpus)
        })
        .collect();
    Ok(if m.array.is_some() {
        oxbpf_trace::output::array_entries(m, entries)
    } else {
        entries
    })
}

/// `print(@m, top, div)`: the `top` largest entries (0: all), values
/// divided by `div` (0: as they are).
fn print_map_top(
    session: &Session,
    syms: &Symbolizer,
    m: &MapInfo,
    top: usize,
    div: u64,
) -> Result<String> {
    let s = SessionSymbols { session, syms };
    Ok(oxbpf_trace::output::print_map_with(
        m,
        &read_map(session, m)?,
        &s,
        top,
        div,
    ))
}

/// Stacks from the script's stack map, names from blazesym.
struct SessionSymbols<'a> {
    session: &'a Session,
    syms: &'a Symbolizer,
}

impl oxbpf_trace::output::Symbols for SessionSymbols<'_> {
    fn stack(&self, id: u32) -> Vec<u64> {
        let Ok(map) = self.session.map("stacks") else {
            return Vec::new();
        };
        match map.lookup(&id.to_le_bytes()) {
            Ok(Some(v)) => oxbpf_live::symbols::stack_addresses(&v),
            _ => Vec::new(),
        }
    }

    fn resolve(&self, pid: Option<u32>, addrs: &[u64]) -> Vec<Option<(String, u64, String)>> {
        let frames = match pid {
            Some(p) => self.syms.user(p, addrs),
            None => self.syms.kernel(addrs),
        };
        frames
            .into_iter()
            .map(|f| {
                let module = f.module.unwrap_or_else(|| "[unknown]".into());
                f.name.map(|n| (n, f.offset, module))
            })
            .collect()
    }

    fn user_name(&self, uid: u32) -> Option<String> {
        // /etc/passwd read once per run, not once per record.
        static USERS: std::sync::OnceLock<std::collections::HashMap<u32, String>> =
            std::sync::OnceLock::new();
        USERS
            .get_or_init(|| {
                let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
                let mut users = std::collections::HashMap::new();
                for l in passwd.lines() {
                    let mut f = l.split(':');
                    if let (Some(name), Some(uid)) = (f.next(), f.nth(1))
                        && let Ok(uid) = uid.parse::<u32>()
                    {
                        users.entry(uid).or_insert_with(|| name.to_string());
                    }
                }
                users
            })
            .get(&uid)
            .cloned()
    }

    fn disk_name(&self, major: u32, minor: u32) -> Option<String> {
        // /sys/dev/block/MAJ:MIN/uevent has the device's DEVNAME.
        let uevent =
            std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent")).ok()?;
        uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(String::from)
    }

    fn cgroup_path(&self, id: u64, pattern: &str) -> String {
        // Found paths are kept, and checked again before they are reused
        // (an id can be reassigned), as bpftrace does.
        use std::os::unix::fs::MetadataExt;
        type Cache = std::collections::HashMap<(u64, std::path::PathBuf), String>;
        static FOUND: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);
        let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
        let found = found.get_or_insert_with(Cache::new);
        let mut parts = Vec::new();
        for (name, root) in oxbpf_sys::net::cgroup_hierarchies() {
            if !oxbpf_sys::perf::glob_match(pattern, &name) {
                continue;
            }
            let key = (id, root.clone());
            let cached = found.get(&key).filter(|p| {
                std::fs::metadata(root.join(p.trim_start_matches('/'))).is_ok_and(|m| m.ino() == id)
            });
            let path = match cached {
                Some(p) => Some(p.clone()),
                None => oxbpf_sys::net::cgroup_path_in(&root, id),
            };
            if let Some(p) = path {
                found.insert(key, p.clone());
                parts.push(format!("{name}:{p}"));
            }
        }
        parts.join(",")
    }

    fn strftime(&self, fmt: &str, ns: u64) -> String {
        // Nanoseconds since boot (CLOCK_MONOTONIC) to the wall clock.
        let now_mono = oxbpf_sys::monotonic_ns() as i128;
        let now_wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let wall = now_wall - now_mono + ns as i128;
        let secs = wall.div_euclid(1_000_000_000) as i64;
        let nanos = wall.rem_euclid(1_000_000_000) as u32;
        let Some(t) = chrono::DateTime::from_timestamp(secs, nanos) else {
            return ns.to_string();
        };
        let local = t.with_timezone(&chrono::Local);
        // bpftrace's %f is microseconds, with six digits.
        let fmt = fmt.replace("%f", &format!("{:06}", nanos / 1000));
        let mut s = String::new();
        use std::fmt::Write as _;
        if write!(s, "{}", local.format(&fmt)).is_err() {
            return format!("[bad strftime format: {fmt}]");
        }
        s
    }
}

fn clear_map(session: &Session, m: &MapInfo, zero: bool) -> Result<()> {
    let map = session.map(&map_name(m))?;
    for (k, v) in map.entries()? {
        // An array's entries cannot be deleted: cleared, they are zero.
        if zero || m.array.is_some() {
            map.update(&k, &vec![0u8; v.len()], 0)?;
        } else {
            let _ = map.delete(&k);
        }
    }
    Ok(())
}

fn run(
    a: &TraceArgs,
    c: &oxbpf_trace::Compiled,
    name: &str,
    source: &str,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let where_ = |span: oxbpf_trace::Span, msg: String| {
        anyhow::Error::new(ScriptError(
            oxbpf_trace::Diagnostic::new(span, msg).render(name, source),
        ))
    };
    let opts = oxbpf_live::Options {
        pid: a.pid,
        ..Default::default()
    };
    // oxbpf's verifier first: its reasons point at the script.
    let ours: Vec<Option<(oxbpf_trace::Span, String)>> = (0..c.object.programs.len())
        .map(|i| {
            oxbpf_verifier::verify_object_program(&c.object, i, &Default::default())
                .err()
                .map(|r| {
                    let p = &c.programs[i];
                    let span = c
                        .lines
                        .get(&p.program)
                        .and_then(|l| l.get(r.pc).or(l.last()))
                        .copied()
                        .unwrap_or(p.span);
                    (span, r.message.clone())
                })
        })
        .collect();
    if std::env::var_os("OXBPF_TRACE_VERIFIER").is_some() {
        for (p, o) in c.programs.iter().zip(&ours) {
            eprintln!(
                "{}: {}",
                p.kind.full_name(),
                o.as_ref()
                    .map_or("accepted".to_string(), |(_, m)| m.clone())
            );
        }
    }
    let mut session = Session::load(c.object.clone(), &opts).map_err(|e| {
        // Which probe: the program the error names.
        let msg = e.to_string();
        let i = c
            .programs
            .iter()
            .position(|p| msg.contains(&format!("`{}`", p.program)));
        match i.and_then(|i| ours[i].clone()) {
            // Both verifiers refuse it: oxbpf's reason, at the script.
            Some((span, why)) => where_(span, format!("the verifier rejects this: {why}")),
            None => where_(
                i.map(|i| c.programs[i].span).unwrap_or_default(),
                format!("the kernel refused the program: {msg}"),
            ),
        }
    })?;
    // Tables the programs read (system call numbers and names).
    for (index, key, value) in &c.init {
        let name = &c.object.maps[*index].name;
        session.map(name)?.update(key, value, 0)?;
    }
    // The -c command starts stopped (before its exec), so that `cpid` is
    // known and every probe is attached before it runs; it goes on after
    // BEGIN. Its words are its argv, as bpftrace splits them.
    let mut child = match &a.command {
        Some(cmd) => {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            if words.is_empty() {
                bail!("-c needs a command");
            }
            let ch = CommandGuard(
                std::process::Command::new("/bin/sh")
                    .args(["-c", "kill -STOP $$; exec \"$@\"", "sh"])
                    .args(&words)
                    .spawn()
                    .with_context(|| format!("running {cmd}"))?,
            );
            wait_stopped(ch.id())?;
            session.map("start_time")?.update(
                &1u32.to_le_bytes(),
                &u64::from(ch.id()).to_le_bytes(),
                0,
            )?;
            Some(ch)
        }
        None => None,
    };
    // `elapsed` counts from here.
    let now = oxbpf_sys::monotonic_ns();
    session
        .map("start_time")?
        .update(&0u32.to_le_bytes(), &now.to_le_bytes(), 0)?;
    // BEGIN runs before the other probes are attached, as in bpftrace:
    // what it prints (a tool's header) comes before any event's output.
    for p in &c.programs {
        if matches!(p.kind, ProbeKind::Begin) {
            session.run_raw_tp(&p.program, &[0])?;
        }
    }
    let mut ends = Vec::new();
    let mut skipped = 0usize;
    for p in &c.programs {
        let r = match &p.kind {
            ProbeKind::Begin => Ok(()),
            ProbeKind::End => {
                ends.push(p.program.clone());
                Ok(())
            }
            ProbeKind::Interval { period_ns, .. } => session
                .attach_interval(&p.program, Duration::from_nanos(*period_ns))
                .map(drop),
            ProbeKind::Profile { hz, period_ns, .. } => {
                let rate = match hz {
                    Some(h) => oxbpf_sys::perf::Sampling::Frequency(*h),
                    None => oxbpf_sys::perf::Sampling::Period(*period_ns),
                };
                session.attach_sampled(&p.program, oxbpf_live::Sampling { event: 0, rate })
            }
            ProbeKind::Software { event, count } => {
                // bpftrace's short names, and its default periods.
                let event = match event.as_str() {
                    "cpu" => "cpu-clock",
                    "faults" => "page-faults",
                    "cs" => "context-switches",
                    "migrations" => "cpu-migrations",
                    "minflt" => "minor-faults",
                    "majflt" => "major-faults",
                    e => e,
                };
                let count = match (*count, event) {
                    (0, "cpu-clock" | "task-clock") => 1_000_000,
                    (0, "page-faults" | "minor-faults") => 100,
                    (0, "context-switches") => 1000,
                    (0, _) => 1,
                    (n, _) => n,
                };
                let count = &count;
                let Some(&(_, config)) = oxbpf_sys::perf::SOFTWARE_EVENTS
                    .iter()
                    .find(|(n, _)| *n == event)
                else {
                    let names: Vec<&str> = oxbpf_sys::perf::SOFTWARE_EVENTS
                        .iter()
                        .map(|e| e.0)
                        .collect();
                    return Err(where_(
                        p.span,
                        format!("`{event}` is not a software event ({})", names.join(", ")),
                    ));
                };
                let rate = oxbpf_sys::perf::Sampling::Period((*count).max(1));
                session.attach_sampled(
                    &p.program,
                    oxbpf_live::Sampling {
                        event: config,
                        rate,
                    },
                )
            }
            ProbeKind::Unavailable { kind, .. } if kind == "hardware" => {
                return Err(where_(
                    p.span,
                    format!(
                        "{}: this machine has no hardware performance counters (no `cpu` PMU in /sys/bus/event_source/devices)",
                        p.kind.full_name()
                    ),
                ));
            }
            ProbeKind::Watchpoint { addr, len, mode } => {
                use oxbpf_sys::perf::breakpoint as bp;
                let bp_type = mode.chars().fold(0, |t, c| {
                    t | match c {
                        'r' => bp::READ,
                        'w' => bp::WRITE,
                        _ => bp::EXECUTE,
                    }
                });
                // In the traced process (-p, -c); with none, kernel memory.
                let pid = a.pid.or(child.as_ref().map(|c| c.id() as i32));
                if pid.is_none() && *addr < 0x8000_0000_0000_0000 {
                    return Err(where_(
                        p.span,
                        format!(
                            "{}: a watchpoint on a user address needs the process: -p PID or -c CMD",
                            p.kind.full_name()
                        ),
                    ));
                }
                // An execution breakpoint covers one instruction: x86
                // takes the length of a long for it, whatever was written.
                let len = if bp_type == bp::EXECUTE { 8 } else { *len };
                let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
                if pid.is_none() && bp_type == bp::EXECUTE && !kprobes {
                    return Err(where_(
                        p.span,
                        format!(
                            "{}: the kernel takes no execution breakpoints in its own code on a kernel without kprobes (this one has none: no kprobe PMU); watch data (w, rw) or a process's code (-p, -c)",
                            p.kind.full_name()
                        ),
                    ));
                }
                session
                    .attach_breakpoint(&p.program, *addr, len, bp_type, pid)
                    .map(drop)
            }
            _ => session.attach(&p.program).map(drop),
        };
        if let Err(e) = r {
            let msg = e.to_string();
            let msg = msg
                .split_once("): ")
                .map_or(msg.as_str(), |(_, rest)| rest)
                .to_string();
            // A function that is not in the binary: the probe does not
            // exist here, which `missing_probes` decides about.
            let missing = matches!(
                e,
                oxbpf_live::LiveError::Uprobe {
                    error: oxbpf_live::uprobe::UprobeError::NoSymbol { .. },
                    ..
                }
            );
            match c.missing_probes {
                oxbpf_trace::codegen::MissingProbes::Warn if missing => {
                    eprintln!("WARNING: {}: {msg}, skipping probe", p.kind.full_name());
                    skipped += 1;
                }
                oxbpf_trace::codegen::MissingProbes::Ignore if missing => skipped += 1,
                _ => return Err(where_(p.span, format!("{}: {msg}", p.kind.full_name()))),
            }
        }
    }
    let probes = c
        .programs
        .iter()
        .filter(|p| !matches!(p.kind, ProbeKind::Begin | ProbeKind::End))
        .count();
    if skipped > 0 && skipped == probes {
        bail!("none of the script's probes exist here (every one was skipped)");
    }
    let json = a.format == "json";
    if !a.quiet {
        let n: usize = c.programs.iter().map(|p| p.count).sum();
        if json {
            let data = format!("{{\"probes\": {n}}}");
            out.write_all(json_record("attached_probes", &data).as_bytes())?;
        } else {
            writeln!(
                out,
                "Attaching {n} probe{}...",
                if n == 1 { "" } else { "s" }
            )?;
        }
        out.flush()?;
    }
    // bpftrace's test harness waits for this line (the variable is set
    // only there).
    if std::env::var_os("__BPFTRACE_NOTIFY_PROBES_ATTACHED").is_some() {
        writeln!(out, "__BPFTRACE_NOTIFY_PROBES_ATTACHED")?;
        out.flush()?;
    }
    let mut rb = session.ring_buffer("events")?;
    let ring_bytes = c.object.maps[c.events].max_entries as usize;
    let mut printer = Printer {
        compiled: c,
        formats: c
            .printfs
            .iter()
            .map(|p| oxbpf_trace::format::parse(&p.format).unwrap_or_default())
            .collect(),
        exit: None,
        syms: Symbolizer::new(),
        script: (name.to_string(), source.to_string()),
        json,
        lost: 0,
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    if let Some(ch) = &child {
        resume(ch.id())?;
    }
    let deadline = a
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut fail = None;
    loop {
        rb.wait(Duration::from_millis(100));
        let mut bytes = 0usize;
        rb.consume(|rec| {
            // Each record has an 8-byte header in the ring.
            bytes += rec.len().next_multiple_of(8) + 8;
            if let Err(e) = printer.record(rec, &session, out)
                && fail.is_none()
            {
                fail = Some(e);
            }
        });
        printer.report_lost(&session, out)?;
        out.flush()?;
        if let Some(e) = fail.take() {
            return Err(e);
        }
        if printer.exit.is_some()
            || stop.load(Ordering::SeqCst)
            || deadline.is_some_and(|d| Instant::now() >= d)
        {
            break;
        }
        if let Some(ch) = &mut child
            && ch.try_wait()?.is_some()
        {
            break;
        }
        // Records came: let the next ones gather for a moment. A reader
        // that is always caught up makes the kernel wake it for every
        // record (an irq_work in the traced event, the program's cost),
        // and writes its output a record at a time (events of their own
        // for a script tracing write(2)). 5 ms is far below what a person
        // watching the output notices. A batch that filled half the ring
        // means the events come faster than a pause allows: none then, so
        // that the ring does not overflow.
        if bytes > 0 && bytes < ring_bytes / 2 {
            oxbpf_sys::pause(Duration::from_millis(5));
        }
    }
    // Everything stops; END runs; the rest of the events; the maps.
    session.detach_all();
    rb.consume(|rec| {
        let _ = printer.record(rec, &session, out);
    });
    let exit_code = printer.exit.unwrap_or(0);
    printer.exit = None;
    let plotted = histograms_at_stop(a, &session, c)?;
    for e in &ends {
        session.run_raw_tp(e, &[0])?;
    }
    rb.consume(|rec| {
        let _ = printer.record(rec, &session, out);
    });
    printer.report_lost(&session, out)?;
    // bpftrace's two blank lines before the maps (a tool prints its own
    // lines only).
    if !a.tool {
        writeln!(out, "\n")?;
    }
    let title = a.name.as_deref().unwrap_or(name);
    let drawn = write_stacks(a, &session, &printer.syms, c, title)?;
    write_plot(a, &session, &printer.syms, &plotted, title)?;
    let mut maps: Vec<&MapInfo> = c
        .maps
        .iter()
        .filter(|m| m.index != 0 && !drawn.contains(&m.index))
        .collect();
    maps.sort_by(|a, b| a.name.cmp(&b.name));
    for m in maps {
        if json {
            let s = SessionSymbols {
                session: &session,
                syms: &printer.syms,
            };
            out.write_all(print_map_json(m, &read_map(&session, m)?, &s).as_bytes())?;
        } else {
            let entries = read_map(&session, m)?;
            // A tool's emptied maps print nothing (not even a blank line);
            // a cleared per-CPU array holds zeros.
            let zeros = entries
                .iter()
                .all(|(_, cpus)| cpus.iter().flatten().all(|b| *b == 0));
            if a.tool && zeros {
                continue;
            }
            let s = SessionSymbols {
                session: &session,
                syms: &printer.syms,
            };
            let text = oxbpf_trace::output::print_map(m, &entries, &s);
            if !a.tool || !text.trim().is_empty() {
                out.write_all(text.as_bytes())?;
            }
        }
    }
    out.flush()?;
    drop(child);
    // Everything is printed: the kernel's waits for the last closes of
    // perf events (two RCU grace periods per tracepoint) need not hold up
    // the exit.
    session.end_in_background();
    Ok(ExitCode::from(exit_code.clamp(0, 255) as u8))
}

/// The -c command: killed and reaped when the trace ends, however it ends
/// (an error before it ran would otherwise leave it stopped, holding the
/// output open).
struct CommandGuard(std::process::Child);

impl CommandGuard {
    fn id(&self) -> u32 {
        self.0.id()
    }

    fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }
}

impl Drop for CommandGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// bpftrace's command line, for `oxbpf` invoked as `bpftrace`.
#[derive(clap::Parser)]
#[command(
    name = "bpftrace",
    about = "bpftrace's command line, run by oxbpf's compiler",
    disable_version_flag = true
)]
struct BpftraceCli {
    /// Program file, then its positional parameters.
    args: Vec<String>,
    #[arg(short = 'e')]
    program: Option<String>,
    #[arg(short = 'q')]
    quiet: bool,
    #[arg(short = 'c')]
    command: Option<String>,
    #[arg(short = 'p', long = "pid")]
    pid: Option<i32>,
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Accepted for compatibility: there is no LLVM IR to verify (oxbpf's
    /// verifier checks every program before load).
    #[arg(long = "verify-llvm-ir")]
    verify_llvm_ir: bool,
    /// Accepted for compatibility.
    #[arg(long = "no-warnings")]
    no_warnings: bool,
    #[arg(short = 'd')]
    debug: Option<String>,
    /// Output format: text or json.
    #[arg(short = 'f', default_value = "text")]
    format: String,
    /// Accepted for compatibility (oxbpf's output is always flushed per
    /// batch of events).
    #[arg(short = 'B')]
    buffering: Option<String>,
    /// With -l: tracepoint arguments.
    #[arg(short = 'v')]
    verbose: bool,
    /// List probes.
    #[arg(short = 'l', long = "list")]
    list: bool,
    #[arg(short = 'k', action = clap::ArgAction::Count)]
    warnings: u8,
    #[arg(long = "unsafe")]
    unsafe_: bool,
    /// Include directories (types come from BTF: accepted and unused).
    #[arg(short = 'I')]
    include: Vec<String>,
    #[arg(long = "include")]
    include_file: Vec<String>,
    #[arg(short = 'V', long = "version")]
    version: bool,
    /// Write the compiled programs as a BPF object and exit (as bpftrace's
    /// --emit-elf; `oxbpf trace --run FILE` runs it).
    #[arg(long = "emit-elf")]
    emit_elf: Option<PathBuf>,
}

pub fn bpftrace_main() -> ExitCode {
    use clap::Parser;
    let cli = BpftraceCli::parse();
    if cli.version {
        println!("bpftrace v0.17.0 (oxbpf {})", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let run = || -> Result<ExitCode> {
        let _ = (
            &cli.buffering,
            cli.verify_llvm_ir,
            cli.no_warnings,
            cli.verbose,
            cli.warnings,
            &cli.include,
            &cli.include_file,
        );
        trace(&TraceArgs {
            args: cli.args.clone(),
            program: cli.program.clone(),
            debug: cli.debug.clone(),
            quiet: cli.quiet,
            command: cli.command.clone(),
            output: cli.output.clone(),
            duration: None,
            list: cli.list,
            verbose: cli.verbose,
            pid: cli.pid,
            unsafe_ok: cli.unsafe_,
            format: cli.format.clone(),
            emit_elf: cli.emit_elf.clone(),
            run: None,
            folded: None,
            flamegraph: None,
            plot: None,
            name: None,
            tool: false,
            // `--include errno.h`: the header's macros, as `#include`
            // in the script gives them.
            defines: cli
                .include_file
                .iter()
                .flat_map(|h| oxbpf_trace::headers::macros(h.trim_matches(['<', '>', '"'])))
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        })
    };
    match run() {
        Ok(code) => code,
        Err(e) if e.is::<ScriptError>() => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Waits until process `pid` has stopped itself (state `T` in
/// /proc/PID/stat).
fn wait_stopped(pid: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesized command name.
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        match state {
            Some('T' | 't') => return Ok(()),
            Some('Z') | None => bail!("the -c command exited before it could be traced"),
            _ if Instant::now() > deadline => bail!("the -c command did not start"),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Lets a stopped process go on (SIGCONT).
fn resume(pid: u32) -> Result<()> {
    let st = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .context("kill -CONT")?;
    if !st.success() {
        bail!("cannot resume the -c command (pid {pid})");
    }
    Ok(())
}
