//! `oxbpf run FILE.o`: run a program of a BPF object on packets or data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use oxbpf_obj::ProgramType;
use oxbpf_vm::loaded::LoadedObject;
use oxbpf_vm::{Checks, Config, Output};

use crate::commands::{RunArgs, read_input};

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

/// The records `oxbpf run --json` prints, one JSON object per line
/// (docs/json.md).
pub(crate) mod json {
    use serde::Serialize;

    /// One run of a program on one input.
    #[derive(Serialize)]
    pub struct Run {
        pub index: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub engine: Option<&'static str>,
        pub return_value: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub executed: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub verdict: Option<String>,
        /// The packet after the run, hex.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub packet: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub redirect: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration_ns: Option<u64>,
    }

    /// A run that failed.
    #[derive(Serialize)]
    pub struct RunError {
        pub index: usize,
        pub error: String,
        pub error_kind: &'static str,
        pub pc: usize,
    }

    /// A `bpf_trace_printk` line.
    #[derive(Serialize)]
    pub struct Printk<'a> {
        pub trace_printk: &'a str,
    }

    /// A ring buffer record.
    #[derive(Serialize)]
    pub struct Ringbuf<'a> {
        pub ringbuf: &'a str,
        pub data: String,
    }

    /// A perf event record.
    #[derive(Serialize)]
    pub struct PerfEvent<'a> {
        pub perf_event: &'a str,
        pub cpu: u32,
        pub data: String,
    }

    /// A map's contents, keys and values in hex and, when the object has
    /// BTF for them, decoded.
    #[derive(Serialize)]
    pub struct Map<'a> {
        pub map: &'a str,
        pub entries: Vec<Entry>,
    }

    #[derive(Serialize)]
    pub struct Entry {
        pub key: String,
        pub value: String,
        /// The key decoded through BTF (numbers, strings, objects with
        /// field names, arrays), absent without BTF.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key_btf: Option<serde_json::Value>,
        /// The value decoded through BTF; for per-CPU maps an array with
        /// one element per CPU.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub value_btf: Option<serde_json::Value>,
        /// A per-CPU map's values summed over the CPUs (integers, member
        /// by member), absent for other maps.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub value_sum: Option<serde_json::Value>,
    }

    /// A decoded BTF value as JSON.
    pub fn btf_value(v: &oxbpf_obj::btfvalue::Value) -> serde_json::Value {
        use oxbpf_obj::btfvalue::Value as V;
        use serde_json::Value as J;
        match v {
            V::Int(i) => i64::try_from(*i).map_or_else(|_| J::String(i.to_string()), J::from),
            V::Uint(u) => u64::try_from(*u).map_or_else(|_| J::String(u.to_string()), J::from),
            V::Bool(b) => J::Bool(*b),
            V::Str(s) | V::Enum(s) => J::String(s.clone()),
            V::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            V::Ptr(p) => J::String(format!("{p:#x}")),
            V::Array(items) => J::Array(items.iter().map(btf_value).collect()),
            V::Struct(fields) => J::Object(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, (name, v))| {
                        let key = if name.is_empty() {
                            format!("<anon{i}>")
                        } else {
                            name.clone()
                        };
                        (key, btf_value(v))
                    })
                    .collect(),
            ),
            V::Bytes(b) => J::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        }
    }

    /// One line of JSON.
    pub fn line<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
}

fn inputs_of(a: &RunArgs) -> Result<Vec<Vec<u8>>> {
    Ok(
        match (&a.pcap, &a.data.as_ref().or(a.mem.as_ref()), &a.mem_hex) {
            (Some(p), _, _) => {
                let raw = read_input(p)?;
                let (_, pkts) = oxbpf_pcap::read(&raw).with_context(|| p.display().to_string())?;
                pkts.into_iter().map(|p| p.data).collect()
            }
            (None, Some(p), _) => vec![read_input(p)?],
            (None, None, Some(h)) => vec![crate::commands::parse_hex(h)?],
            (None, None, None) => {
                // Say what the one run gets, so nobody mistakes it for a
                // run on real input.
                eprintln!(
                    "note: no input given (--pcap, --data or --mem-hex): running once on an empty input (an empty packet for packet programs, a zeroed context for the others)"
                );
                vec![Vec::new()]
            }
        },
    )
}

/// The same run in the kernel: the object loaded with bpf(2), each input
/// run with BPF_PROG_TEST_RUN, the maps read back.
fn run_kernel(
    a: &RunArgs,
    obj: &oxbpf_obj::Object,
    override_type: Option<ProgramType>,
    path: &str,
) -> Result<ExitCode> {
    oxbpf_sys::available()
        .map_err(|e| anyhow!("the kernel engine needs bpf(2) (run as root): {e}"))?;
    let k = oxbpf_sys::object::load_object(obj, override_type);
    let idx = match &a.name {
        Some(n) => k
            .programs
            .iter()
            .position(|p| &p.def.name == n || &p.def.section == n)
            .ok_or_else(|| anyhow!("{path}: no program `{n}`"))?,
        None => 0,
    };
    let kp = k
        .programs
        .get(idx)
        .ok_or_else(|| anyhow!("{path}: the object has no programs"))?;
    let prog = kp
        .verdict
        .prog
        .as_ref()
        .map_err(|e| anyhow!("{path}: the kernel rejected `{}`: {e}", kp.def.name))?;
    let inputs = inputs_of(a)?;
    let mut out = std::io::stdout().lock();
    let mut summary: BTreeMap<String, u64> = BTreeMap::new();
    for (i, input) in inputs.iter().enumerate() {
        // Test runs of packet programs need at least an Ethernet header.
        let mut data = input.clone();
        if data.len() < 14 {
            data.resize(14, 0);
        }
        let r = prog
            .test_run(&data, None, a.repeat.max(1) as u32)
            .map_err(|e| anyhow!("{path}: {e}"))?;
        let r0 = r.retval as u64;
        let verdict = oxbpf_vm::loaded::verdict_name(kp.kind, r0);
        *summary
            .entry(verdict.clone().unwrap_or_else(|| format!("{r0:#x}")))
            .or_default() += 1;
        if a.json {
            let line = json::Run {
                index: i,
                engine: Some("kernel"),
                return_value: r0,
                executed: None,
                verdict: verdict.clone(),
                packet: Some(hex(&r.data_out)),
                redirect: None,
                duration_ns: Some(r.duration_ns as u64),
            };
            writeln!(out, "{}", json::line(&line))?;
        } else {
            let v = verdict.map(|v| format!("{v} ")).unwrap_or_default();
            writeln!(
                out,
                "run {i}: {v}(r0 = {r0:#x}, {} ns in the kernel)",
                r.duration_ns
            )?;
            if a.show_packet {
                writeln!(out, "  packet: {}", hex(&r.data_out))?;
            }
        }
    }
    if !a.json {
        let parts: Vec<String> = summary.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        writeln!(
            out,
            "summary: {}; {}",
            crate::verify::plural(inputs.len(), "run", "runs"),
            parts.join(", ")
        )?;
    }
    if a.dump_maps {
        for (mi, m) in k.maps.iter().enumerate() {
            let Some(m) = m else { continue };
            let name = &k.map_names[mi];
            let entries = m.entries().map_err(|e| anyhow!("map {name}: {e}"))?;
            write_map(&mut out, obj, name, m.spec.map_type, &entries, a.json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(a: &RunArgs, bytes: &[u8]) -> Result<ExitCode> {
    let path = a.program.display().to_string();
    let obj = oxbpf_obj::load(bytes).with_context(|| path.clone())?;
    run_object(a, &obj, &path)
}

/// Runs a program of `obj` (loaded from `path`, or made from a classic
/// filter) as `oxbpf run` does.
pub fn run_object(a: &RunArgs, obj: &oxbpf_obj::Object, path: &str) -> Result<ExitCode> {
    let obj = obj.clone();
    let path = path.to_string();
    let override_type = match &a.prog_type {
        Some(t) => Some(crate::commands::parse_prog_type(t)?),
        None => None,
    };
    if a.engine == oxbpf_conformance::engines::EngineKind::Kernel {
        if a.profile {
            bail!(
                "{path}: --profile counts instructions in oxbpf's engines (interpreter or jit), not in the kernel"
            );
        }
        return run_kernel(a, &obj, override_type, &path);
    }
    let mut loaded = LoadedObject::new(&obj, 1, override_type).with_context(|| path.clone())?;
    loaded.config = Config {
        max_call_depth: a.max_call_depth,
        instruction_budget: a.budget,
        engine: a.engine.vm_engine(),
        count_instructions: true,
        blind_constants: a.blind_constants,
        checks: Checks::ON,
    };
    if loaded.programs.is_empty() {
        bail!("{path}: the object has no programs");
    }
    let chosen = match &a.name {
        Some(n) => loaded.program(n),
        None => Some(0),
    };
    if let (false, Some(i)) = (a.no_verify, chosen) {
        let opts = oxbpf_verifier::Options {
            prog_type: override_type.unwrap_or(loaded.programs[i].kind),
            ..Default::default()
        };
        let oi = obj
            .programs
            .iter()
            .position(|p| p.name == loaded.programs[i].def.name)
            .unwrap_or(i);
        if let Err(e) = oxbpf_verifier::verify_object_program(&obj, oi, &opts) {
            eprint!("{}", e.explain(Some(&obj.programs[oi])));
            bail!(
                "{path}: program `{}` rejected by the verifier (use --no-verify to run it with runtime checks only)",
                obj.programs[oi].name
            );
        }
    }
    // The JIT omits memory checks only when every program the chosen one
    // could tail-call passed the verifier too.
    if !a.no_verify && a.engine == oxbpf_conformance::engines::EngineKind::Jit {
        let proven = oxbpf_verifier::prove_object(&obj, override_type)
            .ok()
            .and_then(|proof| loaded.trust(&proof).ok());
        if proven.is_none() {
            eprintln!(
                "note: {path}: not every program of the object passes the verifier; the JIT keeps its memory checks"
            );
        }
    }
    let idx = match &a.name {
        Some(n) => loaded.program(n).ok_or_else(|| {
            let names: Vec<&str> = loaded
                .programs
                .iter()
                .map(|p| p.def.name.as_str())
                .collect();
            anyhow!("{path}: no program `{n}` (have: {})", names.join(", "))
        })?,
        None => 0,
    };
    let inputs = inputs_of(a)?;
    let mut out = std::io::stdout().lock();
    let mut summary: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = false;
    let repeat = a.repeat.max(1);
    let mut profile = a
        .profile
        .then(|| crate::profile::Profile::new(loaded.programs[idx].def.insns.len()));
    for (i, input) in inputs.iter().enumerate() {
        for _ in 0..repeat {
            let run = if a.trace || profile.is_some() {
                let program = loaded.programs[idx].program.clone();
                let mut lines = Vec::new();
                let trace = a.trace;
                let mut counts = profile.as_mut();
                let mut tracer = |pc: usize, before: &[u64; 11], after: &[u64; 11]| {
                    if let Some(p) = counts.as_deref_mut() {
                        p.hit(pc);
                    }
                    if trace {
                        lines.push(crate::commands::trace_line(&program, pc, before, after));
                    }
                };
                let r = loaded
                    .run_traced(idx, input, &mut tracer)
                    .with_context(|| path.clone())?;
                for l in lines {
                    writeln!(out, "{l}")?;
                }
                if let Some(p) = profile.as_mut() {
                    p.runs += 1;
                }
                r
            } else {
                loaded.run(idx, input).with_context(|| path.clone())?
            };
            // Output the program produced, in order.
            for o in loaded.env.take_output() {
                if let Output::Printk(line) = o {
                    if a.json {
                        writeln!(
                            out,
                            "{}",
                            json::line(&json::Printk {
                                trace_printk: &line
                            })
                        )?;
                    } else {
                        writeln!(out, "trace_printk: {line}")?;
                    }
                }
            }
            for (mi, m) in loaded.env.maps.iter().enumerate() {
                for rec in m.ringbuf_drain() {
                    if a.json {
                        let r = json::Ringbuf {
                            ringbuf: &loaded.map_names[mi],
                            data: hex(&rec),
                        };
                        writeln!(out, "{}", json::line(&r))?;
                    } else {
                        writeln!(out, "ringbuf {}: {}", loaded.map_names[mi], hex(&rec))?;
                    }
                }
                for (cpu, rec) in m.perf_drain() {
                    if a.json {
                        let r = json::PerfEvent {
                            perf_event: &loaded.map_names[mi],
                            cpu,
                            data: hex(&rec),
                        };
                        writeln!(out, "{}", json::line(&r))?;
                    } else {
                        writeln!(
                            out,
                            "perf {} cpu {cpu}: {}",
                            loaded.map_names[mi],
                            hex(&rec)
                        )?;
                    }
                }
            }
            match &run.result {
                Ok(r) => {
                    let verdict = loaded.verdict(idx, r.r0);
                    *summary
                        .entry(verdict.clone().unwrap_or_else(|| format!("{:#x}", r.r0)))
                        .or_default() += 1;
                    if a.json {
                        let line = json::Run {
                            index: i,
                            engine: None,
                            return_value: r.r0,
                            executed: Some(r.executed),
                            verdict: verdict.clone(),
                            packet: run.packet.as_ref().map(|p| hex(p)),
                            redirect: r.packet.and_then(|p| p.redirect).map(u64::from),
                            duration_ns: None,
                        };
                        writeln!(out, "{}", json::line(&line))?;
                    } else if repeat == 1 {
                        let v = verdict.map(|v| format!("{v} ")).unwrap_or_default();
                        let what = if run.packet.is_some() {
                            format!("{}: ", oxbpf_pcap::describe(input))
                        } else {
                            String::new()
                        };
                        writeln!(
                            out,
                            "run {i}: {what}{v}(r0 = {:#x}, {} insns)",
                            r.r0, r.executed
                        )?;
                        if a.show_packet
                            && let Some(p) = &run.packet
                        {
                            writeln!(out, "  packet: {}", hex(p))?;
                        }
                    }
                }
                Err(e) => {
                    failed = true;
                    *summary.entry("error".into()).or_default() += 1;
                    if a.json {
                        let line = json::RunError {
                            index: i,
                            error: e.to_string(),
                            error_kind: e.kind(),
                            pc: e.pc(),
                        };
                        writeln!(out, "{}", json::line(&line))?;
                    } else {
                        writeln!(out, "run {i}: error: {e}")?;
                    }
                }
            }
        }
    }
    if let Some(p) = &profile {
        // The JIT's own time per run, over the same inputs.
        let jit_ns = (a.engine == oxbpf_conformance::engines::EngineKind::Jit).then(|| {
            let start = std::time::Instant::now();
            let mut n = 0u64;
            for input in &inputs {
                for _ in 0..repeat {
                    let _ = loaded.run(idx, input);
                    n += 1;
                }
            }
            start.elapsed().as_nanos() as f64 / n.max(1) as f64
        });
        let lp = &loaded.programs[idx];
        let mut src = crate::profile::Sources::new(Some(&a.program));
        write!(
            out,
            "{}",
            crate::profile::report(&lp.def, &lp.program, p, jit_ns, &mut src)
        )?;
        if let Some(h) = &a.html {
            std::fs::write(
                h,
                crate::profile::html(&lp.def, &lp.program, p, jit_ns, &mut src),
            )
            .with_context(|| format!("writing {}", h.display()))?;
        }
    }
    if !a.json {
        let parts: Vec<String> = summary.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        writeln!(
            out,
            "summary: {}; {}",
            crate::verify::plural(inputs.len() * repeat as usize, "run", "runs"),
            parts.join(", ")
        )?;
    }
    if a.dump_maps {
        for (mi, m) in loaded.env.maps.iter().enumerate() {
            let name = &loaded.map_names[mi];
            let entries = m.entries();
            write_map(&mut out, &obj, name, m.spec.map_type, &entries, a.json)?;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Decodes a map's keys and values through the object's BTF, as `bpftool
/// map dump` does (`None` without BTF for the map, or for bytes whose
/// length is not the type's size; per-CPU values split per CPU).
pub(crate) struct MapTypes<'o> {
    btf: std::borrow::Cow<'o, oxbpf_obj::Btf>,
    key: u32,
    value: u32,
}

impl<'o> MapTypes<'o> {
    /// Key and value types `key`/`value` of `btf` (0: none).
    pub(crate) fn new(btf: &'o oxbpf_obj::Btf, key: u32, value: u32) -> MapTypes<'o> {
        MapTypes {
            btf: std::borrow::Cow::Borrowed(btf),
            key,
            value,
        }
    }

    fn of(obj: &'o oxbpf_obj::Object, name: &str) -> Option<MapTypes<'o>> {
        let def = obj.maps.iter().find(|d| d.name == name)?;
        let mut btf = std::borrow::Cow::Borrowed(obj.btf.as_ref()?);
        // A global-data map (`.data`, `.rodata`, `.bss`) holds its section,
        // which BTF describes as a DATASEC of that name; clang leaves its
        // size and offsets zero, so read them from the kernel's copy.
        let mut value = def.btf_value_type_id;
        if value == 0
            && let Some((id, _)) = btf.datasec(name)
            && let Some(fixed) = obj
                .btf_for_kernel()
                .and_then(|raw| oxbpf_obj::Btf::parse(&raw).ok())
        {
            value = id;
            btf = std::borrow::Cow::Owned(fixed);
        }
        Some(MapTypes {
            btf,
            key: def.btf_key_type_id,
            value,
        })
    }

    fn key(&self, k: &[u8]) -> Option<oxbpf_obj::btfvalue::Value> {
        (self.key != 0)
            .then(|| self.btf.decode(self.key, k))
            .flatten()
    }

    fn value(&self, v: &[u8]) -> Option<oxbpf_obj::btfvalue::Value> {
        if self.value == 0 {
            return None;
        }
        if let Some(d) = self.btf.decode(self.value, v) {
            return Some(d);
        }
        self.per_cpu(v).map(oxbpf_obj::btfvalue::Value::Array)
    }

    /// A per-CPU map's value, one decoded value per CPU: the kernel pads
    /// each CPU's copy to 8 bytes (`round_up(value_size, 8)`), oxbpf's own
    /// maps lay them back to back.
    fn per_cpu(&self, v: &[u8]) -> Option<Vec<oxbpf_obj::btfvalue::Value>> {
        let size = self.btf.size_of(self.value)? as usize;
        if size == 0 {
            return None;
        }
        let padded = size.div_ceil(8) * 8;
        let stride = if v.len().is_multiple_of(padded) {
            padded
        } else if v.len().is_multiple_of(size) {
            size
        } else {
            return None;
        };
        v.chunks_exact(stride)
            .map(|c| self.btf.decode(self.value, &c[..size]))
            .collect()
    }

    /// The per-CPU values of `v` summed (integers, member by member).
    fn sum(&self, v: &[u8]) -> Option<oxbpf_obj::btfvalue::Value> {
        if self.value == 0 || self.btf.decode(self.value, v).is_some() {
            return None;
        }
        oxbpf_obj::btfvalue::Value::sum(&self.per_cpu(v)?)
    }
}

/// Prints a map's entries: one JSON object, or a header and `key => value`
/// lines, decoded through the object's BTF when it describes the map and
/// in hex otherwise (all-zero array entries, always present, are counted
/// but not shown).
pub(crate) fn write_map(
    out: &mut impl std::io::Write,
    obj: &oxbpf_obj::Object,
    name: &str,
    map_type: u32,
    entries: &[(Vec<u8>, Vec<u8>)],
    json: bool,
) -> std::io::Result<()> {
    let types = MapTypes::of(obj, name);
    write_entries(out, types.as_ref(), name, map_type, entries, json)
}

/// [`write_map`] with the types given (a kernel map's BTF, or none).
pub(crate) fn write_entries(
    out: &mut impl std::io::Write,
    types: Option<&MapTypes<'_>>,
    name: &str,
    map_type: u32,
    entries: &[(Vec<u8>, Vec<u8>)],
    json: bool,
) -> std::io::Result<()> {
    if json {
        let m = json::Map {
            map: name,
            entries: entries
                .iter()
                .map(|(k, v)| json::Entry {
                    key: hex(k),
                    value: hex(v),
                    key_btf: types.and_then(|t| t.key(k)).map(|d| json::btf_value(&d)),
                    value_btf: types.and_then(|t| t.value(v)).map(|d| json::btf_value(&d)),
                    value_sum: types.and_then(|t| t.sum(v)).map(|d| json::btf_value(&d)),
                })
                .collect(),
        };
        return writeln!(out, "{}", json::line(&m));
    }
    let is_array = matches!(
        map_type,
        oxbpf_abi::map_type::ARRAY | oxbpf_abi::map_type::PERCPU_ARRAY
    );
    let shown: Vec<_> = entries
        .iter()
        .filter(|(_, v)| !is_array || v.iter().any(|&b| b != 0))
        .collect();
    writeln!(
        out,
        "map {name} ({}):",
        crate::verify::plural(entries.len(), "entry", "entries")
    )?;
    for (k, v) in &shown {
        let key = types
            .and_then(|t| t.key(k))
            .map_or_else(|| hex(k), |d| d.to_string());
        let value = types
            .and_then(|t| t.value(v))
            .map_or_else(|| hex(v), |d| d.to_string());
        match types.and_then(|t| t.sum(v)) {
            Some(sum) => writeln!(out, "  {key} => {value} (sum {sum})")?,
            None => writeln!(out, "  {key} => {value}")?,
        }
    }
    let hidden = entries.len() - shown.len();
    if hidden > 0 {
        writeln!(
            out,
            "  ({} not shown)",
            crate::verify::plural(hidden, "all-zero entry", "all-zero entries")
        )?;
    }
    Ok(())
}
