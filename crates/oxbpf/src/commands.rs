//! Implementations of the subcommands.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use oxbpf_isa::{Hex, RawInsn, decode_at, raw_slots};
use oxbpf_vm::{Checks, Config, Helpers, Program, Vm};

use oxbpf_conformance::engines::{ConformanceEngine, EngineKind};

/// The rule for what a file holds: a `.o` file must be a BPF ELF object;
/// raw bytecode comes from `.bin` (or any other name) and assembly from `.s`.
pub fn check_object_rule(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.extension().is_some_and(|e| e == "o") && !oxbpf_obj::is_elf(bytes) {
        bail!(
            "{}: not an ELF object: a .o file must be a BPF ELF object (raw bytecode is read from .bin files, assembly from .s)",
            path.display()
        );
    }
    Ok(())
}

/// A program type named on the command line, or an error listing the
/// names there are.
pub fn parse_prog_type(name: &str) -> Result<oxbpf_obj::ProgramType> {
    oxbpf_obj::ProgramType::from_user_name(name).ok_or_else(|| {
        let names: Vec<&str> = oxbpf_obj::ProgramType::ALL
            .iter()
            .skip(1)
            .map(|t| t.name())
            .collect();
        anyhow::anyhow!(
            "unknown program type `{name}`; the types are {} (also: socket, tc, classifier, action, tp, raw_tp, sockops, uprobe)",
            names.join(", ")
        )
    })
}

/// `oxbpf run PROG.bin --json`: the run's result (docs/json.md).
#[derive(serde::Serialize)]
struct RawRun {
    engine: &'static str,
    return_value: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    executed: Option<u64>,
}

/// `oxbpf run PROG.bin --json`: a run that failed.
#[derive(serde::Serialize)]
struct RawRunError {
    engine: &'static str,
    error: String,
    error_kind: &'static str,
    pc: usize,
}

pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Ok(v)
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

pub fn asm(input: &Path, output: Option<&Path>) -> Result<ExitCode> {
    let src = String::from_utf8(read_input(input)?)
        .with_context(|| format!("{} is not UTF-8 text", input.display()))?;
    let bytes = oxbpf_asm::assemble_bytes(&src).map_err(|errs| {
        let msg: Vec<String> = errs
            .0
            .iter()
            .map(|e| format!("{}:{e}", input.display()))
            .collect();
        anyhow::anyhow!("{}", msg.join("\n"))
    })?;
    match output {
        Some(out) => std::fs::write(out, &bytes)
            .with_context(|| format!("cannot write {}", out.display()))?,
        None => {
            let mut s = String::new();
            for slot in bytes.chunks(8) {
                for b in slot {
                    let _ = write!(s, "{b:02x}");
                }
                s.push('\n');
            }
            print!("{s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per instruction, in llvm-objdump's layout.
fn disasm_slots(slots: &[RawInsn], symbols: &[oxbpf_obj::Symbol], bytes: bool, out: &mut String) {
    let mut i = 0;
    while i < slots.len() {
        for s in symbols.iter().filter(|s| s.offset == (i * 8) as u64) {
            let _ = writeln!(out, "\n{:016x} <{}>:", s.offset, s.name);
        }
        let (text, n) = match decode_at(slots, i) {
            Ok(insn) => (insn.text(), insn.slots()),
            Err(e) => (format!("<unknown> ; {e}"), 1),
        };
        let _ = write!(out, "{i:>8}:\t");
        if bytes {
            for s in &slots[i..(i + n).min(slots.len())] {
                for b in s.to_bytes() {
                    let _ = write!(out, "{b:02x} ");
                }
            }
            out.pop();
            out.push('\t');
        }
        let _ = writeln!(out, "{text}");
        i += n;
    }
}

pub fn disasm(file: &Path, section: Option<&str>, bytes: bool) -> Result<ExitCode> {
    let data = read_input(file)?;
    check_object_rule(file, &data)?;
    let mut out = String::new();
    if oxbpf_obj::is_elf(&data) {
        let sections =
            oxbpf_obj::code_sections(&data).with_context(|| format!("{}", file.display()))?;
        let mut found = false;
        for s in &sections {
            if section.is_some_and(|want| want != s.name) {
                continue;
            }
            found = true;
            let slots = raw_slots(&s.data).with_context(|| format!("section {}", s.name))?;
            let _ = writeln!(out, "\nDisassembly of section {}:", s.name);
            disasm_slots(&slots, &s.symbols, bytes, &mut out);
        }
        if let Some(want) = section
            && !found
        {
            let names: Vec<&str> = sections.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "{}: no code section `{want}` (have: {})",
                file.display(),
                names.join(", ")
            );
        }
    } else {
        let slots = raw_slots(&data).with_context(|| format!("{}", file.display()))?;
        disasm_slots(&slots, &[], bytes, &mut out);
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Parses "00 01 ff" / "0001ff" into bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        bail!("hex input has an odd number of digits");
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .with_context(|| format!("invalid hex byte `{}`", &digits[i..i + 2]))
        })
        .collect()
}

/// Whether `path` names a bare program rather than an object: assembly
/// (`.s`, `.S`, `.asm`) or raw bytecode (`.bin`).
pub fn is_bare_program(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e == "s" || e == "asm" || e == "S" || e == "bin")
}

/// Reads a program file: raw bytecode, or assembly by extension.
fn load_program_file(path: &Path) -> Result<Vec<u8>> {
    program_bytes(path, read_input(path)?)
}

/// A program file's bytecode: `data` itself, or assembled when the
/// extension says assembly.
pub fn program_bytes(path: &Path, data: Vec<u8>) -> Result<Vec<u8>> {
    let is_asm = path
        .extension()
        .is_some_and(|e| e == "s" || e == "asm" || e == "S");
    if is_asm {
        let src =
            String::from_utf8(data).with_context(|| format!("{} is not text", path.display()))?;
        return oxbpf_asm::assemble_bytes(&src).map_err(|errs| {
            let msg: Vec<String> = errs
                .0
                .iter()
                .map(|e| format!("{}:{e}", path.display()))
                .collect();
            anyhow::anyhow!("{}", msg.join("\n"))
        });
    }
    Ok(data)
}

/// One `--trace` line: pc, instruction, and the registers it changed.
pub fn trace_line(program: &Program, pc: usize, before: &[u64; 11], after: &[u64; 11]) -> String {
    let text = program
        .instruction_at(pc)
        .map(|i| i.text())
        .unwrap_or_default();
    let mut line = format!("{pc:>6}: {text:<40}");
    for (r, (b, a)) in before.iter().zip(after).enumerate() {
        if b != a {
            let _ = write!(line, " r{r}={}", Hex(*a as i64));
        }
    }
    line.trim_end().to_string()
}

/// How loops are verified (`--loops`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoopMode {
    /// Every iteration walked, as the kernel does (bounded loops only).
    Unroll,
    /// Widening at loop heads: any trip count; termination by budget.
    Widen,
}

/// `oxbpf run`: what to run, on what, how.
#[derive(clap::Args)]
pub struct RunArgs {
    /// A BPF object (`.o`), raw bytecode (`.bin`) or assembly (`.s`, `.asm`);
    /// a classic filter (`.cbpf`, or with --classic: binary, `tcpdump
    /// -ddd` numbers or a `tcpdump -d` listing), run as a socket filter.
    pub program: PathBuf,
    /// The program is classic BPF (translated to eBPF as the kernel does).
    #[arg(long)]
    pub classic: bool,
    /// Program of the object to run (function or section name; default: the first).
    #[arg(long = "program", short = 'p')]
    pub name: Option<String>,
    /// Program type when the section name does not say (xdp, tc, socket, ...).
    #[arg(long = "type")]
    pub prog_type: Option<String>,
    /// Packets to run the program on, one run per packet.
    #[arg(long, conflicts_with_all = ["mem", "mem_hex", "data"])]
    pub pcap: Option<PathBuf>,
    /// One input (packet, context or memory) from a file.
    #[arg(long, conflicts_with_all = ["mem", "mem_hex"])]
    pub data: Option<PathBuf>,
    /// Print the maps' contents at the end.
    #[arg(long)]
    pub dump_maps: bool,
    /// Print each output packet in hex.
    #[arg(long)]
    pub show_packet: bool,
    /// File whose bytes are the input memory (r1 = address, r2 = length).
    #[arg(long, conflicts_with = "mem_hex")]
    pub mem: Option<PathBuf>,
    /// Input memory as hex bytes ("00 01 ff" or "0001ff").
    #[arg(long)]
    pub mem_hex: Option<String>,
    #[arg(long, value_enum, default_value_t = EngineKind::Interpreter)]
    pub engine: EngineKind,
    /// Print each executed instruction with the registers it changed.
    #[arg(long)]
    pub trace: bool,
    /// Stop after this many instructions.
    #[arg(long)]
    pub budget: Option<u64>,
    /// Maximum stack frames for bpf-to-bpf calls.
    #[arg(long, default_value_t = 8)]
    pub max_call_depth: usize,
    /// Run the program this many times (reports the last result).
    #[arg(long, default_value_t = 1)]
    pub repeat: u64,
    /// Print one JSON object per run.
    #[arg(long)]
    pub json: bool,
    /// Skip oxbpf's verifier (the interpreter and the JIT then check
    /// every memory access at run time).
    #[arg(long)]
    pub no_verify: bool,
    /// How the verifier proves loops: `unroll` walks every iteration as
    /// the kernel does; `widen` proves memory safety for any trip count by
    /// abstract interpretation (termination then rests on --budget, which
    /// is required for such programs).
    #[arg(long, value_enum, default_value_t = LoopMode::Unroll)]
    pub loops: LoopMode,
    /// JIT: blind constants (no program immediate appears in the
    /// generated code).
    #[arg(long)]
    pub blind_constants: bool,
    /// Count how often each instruction and source line ran over all the
    /// runs and print them, hottest lines first (objects; with `--engine
    /// jit` also the JIT's time per run).
    #[arg(long)]
    pub profile: bool,
    /// With --profile: also write the profile as one HTML page.
    #[arg(long, requires = "profile")]
    pub html: Option<PathBuf>,
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let head = std::fs::read(&a.program)
        .with_context(|| format!("cannot read {}", a.program.display()))?;
    check_object_rule(&a.program, &head)?;
    if oxbpf_obj::is_elf(&head) {
        return crate::object_run::run(&a, &head);
    }
    if a.classic || a.program.extension().is_some_and(|e| e == "cbpf") {
        let path = a.program.display().to_string();
        let classic = oxbpf_cbpf::read(&head).with_context(|| path.clone())?;
        let obj = classic_object("filter", &classic, oxbpf_cbpf::Hook::SocketFilter)
            .with_context(|| path.clone())?;
        return crate::object_run::run_object(&a, &obj, &path);
    }
    if a.pcap.is_some() || a.name.is_some() || a.profile {
        bail!(
            "{}: --pcap, --program and --profile apply to BPF objects (.o)",
            a.program.display()
        );
    }
    let code = load_program_file(&a.program)?;
    let program = Program::from_bytes(&code).with_context(|| format!("{}", a.program.display()))?;
    let verify = !a.no_verify && a.engine != EngineKind::Kernel;
    let mut proof = None;
    if verify {
        let mem_len = match (&a.mem, &a.mem_hex, &a.data) {
            (Some(p), _, _) | (None, None, Some(p)) => {
                std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
            }
            (None, Some(h), _) => parse_hex(h)?.len() as u64,
            (None, None, None) => 0,
        };
        let opts = oxbpf_verifier::Options {
            raw_mem_len: Some(mem_len),
            widen_loops: a.loops == LoopMode::Widen,
            ..Default::default()
        };
        match oxbpf_verifier::prove(program.slots(), &opts) {
            Ok(p) if p.needs_budget() && a.budget.is_none() => bail!(
                "{}: the verifier proved memory safety with widened loops but not termination: give an instruction budget (--budget N)",
                a.program.display()
            ),
            Ok(p) => proof = Some(p),
            Err(e) => {
                eprint!("{}", e.explain(None));
                bail!(
                    "{}: rejected by the verifier (use --no-verify to run it with runtime checks only)",
                    a.program.display()
                );
            }
        }
    }
    let mem = match (&a.mem, &a.mem_hex, &a.data) {
        (Some(p), _, _) | (None, None, Some(p)) => read_input(p)?,
        (None, Some(h), _) => parse_hex(h)?,
        (None, None, None) => Vec::new(),
    };
    let mut vm = Vm::new(program);
    vm.helpers = Helpers::conformance();
    vm.config = Config {
        max_call_depth: a.max_call_depth,
        instruction_budget: a.budget,
        engine: a.engine.vm_engine(),
        count_instructions: true,
        blind_constants: a.blind_constants,
        checks: Checks::ON,
    };
    if let Some(p) = &proof {
        // The verifier accepted exactly this program for this memory
        // length: the JIT may omit its checks.
        vm.trust(p)?;
    }
    if a.engine == EngineKind::Kernel {
        let mut mem = mem;
        return match oxbpf_conformance::Engine::run(
            &ConformanceEngine {
                kind: EngineKind::Kernel,
            },
            &code,
            &mut mem,
        ) {
            Ok(r0) => {
                if a.json {
                    let line = RawRun {
                        engine: "kernel",
                        return_value: r0,
                        executed: None,
                    };
                    println!("{}", serde_json::to_string(&line)?);
                } else {
                    println!("{r0:#x}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => bail!("{}: {e}", a.program.display()),
        };
    }
    let mut last = None;
    for _ in 0..a.repeat.max(1) {
        let mut m = mem.clone();
        let result = if a.trace {
            let program = &vm.program;
            let mut out = std::io::stdout().lock();
            let mut tracer = |pc: usize, before: &[u64; 11], after: &[u64; 11]| {
                let _ = writeln!(out, "{}", trace_line(program, pc, before, after));
            };
            vm.run_raw_traced(&mut m, &mut tracer)
        } else {
            vm.run_raw(&mut m)
        };
        last = Some(result);
    }
    match last.expect("at least one run") {
        Ok(r) => {
            if a.json {
                let line = RawRun {
                    engine: a.engine.name(),
                    return_value: r.r0,
                    executed: Some(r.executed),
                };
                println!("{}", serde_json::to_string(&line)?);
            } else {
                println!("{:#x}", r.r0);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if a.json {
                let line = RawRunError {
                    engine: a.engine.name(),
                    error: e.to_string(),
                    error_kind: e.kind(),
                    pc: e.pc(),
                };
                println!("{}", serde_json::to_string(&line)?);
            }
            bail!("{}: {e}", a.program.display())
        }
    }
}

pub fn conformance(paths: &[PathBuf], engine: EngineKind, verbose: bool) -> Result<ExitCode> {
    let files = oxbpf_conformance::collect_files(paths)?;
    if files.is_empty() {
        bail!("no .data files found");
    }
    let eng = ConformanceEngine { kind: engine };
    let tty = std::io::stderr().is_terminal();
    let summary = oxbpf_conformance::run_files(&files, &eng, |name, msg| {
        println!("FAIL {name}: {msg}");
    });
    if verbose {
        for f in &files {
            let name = f.display().to_string();
            if !summary.failures.iter().any(|(n, _)| *n == name) {
                println!("PASS {name}");
            }
        }
    }
    if tty {
        eprintln!("engine: {}", engine.name());
    }
    println!("{} passed, {} failed", summary.passed, summary.failed);
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn plugin(
    memory: Option<&str>,
    options: Option<&str>,
    engine: Option<EngineKind>,
) -> Result<ExitCode> {
    let kind = engine
        .or_else(|| {
            options.and_then(|o| {
                o.split_whitespace().find_map(|w| {
                    <EngineKind as clap::ValueEnum>::from_str(
                        w.trim_start_matches("--engine="),
                        true,
                    )
                    .ok()
                })
            })
        })
        .unwrap_or(EngineKind::Interpreter);
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let program = parse_hex(&input)?;
    let mut mem = parse_hex(memory.unwrap_or(""))?;
    let eng = ConformanceEngine { kind };
    match oxbpf_conformance::Engine::run(&eng, &program, &mut mem) {
        Ok(r0) => {
            println!("{r0:x}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // The runner compares stdout with the expected error text.
            println!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// How `oxbpf filter` prints the program.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FilterFormat {
    Listing,
    Decimal,
    C,
    Ebpf,
}

/// A classic program as an eBPF object with one program: a socket filter
/// (section `socket`, the kernel's translation), or a tc (`tc`) or XDP
/// (`xdp`) program that passes what the filter keeps.
pub(crate) fn classic_object(
    name: &str,
    p: &[oxbpf_cbpf::Insn],
    hook: oxbpf_cbpf::Hook,
) -> Result<oxbpf_obj::Object> {
    let ebpf = oxbpf_cbpf::to_ebpf_for(p, hook)?;
    let mut obj = oxbpf_obj::Object::from_raw_program(name, oxbpf_isa::encode_all(ebpf.iter()));
    let (kind, section) = match hook {
        oxbpf_cbpf::Hook::SocketFilter => (oxbpf_obj::ProgramType::SocketFilter, "socket"),
        oxbpf_cbpf::Hook::Tc => (oxbpf_obj::ProgramType::SchedCls, "tc"),
        oxbpf_cbpf::Hook::Xdp => (oxbpf_obj::ProgramType::Xdp, "xdp"),
    };
    obj.programs[0].kind = kind;
    obj.programs[0].section = section.into();
    // BTF for the one function: `int NAME(void *skb)`.
    use oxbpf_obj::btf::Kind;
    let mut b = oxbpf_obj::btfbuild::Builder::new();
    let int = b.add_kind(
        "int",
        Kind::Int {
            size: 4,
            encoding: 1,
            offset: 0,
            bits: 32,
        },
    );
    let ctx = b.add_kind("", Kind::Ptr { target: 0 });
    let proto = b.add_kind(
        "",
        Kind::FuncProto {
            ret: int,
            params: vec![("skb".into(), ctx)],
        },
    );
    let func = b.add_kind(name, Kind::Func { proto, linkage: 1 });
    obj.btf = Some(b.finish()?);
    obj.programs[0].func_info = vec![oxbpf_obj::btf::FuncInfo {
        insn: 0,
        type_id: func,
    }];
    Ok(obj)
}

/// A compiler error with the expression and a caret under the column.
pub fn filter_error(expr: &str, e: oxbpf_cbpf::FilterError) -> anyhow::Error {
    anyhow::anyhow!("{e}\n  {expr}\n  {:>w$}", "^", w = e.col)
}

/// `oxbpf filter EXPR`.
pub fn filter(
    expr: &str,
    format: FilterFormat,
    mut opts: oxbpf_cbpf::Options,
    hook: oxbpf_cbpf::Hook,
    output: Option<PathBuf>,
    pcap: Option<PathBuf>,
    write: Option<PathBuf>,
) -> Result<ExitCode> {
    // A capture file says what its frames start with, as for tcpdump -r.
    let input = match &pcap {
        Some(path) => {
            let data = read_input(path)?;
            let (link, packets) =
                oxbpf_pcap::read(&data).with_context(|| format!("{}", path.display()))?;
            opts.link = oxbpf_cbpf::Link::from_linktype(link).with_context(|| {
                format!(
                    "{}: link type {link}: filters read Ethernet (1) and raw IP (101) captures",
                    path.display()
                )
            })?;
            Some((link, packets))
        }
        None => None,
    };
    // A socket filter and a tc program see a frame after Linux took its
    // outer VLAN tag off (XDP sees it before): for those the first `vlan`
    // reads the tag from the skb.
    let ebpf_out = format == FilterFormat::Ebpf
        || output
            .as_ref()
            .is_some_and(|o| o.extension().is_some_and(|e| e == "o"));
    if ebpf_out && hook != oxbpf_cbpf::Hook::Xdp {
        opts.kernel_vlan = true;
    }
    let p = oxbpf_cbpf::compile_with(expr, &opts).map_err(|e| filter_error(expr, e))?;
    if let Some(o) = &output {
        let bytes = if o.extension().is_some_and(|e| e == "o") {
            oxbpf_obj::write::to_elf(&classic_object("filter", &p, hook)?, &[])?
        } else {
            oxbpf_cbpf::encode(&p)
        };
        std::fs::write(o, bytes).with_context(|| format!("writing {}", o.display()))?;
    }
    if let Some((link, packets)) = input {
        let mut kept = Vec::new();
        for pk in &packets {
            let meta = oxbpf_cbpf::Meta {
                wire_len: Some(pk.orig_len),
                ..Default::default()
            };
            if oxbpf_cbpf::run(&p, &pk.data, &meta) != 0 {
                kept.push(pk.clone());
            }
        }
        match &write {
            Some(w) => std::fs::write(w, oxbpf_pcap::write_linktype(link, &kept))
                .with_context(|| format!("writing {}", w.display()))?,
            None => {
                for pk in &kept {
                    if opts.link == oxbpf_cbpf::Link::Ethernet {
                        println!("{}", oxbpf_pcap::describe(&pk.data));
                    } else {
                        println!("raw IP, {} bytes", pk.data.len());
                    }
                }
            }
        }
        eprintln!("{} of {} packets kept", kept.len(), packets.len());
        return Ok(ExitCode::SUCCESS);
    }
    if output.is_none() {
        match format {
            FilterFormat::Decimal => print!("{}", oxbpf_cbpf::to_decimal(&p)),
            FilterFormat::C => print!("{}", oxbpf_cbpf::to_c(&p)),
            FilterFormat::Listing => print!("{}", oxbpf_cbpf::listing(&p)),
            FilterFormat::Ebpf => {
                let ebpf = oxbpf_cbpf::to_ebpf_for(&p, hook)?;
                let mut out = String::new();
                disasm_slots(&oxbpf_isa::encode_all(ebpf.iter()), &[], false, &mut out);
                print!("{out}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `oxbpf cbpf disasm|asm|check`.
pub fn cbpf(cmd: crate::CbpfCmd) -> Result<ExitCode> {
    use crate::CbpfCmd as C;
    let load = |file: &Path| -> Result<Vec<oxbpf_cbpf::Insn>> {
        let data = read_input(file)?;
        oxbpf_cbpf::read(&data).with_context(|| format!("{}", file.display()))
    };
    match cmd {
        C::Disasm { file, format } => {
            let p = load(&file)?;
            let text = match format.as_str() {
                "listing" => oxbpf_cbpf::listing(&p),
                "c" => oxbpf_cbpf::to_c(&p),
                "decimal" => oxbpf_cbpf::to_decimal(&p),
                f => anyhow::bail!("unknown format {f:?}: listing, c or decimal"),
            };
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        C::Asm { file, output } => {
            let p = load(&file)?;
            std::fs::write(&output, oxbpf_cbpf::encode(&p))
                .with_context(|| format!("writing {}", output.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        C::Check { file } => {
            let p = load(&file)?;
            match oxbpf_cbpf::validate(&p) {
                Ok(()) => {
                    println!("{}: ok ({} instructions)", file.display(), p.len());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("{}: rejected: {e}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

pub fn inspect(file: &Path) -> Result<ExitCode> {
    let data = read_input(file)?;
    let obj = oxbpf_obj::load(&data).with_context(|| format!("{}", file.display()))?;
    let mut out = String::new();
    let _ = writeln!(out, "object: {}", file.display());
    if let Some(l) = &obj.license {
        let _ = writeln!(out, "license: {l}");
    }
    if let Some(v) = obj.kernel_version {
        let _ = writeln!(out, "kernel version: {:#x}", v);
    }
    let _ = writeln!(out, "programs: {}", obj.programs.len());
    for p in &obj.programs {
        let _ = writeln!(
            out,
            "  {:<28} section {:<36} type {:<16} {:>6} insns{}",
            p.name,
            p.section,
            p.kind.name(),
            p.insns.len(),
            p.source_file()
                .map(|f| format!("  source {f}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "maps: {}", obj.maps.len());
    for m in &obj.maps {
        let _ = writeln!(
            out,
            "  {:<28} type {:<18} key {:>4} value {:>6} max_entries {:>7} flags {:#x}{}",
            m.name,
            oxbpf_obj::map_type_name(m.map_type),
            m.key_size,
            m.value_size,
            m.max_entries,
            m.flags,
            m.inner
                .as_ref()
                .map(|i| format!(" inner {}", oxbpf_obj::map_type_name(i.map_type)))
                .unwrap_or_default()
        );
    }
    match &obj.btf {
        Some(b) => {
            let _ = writeln!(out, "btf: {} types", b.len());
        }
        None => {
            let _ = writeln!(out, "btf: none");
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `oxbpf bench` and `oxbpf bench-verifier`: hand over to the `oxbpf-bench`
/// harness beside this binary (crates/oxbpf-bench), which links the peers
/// it measures against so this binary does not.
pub fn bench<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Result<ExitCode> {
    let exe = std::env::current_exe()?.with_file_name("oxbpf-bench");
    if !exe.exists() {
        bail!(
            "the benchmarks run in the `oxbpf-bench` harness, which is not installed beside this binary ({}); build it with `cargo build --release -p oxbpf-bench`",
            exe.display()
        );
    }
    let status = std::process::Command::new(&exe)
        .args(args)
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::from(1),
    })
}
