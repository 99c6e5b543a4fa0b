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

/// Runs the calling thread on `cpu` only (when the machine has two or
/// more): the flood's producer and consumer on different CPUs, in both
/// implementations, so the result does not depend on where the scheduler
/// puts them.
fn pin_to(cpu: usize) {
    if oxbpf_sys::online_cpus().len() < 2 {
        return;
    }
    // SAFETY: cpu_set_t is plain data, valid zeroed; CPU_SET writes one
    // bit inside it; sched_setaffinity(0, ...) affects this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

use oxbpf_sys::monotonic_ns;

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
    // The ring-buffer rows first: after the tracepoint rows the kernel is
    // still freeing hundreds of perf events in the background.
    ring_buffer_rows(quick)?;
    println!();
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

/// The same flood (examples/live/rbflood.o: each getppid of the
/// consumer's own process writes `burst` 64-byte records into a 1 MiB ring
/// buffer) consumed by oxbpf's `RingBuf` and by Debian's libbpf
/// (`ring_buffer__poll`, crates/oxbpf-bench/c/rb_consumer.c built here
/// with cc -lbpf). Prints records consumed, dropped (no room) and the
/// consumption rate.
pub fn ring_buffer_rows(quick: bool) -> Result<()> {
    oxbpf_sys::available().context("the ring-buffer benchmark needs bpf(2) (run as root)")?;
    let (calls, burst) = if quick { (200u64, 16u32) } else { (20_000, 64) };
    println!(
        "{:<36} {:>12} {:>12} {:>10} {:>12} {:>10}",
        "ring buffer flood", "consumed", "dropped", "delivered", "Mrecords/s", "vs libbpf"
    );
    // How many of the records written arrive is up to the scheduler as
    // much as to the consumer: the median of five alternating runs each.
    let runs = if quick { 1 } else { 5 };
    let delivered = |r: &(u64, u64, Duration)| r.0 as f64 / (r.0 + r.1).max(1) as f64;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut libbpf_error = None;
    for _ in 0..runs {
        ours.push(oxbpf_flood(calls, burst)?);
        match libbpf_flood(calls, burst) {
            Ok(t) => theirs.push(t),
            Err(e) => libbpf_error = Some(e),
        }
    }
    let median = |v: &mut Vec<(u64, u64, Duration)>| {
        v.sort_by(|a, b| delivered(a).total_cmp(&delivered(b)));
        v.get(v.len() / 2).copied()
    };
    let ours = median(&mut ours).expect("at least one run");
    let theirs = median(&mut theirs);
    let rate = |(c, _, t): (u64, u64, Duration)| c as f64 / t.as_secs_f64() / 1e6;
    let ratio = match theirs {
        Some(t) => format!("{:.2}x", delivered(&ours) / delivered(&t).max(1e-9)),
        None => "-".into(),
    };
    let what = format!("{calls} calls x {burst} records");
    let row = |name: String, r: (u64, u64, Duration), ratio: &str| {
        println!(
            "{:<36} {:>12} {:>12} {:>9.1}% {:>12.2} {:>10}",
            name,
            r.0,
            r.1,
            100.0 * delivered(&r),
            rate(r),
            ratio
        )
    };
    row(format!("oxbpf RingBuf, {what}"), ours, &ratio);
    match (theirs, libbpf_error) {
        (Some(t), _) => row(format!("libbpf ring_buffer__poll, {what}"), t, "1.00x"),
        (None, Some(e)) => println!("libbpf consumer not run: {e:#}"),
        (None, None) => {}
    }
    println!(
        "flood: the producer writes as fast as it can; dropped = records the ring had no room for (counted by the program, the same for both); delivered = consumed / written; vs libbpf: oxbpf's delivered / libbpf's (median of {runs})"
    );
    drain_rows(quick)
}

/// The consumer alone: the ring filled while nothing consumes (56 calls
/// of 256 records, 1 MiB), then one consume call timed, `rounds` times;
/// oxbpf's `RingBuf::consume` beside libbpf's `ring_buffer__consume`.
fn drain_rows(quick: bool) -> Result<()> {
    let (rounds, burst) = if quick { (5u64, 256u32) } else { (200, 256) };
    println!();
    println!(
        "{:<36} {:>12} {:>12} {:>14} {:>12}",
        "ring buffer drain (consumer only)", "consumed", "dropped", "Mrecords/s", "vs libbpf"
    );
    let rate = |(c, _, t): (u64, u64, Duration)| c as f64 / t.as_secs_f64() / 1e6;
    // Best of three alternating runs each.
    let mut ours = oxbpf_drain(rounds, burst)?;
    let mut theirs = libbpf_run(rounds, burst, true);
    for _ in 0..if quick { 0 } else { 2 } {
        let o = oxbpf_drain(rounds, burst)?;
        if rate(o) > rate(ours) {
            ours = o;
        }
        if let (Ok(best), Ok(t)) = (&theirs, libbpf_run(rounds, burst, true))
            && rate(t) > rate(*best)
        {
            theirs = Ok(t);
        }
    }
    let ratio = match &theirs {
        Ok(t) => format!("{:.2}x", rate(ours) / rate(*t)),
        Err(_) => "-".into(),
    };
    let what = format!("{rounds} full rings");
    println!(
        "{:<36} {:>12} {:>12} {:>14.2} {:>12}",
        format!("oxbpf RingBuf::consume, {what}"),
        ours.0,
        ours.1,
        rate(ours),
        ratio
    );
    match theirs {
        Ok(t) => println!(
            "{:<36} {:>12} {:>12} {:>14.2} {:>12}",
            format!("libbpf ring_buffer__consume, {what}"),
            t.0,
            t.1,
            rate(t),
            "1.00x"
        ),
        Err(e) => println!("libbpf consumer not run: {e:#}"),
    }
    println!("Mrecords/s: records per second of consume calls alone");
    Ok(())
}

/// (consumed, dropped, time spent in consume calls) for the drain rounds.
fn oxbpf_drain(rounds: u64, burst: u32) -> Result<(u64, u64, Duration)> {
    let (s, mut rb) = flood_session(burst)?;
    pin_to(0);
    let fill = (1u64 << 20) / (72 * burst as u64);
    let (mut consumed, mut spent) = (0u64, Duration::ZERO);
    for _ in 0..rounds {
        for _ in 0..fill {
            let _ = std::os::unix::process::parent_id();
        }
        let t0 = Instant::now();
        rb.consume(|_| consumed += 1);
        spent += t0.elapsed();
    }
    Ok((consumed, flood_stat(&s, 1)?, spent))
}

/// rbflood.o loaded for this process with `burst` records a call,
/// attached, and its ring buffer.
fn flood_session(burst: u32) -> Result<(Session, oxbpf_sys::ringbuf::RingBuf)> {
    let mut obj = object("rbflood.o")?;
    obj.set_global("target_tgid", &std::process::id().to_string())?;
    obj.set_global("burst", &burst.to_string())?;
    let mut s = Session::load(obj, &Default::default())?;
    s.attach_all()?;
    let rb = s.ring_buffer("records")?;
    Ok((s, rb))
}

/// rbflood.o's counter `k` (0: written, 1: dropped).
fn flood_stat(s: &Session, k: u32) -> Result<u64> {
    let v = s
        .map("stats")?
        .lookup(&k.to_le_bytes())?
        .unwrap_or_default();
    Ok(u64::from_le_bytes(
        v.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]),
    ))
}

/// (consumed, dropped, time until every written record was consumed).
fn oxbpf_flood(calls: u64, burst: u32) -> Result<(u64, u64, Duration)> {
    let (s, mut rb) = flood_session(burst)?;
    let stat = flood_stat;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    pin_to(0);
    let start = Instant::now();
    let producer = {
        let done = done.clone();
        std::thread::spawn(move || {
            pin_to(1);
            for _ in 0..calls {
                let _ = std::os::unix::process::parent_id();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut consumed = 0u64;
    loop {
        rb.wait(Duration::from_millis(10));
        rb.consume(|_| consumed += 1);
        if done.load(std::sync::atomic::Ordering::SeqCst) && consumed >= stat(&s, 0)? {
            break;
        }
    }
    let t = start.elapsed();
    let _ = producer.join();
    Ok((consumed, stat(&s, 1)?, t))
}

fn libbpf_flood(calls: u64, burst: u32) -> Result<(u64, u64, Duration)> {
    libbpf_run(calls, burst, false)
}

/// The C consumer on Debian's libbpf: the flood, or (`drain`) the drain
/// rounds.
fn libbpf_run(calls: u64, burst: u32, drain: bool) -> Result<(u64, u64, Duration)> {
    let exe = std::env::temp_dir().join(format!("oxbpf-rb-consumer-{}", std::process::id()));
    crate::build_c(
        "rb_consumer",
        &exe,
        &["-lbpf", "-lpthread"],
        "cc and libbpf-dev",
    )?;
    let obj = root().join("examples/live/rbflood.o");
    let out = Command::new(&exe)
        .arg(&obj)
        .arg(calls.to_string())
        .arg(burst.to_string())
        .args(drain.then_some("drain"))
        .output()
        .context("running the libbpf consumer")?;
    let _ = std::fs::remove_file(&exe);
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [c, d, ns] => Ok((c, d, Duration::from_nanos(ns))),
        _ => bail!(
            "the libbpf consumer said: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
