//! `oxbpf bench trace`: the same bpftrace scripts run by `oxbpf trace` and
//! by bpftrace 0.17 (the Debian package), one after the other, timed from
//! outside: *attached* from spawning the tracer to the line both print
//! once every probe is attached when `__BPFTRACE_NOTIFY_PROBES_ATTACHED`
//! is set (bpftrace's test harness waits for it; both run BEGIN before
//! attaching the rest), *exit* from the probe that calls `exit()` (which
//! prints `nsecs` first) to the process gone, *peak RSS* from wait4's
//! rusage, *compile* from spawning `oxbpf trace -d bytecode` to its exit.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

struct Run {
    attached: Duration,
    exited: Duration,
    rss_kb: u64,
}

/// Runs `cmd` (a tracer with its script, which prints `nsecs` in BEGIN and
/// again right before `exit()`), returning the timings and its peak RSS.
fn run(mut cmd: Command) -> Result<Run> {
    let start = oxbpf_sys::monotonic_ns();
    let child = cmd
        .env("__BPFTRACE_NOTIFY_PROBES_ATTACHED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning the tracer")?;
    let pid = child.id() as libc::pid_t;
    let out = {
        let mut child = child;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // The tracers print this line once every probe is attached (the
        // variable asks for it: bpftrace's test harness uses it); bpftrace
        // 0.17 prints it on stderr, oxbpf on stdout.
        const NOTIFY: &str = "__BPFTRACE_NOTIFY_PROBES_ATTACHED";
        let t = std::thread::spawn(move || {
            let mut s = String::new();
            let mut at = None;
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { break };
                if line == NOTIFY {
                    at.get_or_insert(oxbpf_sys::monotonic_ns());
                }
                s.push_str(&line);
                s.push('\n');
            }
            (s, at)
        });
        let mut attached = None;
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line?;
            if line == NOTIFY {
                attached.get_or_insert(oxbpf_sys::monotonic_ns());
            }
            text.push_str(&line);
            text.push('\n');
        }
        let (err, on_stderr) = t.join().unwrap_or_default();
        (text, err, child, attached.or(on_stderr))
    };
    let (text, err, child, attached) = out;
    // wait4 for the rusage (std's wait does not return it).
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped; both out-pointers are
    // valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let end = oxbpf_sys::monotonic_ns();
    std::mem::forget(child);
    if r != pid {
        bail!("wait4 failed");
    }
    let times: Vec<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let (Some(attached), Some(&exit)) = (attached, times.last()) else {
        bail!(
            "the tracer printed no times: {}",
            err.lines().last().unwrap_or("(nothing on stderr)")
        );
    };
    Ok(Run {
        attached: Duration::from_nanos(attached.saturating_sub(start)),
        exited: Duration::from_nanos(end.saturating_sub(exit)),
        rss_kb: usage.ru_maxrss as u64,
    })
}

/// The `oxbpf` binary installed beside this benchmark.
pub(crate) fn oxbpf_exe() -> Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?.with_file_name("oxbpf");
    if !exe.exists() {
        bail!(
            "`oxbpf` is not beside this benchmark ({}); cargo build --release",
            exe.display()
        );
    }
    Ok(exe)
}

/// `oxbpf trace -e SCRIPT`.
pub(crate) fn oxbpf_cmd(script: &str) -> Result<Command> {
    let mut c = Command::new(oxbpf_exe()?);
    c.args(["trace", "-e", script]);
    Ok(c)
}

fn bpftrace_cmd(script: &str) -> Command {
    let mut c = Command::new("bpftrace");
    c.args(["-e", script]);
    c
}

/// Best (shortest attach) of `n` runs.
fn best(n: usize, make: &dyn Fn() -> Result<Command>) -> Result<Run> {
    let mut best: Option<Run> = None;
    for _ in 0..n {
        let r = run(make()?)?;
        if best.as_ref().is_none_or(|b| r.attached < b.attached) {
            best = Some(r);
        }
    }
    best.context("no run")
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

pub fn run_all(quick: bool) -> Result<()> {
    oxbpf_sys::available().context("the trace benchmark needs bpf(2) (run as root)")?;
    let have_bpftrace = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let begin = r#"BEGIN { printf("%llu\n", nsecs); }"#;
    let quit = r#"{ printf("%llu\n", nsecs); exit(); }"#;
    let cases = [
        (
            "one-liner (sys_enter_openat, count by comm)",
            format!(
                "tracepoint:syscalls:sys_enter_openat {{ @[comm] = count(); }} {begin} interval:ms:100 {quit}"
            ),
        ),
        (
            "all sys_enter_* (count by probe)",
            format!(
                "tracepoint:syscalls:sys_enter_* {{ @[probe] = count(); }} {begin} interval:ms:100 {quit}"
            ),
        ),
    ];
    let runs = if quick { 1 } else { 3 };
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>11} {:>11} {:>11}",
        "trace", "oxbpf att", "oxbpf exit", "oxbpf RSS", "bpftr att", "bpftr exit", "bpftr RSS"
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>11} {:>11} {:>11}",
        "", "(ms)", "(ms)", "(MB)", "(ms)", "(ms)", "(MB)"
    );
    for (i, (name, script)) in cases.iter().enumerate() {
        // The wildcard case takes bpftrace half a minute: once, and not
        // in the quick run.
        if quick && i > 0 {
            break;
        }
        let n = if i > 0 { 1 } else { runs };
        let ours = best(n, &|| oxbpf_cmd(script))?;
        let theirs = if have_bpftrace {
            Some(best(n, &|| Ok(bpftrace_cmd(script)))?)
        } else {
            None
        };
        let mb = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
        println!(
            "{:<44} {:>10} {:>10} {:>10} {:>11} {:>11} {:>11}",
            name,
            ms(ours.attached),
            ms(ours.exited),
            mb(ours.rss_kb),
            theirs.as_ref().map_or("-".into(), |t| ms(t.attached)),
            theirs.as_ref().map_or("-".into(), |t| ms(t.exited)),
            theirs.as_ref().map_or("-".into(), |t| mb(t.rss_kb)),
        );
        if let Some(t) = &theirs {
            println!(
                "{:<44} attach {:.1}x, exit {:.1}x, RSS {:.1}x smaller",
                "  oxbpf vs bpftrace",
                t.attached.as_secs_f64() / ours.attached.as_secs_f64().max(1e-9),
                t.exited.as_secs_f64() / ours.exited.as_secs_f64().max(1e-9),
                t.rss_kb as f64 / ours.rss_kb.max(1) as f64
            );
        }
    }
    // Compile time: parse, type-check and generate every program.
    let script = &cases[0].1;
    let start = std::time::Instant::now();
    let st = oxbpf_cmd(script)?
        .arg("-d")
        .arg("bytecode")
        .stdout(Stdio::null())
        .status()?;
    let t = start.elapsed();
    if st.success() {
        println!(
            "compile (oxbpf trace -d bytecode, whole process): {} ms",
            ms(t)
        );
    }
    println!(
        "att: from spawn to the tracer's line that every probe is attached (__BPFTRACE_NOTIFY_PROBES_ATTACHED, read through its pipe); exit: from the exit() probe to the process gone; RSS: peak resident set (wait4)"
    );
    Ok(())
}
