//! `oxbpf bench trace-cost`: what the generated code costs per event.
//!
//! Ten bpftrace scripts run under `oxbpf trace` and under bpftrace 0.17,
//! and beside them a hand-written C program doing the same
//! (`examples/live/tracecost.c`, clang -O2, per-CPU maps: the practical
//! floor) loaded by oxbpf's runtime. For each, the kernel counts the run
//! time of every program (`BPF_ENABLE_STATS`, the `run_time_ns` and
//! `run_cnt` of `bpf_prog_info`) while this process makes `N` write(2)
//! calls to /dev/null (or `N` calls of its uprobed function); the figure
//! is the run time the tracer's programs spent during the workload divided
//! by `N`, so a program that also runs on other events (a raw
//! tracepoint shared by every system call) pays for those runs too.
//! Instructions: the kernel's translated length (`xlated_prog_len / 8`) of
//! the programs that ran. Compile: `oxbpf trace -d bytecode` on the script,
//! the whole process, best of 3.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use oxbpf_live::{Hook, Session};

/// The function the uprobe case probes (its symbol is exported so that
/// tracers find it in this binary's symbol table).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn oxbpf_bench_event(i: u64) -> u64 {
    std::hint::black_box(i)
}

struct Case {
    name: &'static str,
    /// The script, `BIN` standing for this binary's path.
    script: &'static str,
    /// The C programs doing the same (tracecost.o).
    c: &'static [&'static str],
    uprobe: bool,
}

const CASES: [Case; 10] = [
    Case {
        name: "count",
        script: "tracepoint:syscalls:sys_enter_write { @ = count(); }",
        c: &["count"],
        uprobe: false,
    },
    Case {
        name: "count by comm",
        script: "tracepoint:syscalls:sys_enter_write { @[comm] = count(); }",
        c: &["count_by_comm"],
        uprobe: false,
    },
    Case {
        name: "sum by pid",
        script: "tracepoint:syscalls:sys_enter_write { @[pid] = sum(args->count); }",
        c: &["sum_by_pid"],
        uprobe: false,
    },
    Case {
        name: "hist",
        script: "tracepoint:syscalls:sys_enter_write { @ = hist(args->count); }",
        c: &["hist"],
        uprobe: false,
    },
    Case {
        name: "lhist",
        script: "tracepoint:syscalls:sys_enter_write { @ = lhist(args->count, 0, 1000, 100); }",
        c: &["lhist"],
        uprobe: false,
    },
    Case {
        name: "stats",
        script: "tracepoint:syscalls:sys_enter_write { @ = stats(args->count); }",
        c: &["stats"],
        uprobe: false,
    },
    Case {
        name: "filter on comm",
        script: "tracepoint:syscalls:sys_enter_write /comm == \"oxbpf-bench\"/ { @ = count(); }",
        c: &["filter_comm"],
        uprobe: false,
    },
    Case {
        name: "latency (enter+exit)",
        script: "tracepoint:syscalls:sys_enter_write { @start[tid] = nsecs; } \
                 tracepoint:syscalls:sys_exit_write /@start[tid]/ \
                 { @ns = hist(nsecs - @start[tid]); delete(@start[tid]); }",
        c: &["latency_enter", "latency_exit"],
        uprobe: false,
    },
    Case {
        name: "printf",
        script: "tracepoint:syscalls:sys_enter_write { printf(\"%d %d\\n\", pid, args->count); }",
        c: &["print"],
        uprobe: false,
    },
    Case {
        name: "uprobe count",
        script: "uprobe:BIN:oxbpf_bench_event { @ = count(); }",
        c: &["uprobe_count"],
        uprobe: true,
    },
];

/// The run-time counters of one program.
#[derive(Clone, Copy)]
pub(crate) struct Stat {
    pub(crate) time: u64,
    pub(crate) runs: u64,
    pub(crate) insns: u32,
}

pub(crate) fn snapshot(ids: &BTreeSet<u32>) -> BTreeMap<u32, Stat> {
    ids.iter()
        .filter_map(|&id| {
            let fd = oxbpf_sys::info::prog_fd(id).ok()?;
            let i = oxbpf_sys::info::prog_info(&fd).ok()?;
            Some((
                id,
                Stat {
                    time: i.run_time_ns,
                    runs: i.run_cnt,
                    insns: i.bytes_xlated / 8,
                },
            ))
        })
        .collect()
}

pub(crate) fn program_ids() -> Result<BTreeSet<u32>> {
    Ok(oxbpf_sys::info::programs()?
        .into_iter()
        .map(|p| p.id)
        .collect())
}

/// What one tracer's programs did during the workload.
#[derive(Clone, Copy, Default)]
struct Cost {
    /// Run time per workload event.
    ns: f64,
    /// Program runs per workload event.
    runs: f64,
    /// Translated instructions of the programs that ran.
    insns: u32,
}

/// Run time, runs, and instructions of the programs that ran, between
/// two snapshots.
pub(crate) fn run_totals(
    before: &BTreeMap<u32, Stat>,
    after: &BTreeMap<u32, Stat>,
) -> (u64, u64, u32) {
    let (mut time, mut runs, mut insns) = (0u64, 0u64, 0u32);
    for (id, a) in after {
        let b = before.get(id).copied().unwrap_or(Stat {
            time: 0,
            runs: 0,
            insns: a.insns,
        });
        if a.runs > b.runs {
            time += a.time - b.time;
            runs += a.runs - b.runs;
            insns += a.insns;
        }
    }
    (time, runs, insns)
}

fn cost(before: &BTreeMap<u32, Stat>, after: &BTreeMap<u32, Stat>, events: u64) -> Result<Cost> {
    let mut c = Cost::default();
    let (time, runs, insns) = run_totals(before, after);
    c.insns = insns;
    if runs == 0 {
        bail!("no program of the tracer ran during the workload");
    }
    c.ns = time as f64 / events as f64;
    c.runs = runs as f64 / events as f64;
    Ok(c)
}

/// The workload: `n` events of the case's kind.
fn workload(case: &Case, n: u64) -> Result<()> {
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    let buf = [0u8; 1000];
    for i in 0..n {
        if case.uprobe {
            oxbpf_bench_event(i);
        } else {
            let len = (i % 1000 + 1) as usize;
            // SAFETY: `buf` is valid for `len` <= 1000 bytes; the
            // descriptor is open for the call.
            unsafe { libc::write(null.as_raw_fd(), buf.as_ptr().cast(), len) };
        }
    }
    Ok(())
}

/// Kills the tracer if the measurement stops early.
struct Tracer(Child);

impl Drop for Tracer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGINT) };
        // A tracer that does not stop on SIGINT (bpftrace 0.17 has been
        // seen to hang on one that came while it attached) is killed
        // after a while, so that the benchmark goes on.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if !matches!(self.0.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("the tracer did not stop on SIGINT within 10 s: killed");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs an external tracer (`oxbpf trace` or bpftrace) on `script`,
/// which prints `ready` from BEGIN, and measures the workload.
fn tracer_cost(mut cmd: Command, case: &Case, n: u64) -> Result<Cost> {
    let before_ids = program_ids()?;
    let mut child = Tracer(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning the tracer")?,
    );
    let stdout = child.0.stdout.take().context("piped")?;
    let mut stderr = child.0.stderr.take().context("piped")?;
    let (tx, rx) = mpsc::channel();
    // Read everything the tracer prints (printf cases print one line an
    // event), announcing the BEGIN line.
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "ready" {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        drop(child);
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
        bail!(
            "the tracer did not start: {}",
            err.lines().last().unwrap_or("(nothing on stderr)")
        );
    }
    let ids: BTreeSet<u32> = program_ids()?.difference(&before_ids).copied().collect();
    let before = snapshot(&ids);
    workload(case, n)?;
    let after = snapshot(&ids);
    drop(child);
    let _ = reader.join();
    cost(&before, &after, n)
}

fn script_for(case: &Case) -> Result<String> {
    let bin = std::env::current_exe()?;
    Ok(format!(
        "BEGIN {{ printf(\"ready\\n\"); }} {}",
        case.script.replace("BIN", &bin.display().to_string())
    ))
}

fn oxbpf_cost(case: &Case, n: u64) -> Result<Cost> {
    tracer_cost(crate::trace::oxbpf_cmd(&script_for(case)?)?, case, n)
}

/// How long `oxbpf trace -d bytecode` takes for the script (the whole
/// process: parse, type, generate; nothing is loaded), best of 3.
fn compile_ms(case: &Case) -> Result<f64> {
    let exe = crate::trace::oxbpf_exe()?;
    let script = script_for(case)?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let st = Command::new(&exe)
            .args(["trace", "-d", "bytecode", "-e", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !st.success() {
            bail!("oxbpf trace -d bytecode failed on `{}`", case.name);
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(best)
}

fn bpftrace_cost(case: &Case, n: u64) -> Result<Cost> {
    let mut c = Command::new("bpftrace");
    c.args(["-e", &script_for(case)?]);
    tracer_cost(c, case, n)
}

fn c_cost(case: &Case, n: u64) -> Result<Cost> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/live/tracecost.o");
    let obj = oxbpf_obj::load(&std::fs::read(&path).with_context(|| path.display().to_string())?)?;
    let before_ids = program_ids()?;
    let mut s = Session::load(obj, &Default::default())?;
    for p in case.c {
        let hook = if case.uprobe {
            Hook::Uprobe {
                path: std::env::current_exe()?.display().to_string(),
                symbol: "oxbpf_bench_event".into(),
                offset: 0,
                ret: false,
            }
        } else {
            let name = if p.ends_with("_exit") {
                "sys_exit_write"
            } else {
                "sys_enter_write"
            };
            Hook::Tracepoint {
                category: "syscalls".into(),
                name: name.into(),
            }
        };
        s.attach_to(p, hook)?;
    }
    let mut ring = s.ring_buffer("events")?;
    let size = s.map("events")?.spec.max_entries as usize;
    let ids: BTreeSet<u32> = program_ids()?.difference(&before_ids).copied().collect();
    // The printf case's records are read as a tool reads them: a thread
    // of its own waits on the ring's epoll, takes every record and prints
    // it ("pid count", block-buffered into a pipe, flushed after each
    // batch, the pipe read line by line by another thread) — the work
    // `oxbpf trace` and bpftrace do for the script, and the bench's reader
    // of their output, on a CPU other than the event's. It pauses 5 ms after a small batch as
    // `oxbpf trace`'s reader does (a reader always caught up makes the
    // kernel wake it for every record, which the event pays for: a plain
    // `ring_buffer__poll` loop costs the C program ~3x per event here), so
    // that the floor differs from oxbpf in the generated code only.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (pipe_in, pipe_out) = std::io::pipe()?;
    let drain = std::thread::spawn(move || {
        std::io::BufReader::new(pipe_in)
            .lines()
            .map_while(Result::ok)
            .count()
    });
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, pipe_out);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                ring.wait(Duration::from_millis(100));
                let mut bytes = 0;
                ring.consume(|rec| {
                    bytes += rec.len().next_multiple_of(8) + 8;
                    let word = |at: usize| {
                        rec.get(at..at + 8)
                            .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    };
                    let _ = writeln!(out, "{} {}", word(0) as u32, word(8));
                });
                let _ = out.flush();
                if bytes > 0 && bytes < size / 2 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        })
    };
    let before = snapshot(&ids);
    workload(case, n)?;
    let after = snapshot(&ids);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    // The reader's end of the pipe closes with it: the drain ends.
    let _ = reader.join();
    let _ = drain.join();
    s.detach_all();
    cost(&before, &after, n)
}

/// Best (cheapest) of `runs` measurements.
fn best(runs: usize, f: &dyn Fn() -> Result<Cost>) -> Result<Cost> {
    let mut best: Option<Cost> = None;
    for _ in 0..runs {
        let c = f()?;
        if best.is_none_or(|b| c.ns < b.ns) {
            best = Some(c);
        }
    }
    best.context("no run")
}

pub fn run(quick: bool) -> Result<()> {
    oxbpf_sys::available().context("the per-event cost benchmark needs bpf(2) (run as root)")?;
    let _stats = oxbpf_sys::info::enable_run_time_stats()
        .context("BPF_ENABLE_STATS (the kernel's run-time counters)")?;
    let have_bpftrace = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let (n, runs) = if quick { (20_000, 1) } else { (200_000, 3) };
    println!(
        "per-event cost of the programs: kernel run time during {n} events / {n} (best of {runs}); insns: translated instructions of the programs that ran"
    );
    println!(
        "{:<22} {:>9} {:>6} {:>10} {:>6} {:>9} {:>6} {:>10} {:>9} {:>11}",
        "script",
        "oxbpf ns",
        "insns",
        "bpftr ns",
        "insns",
        "C ns",
        "insns",
        "bpftr/ox",
        "ox/C",
        "compile ms"
    );
    let mut sums = (0.0, 0.0, 0.0);
    for case in &CASES {
        let ours = best(runs, &|| oxbpf_cost(case, n))
            .with_context(|| format!("oxbpf trace on `{}`", case.name))?;
        let theirs = if have_bpftrace {
            Some(
                best(runs, &|| bpftrace_cost(case, n))
                    .with_context(|| format!("bpftrace on `{}`", case.name))?,
            )
        } else {
            None
        };
        let floor = best(runs, &|| c_cost(case, n))
            .with_context(|| format!("tracecost.o for `{}`", case.name))?;
        let compile = compile_ms(case)?;
        sums.0 += ours.ns;
        sums.1 += theirs.map_or(0.0, |t| t.ns);
        sums.2 += floor.ns;
        println!(
            "{:<22} {:>9.1} {:>6} {:>10} {:>6} {:>9.1} {:>6} {:>10} {:>8.2}x {:>11.1}",
            case.name,
            ours.ns,
            ours.insns,
            theirs.map_or("-".into(), |t| format!("{:.1}", t.ns)),
            theirs.map_or("-".into(), |t| t.insns.to_string()),
            floor.ns,
            floor.insns,
            theirs.map_or("-".into(), |t| format!("{:.2}x", t.ns / ours.ns.max(1e-9))),
            ours.ns / floor.ns.max(1e-9),
            compile,
        );
        if (ours.runs - floor.runs).abs() > 0.05 {
            println!(
                "{:<22} runs per event: oxbpf {:.2}, C {:.2}",
                "", ours.runs, floor.runs
            );
        }
    }
    println!(
        "{:<22} {:>9.1} {:>6} {:>10} {:>6} {:>9.1} {:>6} {:>10} {:>8.2}x",
        "total",
        sums.0,
        "",
        if have_bpftrace {
            format!("{:.1}", sums.1)
        } else {
            "-".into()
        },
        "",
        sums.2,
        "",
        if have_bpftrace {
            format!("{:.2}x", sums.1 / sums.0.max(1e-9))
        } else {
            "-".into()
        },
        sums.0 / sums.2.max(1e-9),
    );
    Ok(())
}
