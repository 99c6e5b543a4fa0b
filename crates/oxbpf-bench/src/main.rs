//! `oxbpf-bench`: the benchmark harness behind `oxbpf bench` and `oxbpf
//! bench-verifier` (see the library's documentation).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "oxbpf-bench",
    version,
    about = "oxbpf's benchmarks against their peers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// oxbpf's JIT and interpreter against rbpf's JIT and native code, the
    /// bundled objects per packet, and the JIT's compile speed.
    Jit {
        /// Check that every engine agrees and time each once (fast).
        #[arg(long)]
        quick: bool,
    },
    /// Attach and detach speed on live kernel events against bpftrace.
    Attach {
        /// One tracepoint only (fast).
        #[arg(long)]
        quick: bool,
    },
    /// Ring-buffer consumption against libbpf only (the last rows of
    /// `attach`).
    Ring {
        /// One short run each (fast).
        #[arg(long)]
        quick: bool,
    },
    /// `oxbpf trace` against bpftrace on the same scripts.
    Trace {
        /// The one-liner only, once (fast).
        #[arg(long)]
        quick: bool,
    },
    /// What the code `oxbpf trace` generates costs per event, against
    /// bpftrace and hand-written C on ten scripts.
    TraceCost {
        /// Fewer events, one run each (fast).
        #[arg(long)]
        quick: bool,
    },
    /// `oxbpf tool` against bpftrace's tools (/usr/sbin/*.bt) on the same
    /// workloads.
    Tools {
        /// Smaller workloads (fast).
        #[arg(long)]
        quick: bool,
    },
    /// Packet filters over a large capture in every engine against
    /// libpcap's pcap_offline_filter.
    Filter {
        /// A small capture, one round (fast).
        #[arg(long)]
        quick: bool,
    },
    /// oxbpf's verifier against the kernel's over a corpus of objects.
    Verifier {
        /// Objects or directories (default: ../shared/ebpf-samples).
        paths: Vec<PathBuf>,
        /// Runs per program; the best is kept.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// One JSON object per program, then `{"summary": ...}`.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Jit { quick } => oxbpf_bench::jit::run(quick),
        Command::Filter { quick } => oxbpf_bench::filter::run(quick),
        Command::Attach { quick } => oxbpf_bench::attach::run(quick),
        Command::Ring { quick } => oxbpf_bench::attach::ring_buffer_rows(quick),
        Command::Trace { quick } => oxbpf_bench::trace::run_all(quick),
        Command::TraceCost { quick } => oxbpf_bench::trace_cost::run(quick),
        Command::Tools { quick } => oxbpf_bench::tools::run(quick),
        Command::Verifier { paths, runs, json } => {
            let paths = if paths.is_empty() {
                vec![PathBuf::from("../shared/ebpf-samples")]
            } else {
                paths
            };
            oxbpf_bench::verifier::run(&paths, runs, json)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
