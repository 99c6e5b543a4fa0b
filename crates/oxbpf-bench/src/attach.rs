//! `oxbpf bench attach`: how fast programs attach to and detach from live
//! kernel events, oxbpf beside bpftrace (the Debian package) in one run.
//!
//! oxbpf is timed in process: *attach* from `Session::load` to the last
//! link created, *detach* from `detach_all` to the session dropped.
//! bpftrace is timed from outside: *attach* from spawning it until its
//! `BEGIN` probe runs (bpftrace fires BEGIN once every probe is attached;
//! BEGIN prints `nsecs`, CLOCK_MONOTONIC, and exits), *detach* from then
//! until the process has exited. Both start from the same tracepoints or
//! functions.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oxbpf_live::{Hook, Session};

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write into.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct Timing {
    attach: Duration,
    detach: Duration,
}

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn object(name: &str) -> Result<oxbpf_obj::Object> {
    let p = root().join("examples/live").join(name);
    Ok(oxbpf_obj::load(
        &std::fs::read(&p).with_context(|| p.display().to_string())?,
    )?)
}

/// oxbpf: load `file`, attach `program` to every hook, detach.
fn oxbpf_run(file: &str, program: &str, hooks: &[Hook]) -> Result<Timing> {
    let t = Instant::now();
    let mut s = Session::load(object(file)?, &Default::default())?;
    for h in hooks {
        s.attach_to(program, h.clone())?;
    }
    let attach = t.elapsed();
    let t = Instant::now();
    s.detach_all();
    drop(s);
    Ok(Timing {
        attach,
        detach: t.elapsed(),
    })
}

/// bpftrace on `probes` (a comma-separated probe list).
fn bpftrace_run(probes: &str) -> Result<Timing> {
    let script = format!("{probes} {{ }} BEGIN {{ printf(\"%llu\\n\", nsecs); exit(); }}");
    let start = monotonic_ns();
    let out = Command::new("bpftrace")
        .args(["-e", &script])
        .output()
        .context("running bpftrace")?;
    let end = monotonic_ns();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let begin: u64 = stdout
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .with_context(|| {
            format!(
                "bpftrace printed no BEGIN time: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            )
        })?;
    Ok(Timing {
        attach: Duration::from_nanos(begin.saturating_sub(start)),
        detach: Duration::from_nanos(end.saturating_sub(begin)),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

/// Runs the table. `quick` runs the smallest case only (for tests).
pub fn run(quick: bool) -> Result<()> {
    oxbpf_sys::available().context("the attach benchmark needs bpf(2) (run as root)")?;
    let have_bpftrace = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let all = oxbpf_sys::perf::tracepoints_matching("syscalls", "sys_enter_*")?;
    if all.is_empty() {
        bail!("no syscalls:sys_enter_* tracepoints (is tracefs mounted?)");
    }
    let libc = oxbpf_live::uprobe::resolve_path("libc.so.6")?;
    let funcs: Vec<String> = oxbpf_live::uprobe::matching_functions(&libc, "*")?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !n.starts_with('_') && n.len() > 3)
        .take(100)
        .collect();
    let mut cases: Vec<(String, Vec<String>)> = vec![("1 tracepoint".into(), all[..1].to_vec())];
    if !quick {
        cases.push(("16 tracepoints".into(), all[..16.min(all.len())].to_vec()));
        cases.push((
            format!("{} tracepoints (all sys_enter_*)", all.len()),
            all.clone(),
        ));
    }
    println!(
        "{:<36} {:>12} {:>12} {:>14} {:>14} {:>9}",
        "attach + detach", "oxbpf att", "oxbpf det", "bpftrace att", "bpftrace det", "vs bpftr"
    );
    println!(
        "{:<36} {:>12} {:>12} {:>14} {:>14} {:>9}",
        "", "(ms)", "(ms)", "(ms)", "(ms)", "faster"
    );
    let row = |what: &str, o: &Timing, b: Option<&Timing>| {
        let (ba, bd, ratio) = match b {
            Some(b) => (
                ms(b.attach),
                ms(b.detach),
                format!(
                    "{:.1}x",
                    (b.attach + b.detach).as_secs_f64() / (o.attach + o.detach).as_secs_f64()
                ),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{what:<36} {:>12} {:>12} {ba:>14} {bd:>14} {ratio:>9}",
            ms(o.attach),
            ms(o.detach)
        );
    };
    for (what, tps) in &cases {
        let hooks: Vec<Hook> = tps
            .iter()
            .map(|n| Hook::Tracepoint {
                category: "syscalls".into(),
                name: n.clone(),
            })
            .collect();
        let o = oxbpf_run("syscount.o", "count_getppid", &hooks)?;
        let probes: Vec<String> = tps
            .iter()
            .map(|n| format!("tracepoint:syscalls:{n}"))
            .collect();
        let b = if have_bpftrace {
            Some(bpftrace_run(&probes.join(","))?)
        } else {
            None
        };
        row(what, &o, b.as_ref());
    }
    if !quick {
        let path = libc.display().to_string();
        let singles: Vec<Hook> = funcs
            .iter()
            .map(|f| Hook::Uprobe {
                path: path.clone(),
                symbol: f.clone(),
                offset: 0,
                ret: false,
            })
            .collect();
        let probes: Vec<String> = funcs.iter().map(|f| format!("uprobe:{path}:{f}")).collect();
        let b = if have_bpftrace {
            Some(bpftrace_run(&probes.join(","))?)
        } else {
            None
        };
        let o = oxbpf_run("uprobes.o", "on_enter", &singles)?;
        row(
            &format!("{} uprobes (perf events)", funcs.len()),
            &o,
            b.as_ref(),
        );
        let t = Instant::now();
        let mut s = Session::load(object("uprobes.o")?, &Default::default())?;
        let offsets: Vec<u64> = funcs
            .iter()
            .map(|f| oxbpf_live::uprobe::symbol_offset(&libc, f))
            .collect::<Result<_, _>>()?;
        s.attach_offsets_multi("on_multi", &libc, &offsets, false)?;
        let attach = t.elapsed();
        let t = Instant::now();
        s.detach_all();
        drop(s);
        let o = Timing {
            attach,
            detach: t.elapsed(),
        };
        row(
            &format!("{} uprobes (one uprobe.multi link)", funcs.len()),
            &o,
            b.as_ref(),
        );
    }
    if !have_bpftrace {
        println!("bpftrace not found: its columns are empty (Debian: apt-get install bpftrace)");
    }
    println!(
        "att: from load to the last attachment (bpftrace: from spawn to its BEGIN probe, which runs once all probes are attached)"
    );
    println!("det: from detaching to everything closed (bpftrace: from BEGIN to its exit)");
    println!("vs bpftr: bpftrace's attach + detach time / oxbpf's (above 1x: oxbpf is faster)");
    Ok(())
}
