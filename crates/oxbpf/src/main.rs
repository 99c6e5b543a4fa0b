//! The `oxbpf` command-line tool. Results go to stdout, errors to stderr with
//! a non-zero exit status.

mod bench;
mod commands;
mod object_run;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use oxbpf_conformance::engines::EngineKind;

#[derive(Parser)]
#[command(
    name = "oxbpf",
    version,
    about = "The eBPF toolkit: assemble, disassemble, run, check"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Assemble text (LLVM or ubpf dialect) into raw bytecode.
    Asm {
        /// Assembly source file ("-" for stdin).
        input: PathBuf,
        /// Output file for the bytecode; without it, hex slots are printed.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Disassemble raw bytecode or the code sections of a BPF ELF object.
    Disasm {
        /// A `.o` BPF object or raw bytecode file.
        file: PathBuf,
        /// Only this section (ELF objects).
        #[arg(long)]
        section: Option<String>,
        /// Show each instruction's bytes, like llvm-objdump.
        #[arg(long)]
        bytes: bool,
    },
    /// Show the programs, maps and BTF of a BPF ELF object.
    Inspect {
        /// A `.o` BPF object.
        file: PathBuf,
    },
    /// Run a program: raw bytecode or assembly (prints r0), or a program of a
    /// BPF ELF object on packets (per-packet verdicts and a summary).
    Run {
        /// A BPF object (`.o`), raw bytecode (`.bin`) or assembly (`.s`, `.asm`).
        program: PathBuf,
        /// Program of the object to run (function or section name; default: the first).
        #[arg(long = "program", short = 'p')]
        name: Option<String>,
        /// Program type when the section name does not say (xdp, tc, socket, ...).
        #[arg(long = "type")]
        prog_type: Option<String>,
        /// Packets to run the program on, one run per packet.
        #[arg(long, conflicts_with_all = ["mem", "mem_hex", "data"])]
        pcap: Option<PathBuf>,
        /// One input (packet, context or memory) from a file.
        #[arg(long, conflicts_with_all = ["mem", "mem_hex"])]
        data: Option<PathBuf>,
        /// Print the maps' contents at the end.
        #[arg(long)]
        dump_maps: bool,
        /// Print each output packet in hex.
        #[arg(long)]
        show_packet: bool,
        /// File whose bytes are the input memory (r1 = address, r2 = length).
        #[arg(long, conflicts_with = "mem_hex")]
        mem: Option<PathBuf>,
        /// Input memory as hex bytes ("00 01 ff" or "0001ff").
        #[arg(long)]
        mem_hex: Option<String>,
        #[arg(long, value_enum, default_value_t = EngineKind::Interpreter)]
        engine: EngineKind,
        /// Print each executed instruction with the registers it changed.
        #[arg(long)]
        trace: bool,
        /// Stop after this many instructions.
        #[arg(long)]
        budget: Option<u64>,
        /// Maximum stack frames for bpf-to-bpf calls.
        #[arg(long, default_value_t = 8)]
        max_call_depth: usize,
        /// Run the program this many times (reports the last result).
        #[arg(long, default_value_t = 1)]
        repeat: u64,
        /// Print one JSON object per run.
        #[arg(long)]
        json: bool,
        /// Skip oxbpf's verifier (the interpreter and the JIT then check
        /// every memory access at run time).
        #[arg(long)]
        no_verify: bool,
        /// JIT: blind constants (no program immediate appears in the
        /// generated code).
        #[arg(long)]
        blind_constants: bool,
    },
    /// Verify every program of objects (files or directories of `.o`) and
    /// report verdicts; exit 0 if all are accepted, 1 if any is rejected, 2
    /// if an input could not be loaded.
    Verify {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Only this program (function or section name).
        #[arg(long = "program", short = 'p')]
        name: Option<String>,
        /// Program type when the section name does not say.
        #[arg(long = "type")]
        prog_type: Option<String>,
        #[arg(long, value_enum, default_value_t = verify::Verifier::Oxbpf)]
        verifier: verify::Verifier,
        /// One JSON object per program per line.
        #[arg(long)]
        json: bool,
        /// Print the verifier's log, each instruction annotated with its source line.
        #[arg(long)]
        log: bool,
        /// Type given to programs whose section name says none (reported as assumed).
        #[arg(long, default_value = "socket_filter")]
        default_type: String,
        /// oxbpf's verifier with the unprivileged policy (no pointer leaks,
        /// no uninitialized stack reads, no pointer comparisons).
        #[arg(long)]
        unprivileged: bool,
        /// Accept pointers stored into maps or the context, as the kernel
        /// does for root (CAP_PERFMON); by default such leaks are rejected.
        #[arg(long)]
        allow_ptr_leaks: bool,
    },
    /// Time the benchmark programs on oxbpf's JIT and interpreter, rbpf's
    /// JIT and native code side by side, and the JIT's compile speed.
    Bench {
        /// Check that every engine agrees and time each once (fast).
        #[arg(long)]
        quick: bool,
    },
    /// Verify every program of objects with oxbpf and with the kernel and
    /// print both totals, the ratio and oxbpf's peak memory.
    BenchVerifier {
        /// Objects or directories (default: ../shared/ebpf-samples).
        paths: Vec<PathBuf>,
        /// Runs per program; the best is kept.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Run bpf_conformance `.data` tests; the last line is "N passed, M failed".
    Conformance {
        /// Test files or directories (searched for `*.data`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, value_enum, default_value_t = EngineKind::Interpreter)]
        engine: EngineKind,
        /// Print every test, not just failures.
        #[arg(short, long)]
        verbose: bool,
    },
    /// The bpf_conformance plugin protocol: program hex on stdin, memory hex
    /// as the first argument, r0 printed in hex.
    Plugin {
        /// Input memory as hex.
        memory: Option<String>,
        /// Plugin options passed by the runner (may name an engine).
        options: Option<String>,
        #[arg(long, value_enum)]
        engine: Option<EngineKind>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Asm { input, output } => commands::asm(&input, output.as_deref()),
        Command::Disasm {
            file,
            section,
            bytes,
        } => commands::disasm(&file, section.as_deref(), bytes),
        Command::Inspect { file } => commands::inspect(&file),
        Command::Run {
            program,
            name,
            prog_type,
            pcap,
            data,
            dump_maps,
            show_packet,
            mem,
            mem_hex,
            engine,
            trace,
            budget,
            max_call_depth,
            repeat,
            json,
            no_verify,
            blind_constants,
        } => commands::run(commands::RunArgs {
            no_verify,
            blind_constants,
            program,
            name,
            prog_type,
            pcap,
            data,
            dump_maps,
            show_packet,
            mem,
            mem_hex,
            engine,
            trace,
            budget,
            max_call_depth,
            repeat,
            json,
        }),
        Command::Bench { quick } => bench::run(quick).map(|()| ExitCode::SUCCESS),
        Command::BenchVerifier { paths, runs } => {
            let paths = if paths.is_empty() {
                vec![PathBuf::from("../shared/ebpf-samples")]
            } else {
                paths
            };
            verify::bench(&paths, runs)
        }
        Command::Verify {
            paths,
            name,
            prog_type,
            verifier,
            json,
            log,
            default_type,
            unprivileged,
            allow_ptr_leaks,
        } => verify::verify(&verify::VerifyArgs {
            unprivileged,
            allow_ptr_leaks,
            paths,
            name,
            prog_type,
            verifier,
            json,
            log,
            default_type,
        }),
        Command::Conformance {
            paths,
            engine,
            verbose,
        } => commands::conformance(&paths, engine, verbose),
        Command::Plugin {
            memory,
            options,
            engine,
        } => commands::plugin(memory.as_deref(), options.as_deref(), engine),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
