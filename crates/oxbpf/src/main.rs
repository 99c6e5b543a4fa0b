//! The `oxbpf` command-line tool. Results go to stdout, errors to stderr with
//! a non-zero exit status.

mod attach;
mod capture;
mod commands;
mod manage;
mod object_run;
mod profile;
mod tools;
mod top;
mod trace;
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
enum CbpfCmd {
    /// Print a classic program (binary `sock_filter`s, `-ddd` numbers or a
    /// listing) as libpcap prints it.
    Disasm {
        file: PathBuf,
        /// listing (`tcpdump -d`), c (`-dd`) or decimal (`-ddd`).
        #[arg(long, default_value = "listing")]
        format: String,
    },
    /// Assemble a listing (or numbers) into the kernel's binary encoding.
    Asm {
        file: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Check a classic program against the kernel's rules
    /// (bpf_check_classic): exit 1 naming the instruction if it breaks one.
    Check { file: PathBuf },
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
    /// Compile a libpcap filter expression (`man pcap-filter`; Ethernet
    /// frames) to classic BPF, optimized: print it (`-d`/`--cbpf` listing,
    /// the default; `--ddd` numbers; `--dd` C; `--ebpf` the eBPF the kernel
    /// runs for it), write it (`-o OUT.o`: an eBPF object — a socket
    /// filter, or with `--hook tc|xdp` a tc or XDP program — that every
    /// oxbpf engine runs and `oxbpf attach` loads; any other name: the
    /// classic program's bytes), or filter a capture (`--pcap IN [-w
    /// OUT]`: the packets kept, as tcpdump -r).
    Filter {
        /// The expression (several words are joined with spaces, as
        /// tcpdump joins them).
        #[arg(required = true, num_args = 1..)]
        expr: Vec<String>,
        #[arg(short = 'd', long = "cbpf", conflicts_with_all = ["ddd", "dd", "ebpf"])]
        listing: bool,
        #[arg(long, conflicts_with_all = ["dd", "ebpf"])]
        ddd: bool,
        #[arg(long, conflicts_with = "ebpf")]
        dd: bool,
        #[arg(long)]
        ebpf: bool,
        /// Do not optimize (tcpdump's -O).
        #[arg(short = 'O')]
        no_optimize: bool,
        /// What the frames start with: `ethernet` or `raw` (an IPv4/IPv6
        /// header). With --pcap, the file's link type decides.
        #[arg(long, default_value = "ethernet", value_parser = ["ethernet", "raw"])]
        link: String,
        /// The eBPF program `-o OUT.o` and `--ebpf` make: a `socket`
        /// filter (the kernel's translation), or a `tc` or `xdp` program
        /// that passes the packets the filter keeps and drops the rest.
        #[arg(long, default_value = "socket", value_parser = ["socket", "tc", "xdp"])]
        hook: String,
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        pcap: Option<PathBuf>,
        #[arg(short = 'w', requires = "pcap")]
        write: Option<PathBuf>,
    },
    /// Capture packets on an interface through a packet socket with a
    /// filter expression compiled by oxbpf and attached in the kernel (as
    /// tcpdump does): print them or write a pcap file (`-w`), until `-c N`
    /// packets, `--timeout S` or Ctrl-C.
    Capture(capture::CaptureArgs),
    /// Send the frames of a pcap file out of an interface, in order.
    Replay(capture::ReplayArgs),
    /// Every BPF program in the kernel with its events/s, average run time
    /// and CPU share, refreshed every interval (a terminal UI; --json
    /// --count N for scripts). Statistics are on while it runs.
    Top(top::TopArgs),
    /// Classic BPF (tcpdump's, socket filters', seccomp's): print a program
    /// as libpcap's listing (`tcpdump -d`), C initializers (`-dd`) or
    /// numbers (`-ddd`), assemble a listing, check the kernel's rules.
    Cbpf {
        #[command(subcommand)]
        cmd: CbpfCmd,
    },
    /// Show the programs, maps and BTF of a BPF ELF object.
    Inspect {
        /// A `.o` BPF object.
        file: PathBuf,
    },
    /// Run a program: raw bytecode or assembly (prints r0), or a program of a
    /// BPF ELF object on packets (per-packet verdicts and a summary).
    Run(commands::RunArgs),
    /// Load an object into the kernel, attach its programs to the hooks
    /// their sections name, stream ring-buffer records until Ctrl-C or
    /// --duration, then detach everything and print the maps.
    Attach(attach::AttachArgs),
    /// Run a bpftrace script (oxbpf's own compiler: no LLVM): `oxbpf trace
    /// -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }'`.
    Trace(trace::TraceArgs),
    /// Ready tools in the tracing language, shipped inside oxbpf:
    /// `oxbpf tool list`, `oxbpf tool NAME [OPTIONS]` (`--help` for each).
    Tool {
        /// `list`, or a tool's name and its options.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "list|NAME [OPTIONS]"
        )]
        args: Vec<String>,
    },
    /// Programs loaded in the kernel (bpftool prog).
    #[command(subcommand)]
    Prog(manage::ProgCmd),
    /// Maps in the kernel: list, dump, lookup, update, delete (bpftool map).
    #[command(subcommand)]
    Map(manage::MapCmd),
    /// Links in the kernel: list, detach (bpftool link).
    #[command(subcommand)]
    Link(manage::LinkCmd),
    /// BTF types of an object, of a kernel BTF object, or of vmlinux.
    #[command(subcommand)]
    Btf(manage::BtfCmd),
    /// Verify every program of objects (files or directories of `.o`) and
    /// report verdicts; exit 0 if all are accepted, 1 if any is rejected, 2
    /// if an input could not be loaded.
    Verify(verify::VerifyArgs),
    /// Time the benchmark programs on oxbpf's JIT and interpreter, rbpf's
    /// JIT and native code side by side, and the JIT's compile speed (runs
    /// the `oxbpf-bench` harness installed beside this binary).
    Bench {
        /// What to time: `jit` (execution: oxbpf's JIT and interpreter,
        /// rbpf, native code), `attach` (attach and detach on live events,
        /// against bpftrace; then the ring-buffer rows) or `ring`
        /// (ring-buffer consumption against libbpf only) or `trace`
        /// (`oxbpf trace` against bpftrace on the same scripts) or
        /// `trace-cost` (per-event cost of the code `oxbpf trace` generates,
        /// against bpftrace and hand-written C) or `tools` (`oxbpf tool`
        /// against bpftrace's own tools on the same workloads) or `filter`
        /// (packet filters in every engine against libpcap).
        #[arg(default_value = "jit", value_parser = ["jit", "attach", "ring", "trace", "trace-cost", "tools", "filter"])]
        what: String,
        /// Check that every engine agrees and time each once (fast).
        #[arg(long)]
        quick: bool,
    },
    /// Verify every program of objects with oxbpf and with the kernel and
    /// print both totals, the ratio and oxbpf's peak memory (runs the
    /// `oxbpf-bench` harness installed beside this binary).
    BenchVerifier {
        /// Objects or directories (default: ../shared/ebpf-samples).
        paths: Vec<PathBuf>,
        /// Runs per program; the best is kept.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// One JSON object per program (times, instructions processed,
        /// states, both verifiers), then `{"summary": ...}`.
        #[arg(long)]
        json: bool,
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
    // Invoked as `bpftrace` (a symlink or copy): bpftrace's command line.
    if std::env::args_os()
        .next()
        .and_then(|a| PathBuf::from(a).file_name().map(|f| f.to_os_string()))
        .is_some_and(|f| f == "bpftrace")
    {
        return trace::bpftrace_main();
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Asm { input, output } => commands::asm(&input, output.as_deref()),
        Command::Disasm {
            file,
            section,
            bytes,
        } => commands::disasm(&file, section.as_deref(), bytes),
        Command::Cbpf { cmd } => commands::cbpf(cmd),
        Command::Filter {
            expr,
            listing: _,
            ddd,
            dd,
            ebpf,
            no_optimize,
            link,
            hook,
            output,
            pcap,
            write,
        } => {
            let format = if ddd {
                commands::FilterFormat::Decimal
            } else if dd {
                commands::FilterFormat::C
            } else if ebpf {
                commands::FilterFormat::Ebpf
            } else {
                commands::FilterFormat::Listing
            };
            let opts = oxbpf_cbpf::Options {
                link: if link == "raw" {
                    oxbpf_cbpf::Link::RawIp
                } else {
                    oxbpf_cbpf::Link::Ethernet
                },
                optimize: !no_optimize,
                kernel_vlan: false,
            };
            let hook = match hook.as_str() {
                "tc" => oxbpf_cbpf::Hook::Tc,
                "xdp" => oxbpf_cbpf::Hook::Xdp,
                _ => oxbpf_cbpf::Hook::SocketFilter,
            };
            commands::filter(&expr.join(" "), format, opts, hook, output, pcap, write)
        }
        Command::Capture(a) => capture::capture(&a),
        Command::Replay(a) => capture::replay(&a),
        Command::Top(a) => top::top(&a),
        Command::Inspect { file } => commands::inspect(&file),
        Command::Run(a) => commands::run(a),
        Command::Attach(a) => attach::attach(&a),
        Command::Trace(a) => trace::trace(&a),
        Command::Tool { args } => tools::tool(&args),
        Command::Prog(c) => manage::prog(&c),
        Command::Map(c) => manage::map(&c),
        Command::Link(c) => manage::link(&c),
        Command::Btf(c) => manage::btf(&c),
        Command::Bench { what, quick } => commands::bench(
            [what.as_str()]
                .into_iter()
                .chain(quick.then_some("--quick")),
        ),
        Command::BenchVerifier { paths, runs, json } => commands::bench(
            [
                "verifier".as_ref(),
                "--runs".as_ref(),
                runs.to_string().as_ref(),
            ]
            .into_iter()
            .chain(json.then_some("--json".as_ref()))
            .chain(paths.iter().map(|p| p.as_os_str())),
        ),
        Command::Verify(a) => verify::verify(&a),
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
        // A script's diagnostic is complete as it is (`file:line:col:
        // error: …` with its source line).
        Err(e) if e.is::<trace::ScriptError>() => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
