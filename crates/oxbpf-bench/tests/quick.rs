//! The benchmark binary runs and its engines agree (`oxbpf-bench jit
//! --quick` fails when any engine's result differs from the interpreter's).

use std::process::Command;

#[test]
fn jit_bench_engines_agree() {
    let out = Command::new(env!("CARGO_BIN_EXE_oxbpf-bench"))
        .args(["jit", "--quick"])
        .output()
        .expect("run oxbpf-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "oxbpf-bench jit --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [
        "arith_div",
        "checksum",
        "switch",
        "sieve",
        "load64",
        "xdp_parse",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no row for {name}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("JIT compile, benchmark programs one by one"),
        "{stdout}"
    );
}

/// The attach benchmark runs its smallest case against the live kernel
/// (root and tracefs needed; in CI a missing prerequisite fails).
#[test]
fn attach_bench_runs() {
    let live = oxbpf_sys::available().is_ok() && oxbpf_sys::perf::tracefs_root().is_some();
    if !live {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the attach benchmark: no bpf(2) or tracefs"
        );
        eprintln!("skipped: needs root, bpf(2) and tracefs");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_oxbpf-bench"))
        .args(["attach", "--quick"])
        .output()
        .expect("run oxbpf-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("1 tracepoint")),
        "{stdout}"
    );
    // Both consumers, in the flood and in the drain, got every record
    // written or a drop count for it.
    for row in ["oxbpf RingBuf,", "oxbpf RingBuf::consume,"] {
        let l = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no `{row}` row in {stdout}"));
        // The figures follow the row's name (`… N records`, `… N full rings`).
        let figures = l
            .rsplit_once(" records")
            .or_else(|| l.rsplit_once(" rings"))
            .unwrap()
            .1;
        let nums: Vec<u64> = figures
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert!(nums.len() >= 2 && nums[0] + nums[1] > 0, "{l}");
    }
}

/// The per-event cost benchmark measures all ten scripts under `oxbpf
/// trace` and the C floor (and bpftrace where it is installed; CI has it).
#[test]
fn trace_cost_bench_runs() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_oxbpf-bench")).with_file_name("oxbpf");
    let live = oxbpf_sys::available().is_ok() && exe.exists();
    if !live {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the trace-cost benchmark: no bpf(2) or no oxbpf binary at {}",
            exe.display()
        );
        eprintln!("skipped: needs root and the oxbpf binary (cargo test --workspace)");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_oxbpf-bench"))
        .args(["trace-cost", "--quick"])
        .output()
        .expect("run oxbpf-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "count ",
        "count by comm",
        "hist",
        "lhist",
        "stats",
        "filter on comm",
        "latency",
        "printf",
        "uprobe count",
        "total",
    ] {
        let l = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no `{row}` row in {stdout}"));
        // oxbpf's and C's figures are measured (positive); bpftrace's too
        // when it ran.
        let nums: Vec<f64> = l
            .split_whitespace()
            .filter_map(|w| w.trim_end_matches('x').parse().ok())
            .collect();
        assert!(nums.len() >= 3 && nums.iter().all(|&n| n > 0.0), "{l}");
    }
}

/// The verifier benchmark over the repository's soundness objects: one JSON
/// row per program with both verifiers' verdicts, times and costs, then
/// the summary (root and bpf(2) needed for the kernel's side).
#[test]
fn verifier_bench_reports_every_program() {
    let live = oxbpf_sys::available().is_ok();
    if !live {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the verifier benchmark: no bpf(2)"
        );
        eprintln!("skipped: needs root and bpf(2)");
        return;
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/soundness");
    let out = Command::new(env!("CARGO_BIN_EXE_oxbpf-bench"))
        .args(["verifier", "--runs", "1", "--json", dir])
        .output()
        .expect("run oxbpf-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let (summary, programs) = rows.split_last().unwrap();
    let summary = &summary["summary"];
    assert_eq!(summary["programs"].as_u64(), Some(programs.len() as u64));
    assert!(programs.len() > 10, "{stdout}");
    let mut both = 0;
    for r in programs {
        let o = &r["oxbpf"];
        assert!(o["time_ms"].as_f64().unwrap() > 0.0, "{r}");
        let processed = o["insns_processed"].as_u64().unwrap();
        assert!(processed >= 1, "{r}");
        assert!(o["total_states"].as_u64().unwrap() >= o["peak_states"].as_u64().unwrap());
        let k = &r["kernel"];
        assert!(k.is_object(), "the kernel loaded every program: {r}");
        if k["verdict"] == "accept" {
            // Log level 4 reports the kernel's own counts.
            assert!(k["insns_processed"].as_u64().unwrap() >= 1, "{r}");
            assert!(k["total_states"].is_u64(), "{r}");
            if o["verdict"] == "accept" {
                both += 1;
            }
        }
    }
    assert_eq!(summary["both_accepted"].as_u64(), Some(both));
    assert!(summary["peak_mib"].as_f64().unwrap() > 0.0);
}

/// The filter benchmark runs every engine on a small capture; it stops
/// when one keeps other packets than libpcap (cc and libpcap-dev needed).
#[test]
fn filter_bench_engines_agree_with_libpcap() {
    let out = Command::new(env!("CARGO_BIN_EXE_oxbpf-bench"))
        .args(["filter", "--quick"])
        .output()
        .expect("run oxbpf-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "oxbpf-bench filter --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("tcp port 80 ")),
        "{stdout}"
    );
}
