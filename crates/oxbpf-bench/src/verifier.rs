//! `oxbpf bench-verifier`: verification time of oxbpf's verifier next to the
//! kernel's (programs loaded through bpf(2), the kernel's own per-program
//! load time) over a corpus of objects, with what each verification cost
//! (instructions processed, states stored, paths pruned), the slowest
//! programs, and oxbpf's peak memory; `--json` gives one object per program
//! and a summary.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use oxbpf_obj::ProgramType;

/// Peak resident memory of this process so far, in KiB (VmHWM).
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// One verifier's result on one program.
#[derive(serde::Serialize, Clone, Default)]
struct Side {
    verdict: &'static str,
    /// Best of the runs, milliseconds.
    time_ms: f64,
    insns_processed: Option<u64>,
    total_states: Option<u64>,
    peak_states: Option<u64>,
    max_states_per_insn: Option<u64>,
    /// Paths pruned (oxbpf only: the kernel's log does not count them).
    pruned: Option<u64>,
}

/// One program of the corpus.
#[derive(serde::Serialize)]
struct Row {
    object: String,
    program: String,
    insns: usize,
    oxbpf: Side,
    kernel: Option<Side>,
    /// Kernel time / oxbpf time (above 1: oxbpf is faster).
    ratio: Option<f64>,
}

/// The totals.
#[derive(serde::Serialize)]
struct Summary {
    objects: usize,
    programs: usize,
    runs: usize,
    both_accepted: usize,
    both_oxbpf_ms: f64,
    both_kernel_ms: f64,
    both_ratio: f64,
    all_oxbpf_ms: f64,
    all_kernel_ms: f64,
    all_ratio: f64,
    /// Programs both accept on which oxbpf took more than 4x the kernel's time.
    slower_than_4x: usize,
    peak_mib: f64,
    before_mib: f64,
    kernel_error: Option<String>,
}

/// `oxbpf bench-verifier` (`oxbpf-bench verifier`): verify every program of the objects with oxbpf
/// and with the kernel (best of `runs` each) and print both totals, the
/// ratio, the slowest programs and oxbpf's peak memory (`json`: one object
/// per program, then `{"summary": ...}`).
pub fn run(paths: &[PathBuf], runs: usize, json: bool) -> Result<()> {
    let runs = runs.max(1);
    let files = oxbpf_obj::object_files(paths);
    if files.is_empty() {
        return Err(anyhow!("no objects found"));
    }
    let mut objs = Vec::new();
    for f in &files {
        let Ok(mut o) = std::fs::read(f)
            .map_err(|e| e.to_string())
            .and_then(|b| oxbpf_obj::load(&b).map_err(|e| e.to_string()))
        else {
            continue;
        };
        for p in &mut o.programs {
            if p.kind == ProgramType::Unspec {
                p.kind = ProgramType::SocketFilter;
            }
        }
        objs.push((f.display().to_string(), o));
    }
    let rss_before = peak_rss_kib().unwrap_or(0);
    // oxbpf: per program, the best of `runs`.
    let mut rows: Vec<Row> = Vec::new();
    let mut index: HashMap<(usize, String), usize> = HashMap::new();
    for (oi, (name, o)) in objs.iter().enumerate() {
        for (i, p) in o.programs.iter().enumerate() {
            let opts = oxbpf_verifier::Options {
                prog_type: p.kind,
                ..Default::default()
            };
            let mut best = f64::MAX;
            let mut last = None;
            for _ in 0..runs {
                let t = std::time::Instant::now();
                let r = oxbpf_verifier::verify_object_program(o, i, &opts);
                best = best.min(t.elapsed().as_secs_f64());
                last = Some(r);
            }
            let (verdict, s) = match last.expect("at least one run") {
                Ok(r) => ("accept", r.stats),
                Err(e) => ("reject", e.stats),
            };
            let side = Side {
                verdict,
                time_ms: best * 1e3,
                insns_processed: Some(s.insns_processed),
                total_states: Some(s.total_states),
                peak_states: Some(s.peak_states),
                max_states_per_insn: Some(s.max_states_per_insn),
                pruned: Some(s.pruned),
            };
            index.insert((oi, p.name.clone()), rows.len());
            rows.push(Row {
                object: name.clone(),
                program: p.name.clone(),
                insns: p.insns.len(),
                oxbpf: side,
                kernel: None,
                ratio: None,
            });
        }
    }
    let rss = peak_rss_kib().unwrap_or(0);
    // The kernel: whole objects loaded through bpf(2), per-program load time.
    let mut kernel_error = None;
    for (oi, (_, o)) in objs.iter().enumerate() {
        for _ in 0..runs {
            let k = oxbpf_sys::object::load_object(o, None);
            for p in &k.programs {
                let t = p.verdict.time.as_secs_f64() * 1e3;
                if let Err(e) = &p.verdict.prog
                    && e.errno == 1
                {
                    kernel_error.get_or_insert_with(|| e.to_string());
                }
                let Some(&ri) = index.get(&(oi, p.def.name.clone())) else {
                    continue;
                };
                let side = rows[ri].kernel.get_or_insert_with(|| {
                    let k = oxbpf_sys::log_stats(&p.verdict.log);
                    Side {
                        verdict: if p.verdict.prog.is_ok() {
                            "accept"
                        } else {
                            "reject"
                        },
                        time_ms: f64::MAX,
                        insns_processed: k.insns_processed.or(p.verdict.insns_processed),
                        total_states: k.total_states,
                        peak_states: k.peak_states,
                        max_states_per_insn: k.max_states_per_insn,
                        pruned: None,
                    }
                });
                side.time_ms = side.time_ms.min(t);
            }
        }
    }
    let (mut n_both, mut t_ours, mut t_kernel) = (0usize, 0.0f64, 0.0f64);
    let (mut all_ours, mut all_kernel) = (0.0f64, 0.0f64);
    let mut slower = 0;
    for r in &mut rows {
        all_ours += r.oxbpf.time_ms;
        if let Some(k) = &r.kernel {
            all_kernel += k.time_ms;
            if r.oxbpf.time_ms > 0.0 {
                r.ratio = Some(k.time_ms / r.oxbpf.time_ms);
            }
            if r.oxbpf.verdict == "accept" && k.verdict == "accept" {
                n_both += 1;
                t_ours += r.oxbpf.time_ms;
                t_kernel += k.time_ms;
                if r.oxbpf.time_ms > 4.0 * k.time_ms {
                    slower += 1;
                }
            }
        }
    }
    let ratio = |o: f64, k: f64| if o > 0.0 { k / o } else { 0.0 };
    let summary = Summary {
        objects: objs.len(),
        programs: rows.len(),
        runs,
        both_accepted: n_both,
        both_oxbpf_ms: t_ours,
        both_kernel_ms: t_kernel,
        both_ratio: ratio(t_ours, t_kernel),
        all_oxbpf_ms: all_ours,
        all_kernel_ms: all_kernel,
        all_ratio: ratio(all_ours, all_kernel),
        slower_than_4x: slower,
        peak_mib: rss as f64 / 1024.0,
        before_mib: rss_before as f64 / 1024.0,
        kernel_error,
    };
    let mut out = std::io::stdout().lock();
    if json {
        for r in &rows {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        writeln!(
            out,
            "{}",
            serde_json::to_string(&serde_json::json!({ "summary": summary }))?
        )?;
        return Ok(());
    }
    print_text(&mut out, &rows, &summary)
}

fn print_text(out: &mut impl std::io::Write, rows: &[Row], s: &Summary) -> Result<()> {
    writeln!(
        out,
        "{} objects, {} programs, best of {} runs each",
        s.objects, s.programs, s.runs
    )?;
    writeln!(
        out,
        "{:<44} {:>12} {:>12} {:>8}",
        "", "oxbpf", "kernel", "ratio"
    )?;
    writeln!(
        out,
        "{:<44} {:>9.1} ms {:>9.1} ms {:>7.2}x",
        format!("programs accepted by both ({})", s.both_accepted),
        s.both_oxbpf_ms,
        s.both_kernel_ms,
        s.both_ratio
    )?;
    writeln!(
        out,
        "{:<44} {:>9.1} ms {:>9.1} ms {:>7.2}x",
        format!("all programs ({})", s.programs),
        s.all_oxbpf_ms,
        s.all_kernel_ms,
        s.all_ratio
    )?;
    let sum = |f: fn(&Side) -> Option<u64>, kernel: bool| -> u64 {
        rows.iter()
            .filter(|r| {
                r.oxbpf.verdict == "accept"
                    && r.kernel.as_ref().is_some_and(|k| k.verdict == "accept")
            })
            .filter_map(|r| {
                if kernel {
                    r.kernel.as_ref().and_then(f)
                } else {
                    f(&r.oxbpf)
                }
            })
            .sum()
    };
    writeln!(
        out,
        "{:<44} {:>12} {:>12}",
        "  instructions processed (both accept)",
        sum(|s| s.insns_processed, false),
        sum(|s| s.insns_processed, true)
    )?;
    writeln!(
        out,
        "{:<44} {:>12} {:>12}",
        "  states stored (both accept)",
        sum(|s| s.total_states, false),
        sum(|s| s.total_states, true)
    )?;
    writeln!(
        out,
        "programs both accept on which oxbpf is slower than 4x the kernel: {}",
        s.slower_than_4x
    )?;
    let mut slowest: Vec<&Row> = rows.iter().collect();
    slowest.sort_by(|a, b| b.oxbpf.time_ms.total_cmp(&a.oxbpf.time_ms));
    writeln!(out, "slowest programs for oxbpf:")?;
    writeln!(
        out,
        "  {:>9} {:>9} {:>6} {:>9} {:>9} {:>7} {:>7}  program",
        "oxbpf ms", "kernel ms", "ratio", "insns", "k insns", "states", "k states"
    )?;
    let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    for r in slowest.iter().take(10) {
        let k = r.kernel.clone().unwrap_or_default();
        writeln!(
            out,
            "  {:>9.2} {:>9.2} {:>5.2}x {:>9} {:>9} {:>7} {:>7}  {} {} ({} insns)",
            r.oxbpf.time_ms,
            k.time_ms,
            r.ratio.unwrap_or(0.0),
            n(r.oxbpf.insns_processed),
            n(k.insns_processed),
            n(r.oxbpf.total_states),
            n(k.total_states),
            r.object,
            r.program,
            r.insns
        )?;
    }
    writeln!(
        out,
        "oxbpf peak memory: {:.1} MiB (process peak; {:.1} MiB before verifying)",
        s.peak_mib, s.before_mib
    )?;
    writeln!(
        out,
        "ratio = kernel time / oxbpf time (above 1: oxbpf is faster){}",
        s.kernel_error
            .as_ref()
            .map(|e| format!("; kernel loads failed: {e}"))
            .unwrap_or_default()
    )?;
    Ok(())
}
