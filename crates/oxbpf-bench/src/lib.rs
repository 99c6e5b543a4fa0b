//! oxbpf's benchmarks, side by side with their peers in one run, printing
//! ratios (timings are reported, never asserted):
//!
//! - [`jit`]: the programs of `benches/programs` on oxbpf's JIT (trusted and
//!   checked) and interpreter, the `rbpf` crate's JIT and native code; the
//!   bundled objects with maps and helpers; the JIT's compile speed.
//! - [`verifier`]: oxbpf's verifier against the kernel's over a corpus.
//! - [`filter`]: packet filters over a large capture in every engine
//!   against libpcap's `pcap_offline_filter`.
//! - [`attach`]: attaching to and detaching from live kernel events
//!   (tracepoints, uprobes) against bpftrace.
//! - [`trace`]: `oxbpf trace` against bpftrace on the same scripts:
//!   time to attached, exit time, peak memory, compile time.
//! - [`trace_cost`]: what the code `oxbpf trace` generates costs per event
//!   (the kernel's run-time counters) against bpftrace and hand-written C.
//! - [`tools`]: `oxbpf tool` against bpftrace's own tools on the same
//!   workloads: start, exit, memory, per-run cost, workload slowdown.
//!
//! The `oxbpf-bench` binary runs them; `oxbpf bench` and `oxbpf
//! bench-verifier` hand over to it, so `rbpf` is linked into this crate only
//! and never into the shipped `oxbpf` binary.
//!
//! Unsafe code: `jit` calls rbpf's JIT (an `unsafe fn`) and trusts the
//! benchmark programs the verifier cannot prove after a complete checked
//! run on the very input they are timed on; each block says why.

pub mod attach;
pub mod filter;
pub mod jit;
pub mod tools;
pub mod trace;
pub mod trace_cost;
pub mod verifier;

/// Builds a peer written in C, `c/NAME.c` of this crate, into `exe` with
/// cc (`libs`: the `-l` flags; `needs`: the Debian packages that make it
/// build, for the error).
pub(crate) fn build_c(
    name: &str,
    exe: &std::path::Path,
    libs: &[&str],
    needs: &str,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("c/{name}.c"));
    let built = std::process::Command::new("cc")
        .args(["-O2", "-o"])
        .arg(exe)
        .arg(&src)
        .args(libs)
        .output()
        .context("running cc")?;
    if !built.status.success() {
        anyhow::bail!(
            "cannot build {} (needs {needs}): {}",
            src.display(),
            String::from_utf8_lossy(&built.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    Ok(())
}
