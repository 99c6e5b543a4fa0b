//! `oxbpf bench tools`: oxbpf's ready tools (`oxbpf tool NAME`) against
//! bpftrace 0.17 running its own script (`/usr/sbin/NAME.bt`) on the same
//! workload, one after the other: *start* from spawning the tool to its
//! line that every probe is attached (`__BPFTRACE_NOTIFY_PROBES_ATTACHED`),
//! *exit* from SIGINT to the process reaped, *peak RSS* (wait4's rusage),
//! *ns/run* the kernel's run time of the tool's programs over their runs
//! during the workload (`BPF_ENABLE_STATS`), and *slowdown* the workload's
//! time traced over its time untraced. A peer that cannot run here says
//! why (its own error).

use std::collections::BTreeSet;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::trace_cost::{program_ids, run_totals, snapshot};

/// What one run of a tool measured.
struct Measure {
    start: Duration,
    exit: Duration,
    rss_kb: u64,
    ns_per_run: f64,
    runs: u64,
    work: Duration,
    /// What it printed on stderr.
    stderr: Vec<String>,
}

/// The line of a tracer's stderr that says why it failed: a compiler
/// error or a probe it could not attach, else its last ERROR (bpftrace's
/// first line is a warning about RLIMIT_MEMLOCK it prints on every run).
fn reason(lines: &[String]) -> String {
    lines
        .iter()
        .find(|l| l.contains("error:") || l.contains("could not attach"))
        .or_else(|| {
            lines
                .iter()
                .rev()
                .find(|l| l.contains("ERROR") && !l.contains("RLIMIT_MEMLOCK"))
        })
        .or(lines.last())
        .cloned()
        .unwrap_or_else(|| "it printed nothing".into())
}

const NOTIFY: &str = "__BPFTRACE_NOTIFY_PROBES_ATTACHED";

/// Runs `cmd` as a tracer around `work`, measuring it (see the module).
fn measure(mut cmd: Command, work: &dyn Fn() -> Result<Duration>) -> Result<Measure> {
    let before = program_ids()?;
    let t0 = Instant::now();
    let mut child = cmd
        .env(NOTIFY, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning the tool")?;
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel::<Instant>();
    let (etx, erx) = mpsc::channel::<String>();
    // Both streams drained (bpftrace 0.17 prints the line on stderr,
    // oxbpf on stdout); output is discarded.
    let watch = |r: Box<dyn std::io::Read + Send>,
                 tx: mpsc::Sender<Instant>,
                 err: Option<mpsc::Sender<String>>| {
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if line == NOTIFY {
                    let _ = tx.send(Instant::now());
                } else if let Some(e) = &err {
                    let _ = e.send(line);
                }
            }
        })
    };
    let out = watch(
        Box::new(child.stdout.take().expect("piped")),
        tx.clone(),
        None,
    );
    let err = watch(Box::new(child.stderr.take().expect("piped")), tx, Some(etx));
    let attached = rx.recv_timeout(Duration::from_secs(120));
    let Ok(attached) = attached else {
        let _ = child.kill();
        let _ = child.wait();
        let _ = (out.join(), err.join());
        let why: Vec<String> = erx.try_iter().collect();
        bail!("{}", reason(&why));
    };
    let start = attached - t0;
    // The tool's programs: those loaded since it started.
    let ids: BTreeSet<u32> = program_ids()?.difference(&before).copied().collect();
    let s0 = snapshot(&ids);
    let work = work()?;
    let s1 = snapshot(&ids);
    let (time, runs, _) = run_totals(&s0, &s1);
    let stop = Instant::now();
    // SAFETY: kill(2) on our own child's pid, not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped; both out-pointers are
    // valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let exit = stop.elapsed();
    std::mem::forget(child);
    let _ = (out.join(), err.join());
    if r != pid {
        bail!("wait4 failed");
    }
    Ok(Measure {
        start,
        exit,
        rss_kb: usage.ru_maxrss as u64,
        ns_per_run: if runs == 0 {
            0.0
        } else {
            time as f64 / runs as f64
        },
        runs,
        work,
        stderr: erx.try_iter().collect(),
    })
}

/// A loop device over a file, detached when dropped.
struct Loop {
    dev: String,
    file: std::path::PathBuf,
}

impl Loop {
    fn new() -> Result<Loop> {
        let file =
            std::env::temp_dir().join(format!("oxbpf-bench-loop-{}.img", std::process::id()));
        std::fs::File::create(&file)?.set_len(64 << 20)?;
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .context("losetup (util-linux)")?;
        if !out.status.success() {
            bail!("losetup: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(Loop {
            dev: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            file,
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

/// The workloads, each with the number of its events.
fn execs(n: usize) -> Result<Duration> {
    timed(|| {
        for _ in 0..n {
            Command::new("/bin/true").status()?;
        }
        Ok(())
    })
}

fn opens(n: usize) -> Result<Duration> {
    timed(|| {
        for _ in 0..n {
            drop(std::fs::File::open("/etc/hostname")?);
        }
        Ok(())
    })
}

fn syscalls(n: usize) -> Result<Duration> {
    timed(|| {
        for _ in 0..n {
            std::hint::black_box(std::os::unix::process::parent_id());
        }
        Ok(())
    })
}

fn direct_writes(dev: &str, n: usize) -> Result<Duration> {
    timed(|| {
        let st = Command::new("dd")
            .args([
                "if=/dev/zero".to_string(),
                format!("of={dev}"),
                "bs=4096".into(),
                format!("count={n}"),
                "oflag=direct".into(),
            ])
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("dd to {dev} failed");
        }
        Ok(())
    })
}

/// Two threads handing a token back and forth: a wakeup and a context
/// switch per hand-over.
fn switches(n: usize) -> Result<Duration> {
    timed(|| {
        let (a_tx, a_rx) = mpsc::channel::<u32>();
        let (b_tx, b_rx) = mpsc::channel::<u32>();
        let t = std::thread::spawn(move || {
            for v in a_rx.iter().take(n) {
                if b_tx.send(v + 1).is_err() {
                    break;
                }
            }
        });
        for i in 0..n as u32 {
            a_tx.send(i)?;
            b_rx.recv()?;
        }
        t.join()
            .map_err(|_| anyhow::anyhow!("the ping-pong thread panicked"))?;
        Ok(())
    })
}

fn best_untraced(work: &dyn Fn() -> Result<Duration>) -> Result<Duration> {
    let a = work()?;
    let b = work()?;
    Ok(a.min(b))
}

pub fn run(quick: bool) -> Result<()> {
    oxbpf_sys::available().context("the tools benchmark needs bpf(2) (run as root)")?;
    let _stats = oxbpf_sys::info::enable_run_time_stats()
        .context("BPF_ENABLE_STATS (the kernel's run-time counters)")?;
    let oxbpf = crate::trace::oxbpf_exe()?;
    let have_bpftrace = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let scale = if quick { 10 } else { 1 };
    let lo = Loop::new()?;
    let dev = lo.dev.clone();
    let disk = dev.trim_start_matches("/dev/").to_string();
    type Work = Box<dyn Fn() -> Result<Duration>>;
    let tools: Vec<(&str, Vec<String>, Work, String)> = vec![
        (
            "execsnoop",
            vec![],
            Box::new(move || execs(400 / scale)),
            format!("{} execs of /bin/true", 400 / scale),
        ),
        (
            "opensnoop",
            vec![],
            Box::new(move || opens(100_000 / scale)),
            format!("{} opens", 100_000 / scale),
        ),
        (
            "syscount",
            vec![],
            Box::new(move || syscalls(1_000_000 / scale)),
            format!("{} getppid calls", 1_000_000 / scale),
        ),
        (
            "biolatency",
            vec!["-d".into(), disk],
            Box::new(move || direct_writes(&dev, 4000 / scale)),
            format!("{} direct 4 KiB writes to a loop device", 4000 / scale),
        ),
        (
            "runqlat",
            vec![],
            Box::new(move || switches(30_000 / scale)),
            format!("{} thread hand-overs", 30_000 / scale),
        ),
    ];
    println!(
        "{:<11} {:>8} {:>8} {:>7} {:>7} {:>8} | {:>8} {:>8} {:>7} {:>7} {:>8} | {:>6} {:>6} {:>6} {:>6}",
        "tool",
        "ox start",
        "ox exit",
        "ox RSS",
        "ox ns",
        "ox slow",
        "bt start",
        "bt exit",
        "bt RSS",
        "bt ns",
        "bt slow",
        "start",
        "RSS",
        "ns",
        "slow"
    );
    println!(
        "{:<11} {:>8} {:>8} {:>7} {:>7} {:>8} | {:>8} {:>8} {:>7} {:>7} {:>8} | {:>6} {:>6} {:>6} {:>6}",
        "",
        "(ms)",
        "(ms)",
        "(MB)",
        "/run",
        "(x)",
        "(ms)",
        "(ms)",
        "(MB)",
        "/run",
        "(x)",
        "bt/ox",
        "bt/ox",
        "bt/ox",
        "bt/ox"
    );
    let mut notes = Vec::new();
    for (name, args, work, what) in &tools {
        let untraced = best_untraced(work.as_ref())?;
        let mut c = Command::new(&oxbpf);
        c.arg("tool").arg(name).args(args);
        let ours = measure(c, work.as_ref()).with_context(|| format!("oxbpf tool {name}"))?;
        let theirs = if have_bpftrace {
            let mut c = Command::new("bpftrace");
            c.arg(format!("/usr/sbin/{name}.bt"));
            match measure(c, work.as_ref()) {
                // Attached, but what it traces did not fire: its probes
                // were skipped (bpftrace warns and runs on).
                Ok(t) if t.runs == 0 => Err(format!(
                    "it starts, but none of its probes fire on the workload: {}",
                    reason(&t.stderr)
                )),
                r => r.map_err(|e| format!("{e:#}")),
            }
        } else {
            Err("bpftrace is not installed".to_string())
        };
        let slow = |m: &Measure| m.work.as_secs_f64() / untraced.as_secs_f64().max(1e-9);
        let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
        let mb = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
        let (bt, ratios) = match &theirs {
            Ok(t) => (
                format!(
                    "{:>8} {:>8} {:>7} {:>7.1} {:>8.2}",
                    ms(t.start),
                    ms(t.exit),
                    mb(t.rss_kb),
                    t.ns_per_run,
                    slow(t)
                ),
                format!(
                    "{:>5.1}x {:>5.1}x {:>5.2}x {:>5.2}x",
                    t.start.as_secs_f64() / ours.start.as_secs_f64().max(1e-9),
                    t.rss_kb as f64 / ours.rss_kb.max(1) as f64,
                    t.ns_per_run / ours.ns_per_run.max(1e-9),
                    (slow(t) - 1.0).max(0.0) / (slow(&ours) - 1.0).max(1e-3)
                ),
            ),
            Err(e) => {
                notes.push(format!("bpftrace /usr/sbin/{name}.bt cannot run here: {e}"));
                (
                    format!("{:>8} {:>8} {:>7} {:>7} {:>8}", "-", "-", "-", "-", "-"),
                    "(see below)".to_string(),
                )
            }
        };
        println!(
            "{:<11} {:>8} {:>8} {:>7} {:>7.1} {:>8.2} | {bt} | {ratios}",
            name,
            ms(ours.start),
            ms(ours.exit),
            mb(ours.rss_kb),
            ours.ns_per_run,
            slow(&ours)
        );
        notes.push(format!(
            "{name}: {what}, {:.1} ms untraced; oxbpf's programs ran {} times",
            untraced.as_secs_f64() * 1e3,
            ours.runs
        ));
    }
    for n in notes {
        println!("  {n}");
    }
    println!(
        "start: spawn to every probe attached; exit: SIGINT to reaped; RSS: peak resident set; ns/run: kernel run time of the tool's programs per run during the workload; slow: the workload's time traced / untraced (the slow ratio compares the added time)"
    );
    Ok(())
}
