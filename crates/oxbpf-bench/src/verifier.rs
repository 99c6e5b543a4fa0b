//! `oxbpf bench-verifier`: verification time of oxbpf's verifier next to the
//! kernel's (programs loaded through bpf(2), the kernel's own per-program
//! load time) over a corpus of objects, with oxbpf's peak memory.

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

/// `oxbpf bench-verifier` (`oxbpf-bench verifier`): verify every program of the objects with oxbpf
/// and with the kernel (best of `runs` each) and print both totals, the
/// ratio and oxbpf's peak memory.
pub fn run(paths: &[PathBuf], runs: usize) -> Result<()> {
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
    let mut ours: std::collections::HashMap<(usize, String), (f64, bool, usize)> =
        Default::default();
    let mut largest = (0usize, String::new(), 0.0f64);
    for (oi, (name, o)) in objs.iter().enumerate() {
        for (i, p) in o.programs.iter().enumerate() {
            let opts = oxbpf_verifier::Options {
                prog_type: p.kind,
                ..Default::default()
            };
            let mut best = f64::MAX;
            let mut ok = false;
            for _ in 0..runs {
                let t = std::time::Instant::now();
                ok = oxbpf_verifier::verify_object_program(o, i, &opts).is_ok();
                best = best.min(t.elapsed().as_secs_f64());
            }
            let n = p.insns.len();
            if best > largest.2 {
                largest = (n, format!("{name} {}", p.name), best);
            }
            ours.insert((oi, p.name.clone()), (best, ok, n));
        }
    }
    let rss = peak_rss_kib().unwrap_or(0);
    // The kernel: whole objects loaded through bpf(2), per-program load time.
    let mut kernel: std::collections::HashMap<(usize, String), (f64, bool)> = Default::default();
    let mut kernel_error = None;
    for (oi, (_, o)) in objs.iter().enumerate() {
        for _ in 0..runs {
            let k = oxbpf_sys::object::load_object(o, None);
            for p in &k.programs {
                let t = p.verdict.time.as_secs_f64();
                let ok = p.verdict.prog.is_ok();
                if let Err(e) = &p.verdict.prog
                    && e.errno == 1
                {
                    kernel_error.get_or_insert_with(|| e.to_string());
                }
                let e = kernel
                    .entry((oi, p.def.name.clone()))
                    .or_insert((f64::MAX, ok));
                e.0 = e.0.min(t);
            }
        }
    }
    let mut out = std::io::stdout().lock();
    let (mut n_both, mut t_ours, mut t_kernel) = (0usize, 0.0f64, 0.0f64);
    let (mut all_ours, mut all_kernel) = (0.0f64, 0.0f64);
    for (key, (t, ok, _)) in &ours {
        all_ours += t;
        if let Some((kt, kok)) = kernel.get(key) {
            all_kernel += kt;
            if *ok && *kok {
                n_both += 1;
                t_ours += t;
                t_kernel += kt;
            }
        }
    }
    writeln!(
        out,
        "{} objects, {} programs, best of {runs} runs each",
        objs.len(),
        ours.len()
    )?;
    writeln!(
        out,
        "{:<44} {:>12} {:>12} {:>8}",
        "", "oxbpf", "kernel", "ratio"
    )?;
    let ratio = |o: f64, k: f64| if o > 0.0 { k / o } else { 0.0 };
    writeln!(
        out,
        "{:<44} {:>9.1} ms {:>9.1} ms {:>7.2}x",
        format!("programs accepted by both ({n_both})"),
        t_ours * 1e3,
        t_kernel * 1e3,
        ratio(t_ours, t_kernel)
    )?;
    writeln!(
        out,
        "{:<44} {:>9.1} ms {:>9.1} ms {:>7.2}x",
        format!("all programs ({})", ours.len()),
        all_ours * 1e3,
        all_kernel * 1e3,
        ratio(all_ours, all_kernel)
    )?;
    writeln!(
        out,
        "slowest program for oxbpf: {} ({} insns), {:.2} ms",
        largest.1,
        largest.0,
        largest.2 * 1e3
    )?;
    writeln!(
        out,
        "oxbpf peak memory: {:.1} MiB (process peak; {:.1} MiB before verifying)",
        rss as f64 / 1024.0,
        rss_before as f64 / 1024.0
    )?;
    writeln!(
        out,
        "ratio = kernel time / oxbpf time (above 1: oxbpf is faster){}",
        kernel_error
            .map(|e| format!("; kernel loads failed: {e}"))
            .unwrap_or_default()
    )?;
    Ok(())
}
