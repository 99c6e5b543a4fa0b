//! `oxbpf prog|map|link|btf`: what the kernel holds, with bpftool's
//! vocabulary and, with `--json`, bpftool's field names.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use oxbpf_abi::{LinkType, MapType, ProgType};
use serde::Serialize;

use crate::object_run::{MapTypes, json, write_entries};

#[derive(Subcommand)]
pub enum ProgCmd {
    /// Every program loaded in the kernel.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One program by id.
    Show {
        id: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum MapCmd {
    /// Every map in the kernel.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One map by id.
    Show {
        id: u32,
        #[arg(long)]
        json: bool,
    },
    /// Every entry of map ID, decoded through the map's BTF when it has
    /// some (as bpftool map dump does).
    Dump {
        id: u32,
        #[arg(long)]
        json: bool,
    },
    /// The value under KEY (bytes: `0x01 0x00 0x00 0x00`, `1 0 0 0`, or
    /// one hex string `01000000`).
    Lookup {
        id: u32,
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        key: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Sets KEY to VALUE.
    Update {
        id: u32,
        #[arg(long, required = true, num_args = 1..)]
        key: Vec<String>,
        #[arg(long, required = true, num_args = 1..)]
        value: Vec<String>,
        /// any (create or replace), noexist (create only), exist (replace
        /// only).
        #[arg(long, default_value = "any", value_parser = ["any", "noexist", "exist"])]
        flags: String,
    },
    /// Deletes KEY.
    Delete {
        id: u32,
        #[arg(required = true, num_args = 1..)]
        key: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum LinkCmd {
    /// Every link in the kernel.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Detaches link ID (its program stops running there).
    Detach { id: u32 },
}

#[derive(Subcommand)]
pub enum BtfCmd {
    /// The types of an object's BTF, of BTF object --id N, or of the
    /// running kernel (`vmlinux`), in bpftool's raw format.
    Dump {
        /// A BPF ELF object, or `vmlinux`.
        file: Option<PathBuf>,
        /// A kernel BTF object id (a map's or program's btf_id).
        #[arg(long, conflicts_with = "file")]
        id: Option<u32>,
    },
}

fn type_name<T: Copy>(from: fn(u32) -> Option<T>, name: fn(T) -> &'static str, v: u32) -> String {
    from(v).map_or_else(|| format!("type {v}"), |t| name(t).to_string())
}

fn prog_type(t: u32) -> String {
    type_name(ProgType::from_u32, ProgType::name, t)
}

fn map_type(t: u32) -> String {
    type_name(MapType::from_u32, MapType::name, t)
}

fn link_type(t: u32) -> String {
    type_name(LinkType::from_u32, LinkType::name, t)
}

/// Wall-clock seconds of a boot-time nanosecond stamp (the kernel's
/// `load_time`): now, minus the time since boot (/proc/uptime), plus the
/// stamp.
fn wall_seconds(boot_ns: u64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    (now - up + boot_ns as f64 / 1e9) as i64
}

fn iso_time(secs: i64) -> String {
    // Days since the epoch to a civil date (proleptic Gregorian), UTC.
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}+0000")
}

/// bpftool's `prog show --json` fields.
#[derive(Serialize)]
struct ProgJson {
    id: u32,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    tag: String,
    gpl_compatible: bool,
    loaded_at: i64,
    uid: u32,
    bytes_xlated: u32,
    jited: bool,
    bytes_jited: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    map_ids: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    btf_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_time_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_cnt: Option<u64>,
    verified_insns: u32,
}

fn prog_json(p: &oxbpf_sys::info::ProgInfo) -> ProgJson {
    ProgJson {
        id: p.id,
        kind: prog_type(p.prog_type),
        name: p.name.clone(),
        tag: p.tag.clone(),
        gpl_compatible: p.gpl_compatible,
        loaded_at: wall_seconds(p.load_time),
        uid: p.created_by_uid,
        bytes_xlated: p.bytes_xlated,
        jited: p.bytes_jited > 0,
        bytes_jited: p.bytes_jited,
        map_ids: p.map_ids.clone(),
        btf_id: (p.btf_id != 0).then_some(p.btf_id),
        run_time_ns: (p.run_cnt > 0).then_some(p.run_time_ns),
        run_cnt: (p.run_cnt > 0).then_some(p.run_cnt),
        verified_insns: p.verified_insns,
    }
}

fn print_prog(out: &mut impl std::io::Write, p: &oxbpf_sys::info::ProgInfo) -> std::io::Result<()> {
    let gpl = if p.gpl_compatible { "  gpl" } else { "" };
    writeln!(
        out,
        "{}: {}  name {}  tag {}{gpl}",
        p.id,
        prog_type(p.prog_type),
        p.name,
        p.tag
    )?;
    writeln!(
        out,
        "\tloaded_at {}  uid {}",
        iso_time(wall_seconds(p.load_time)),
        p.created_by_uid
    )?;
    let maps = if p.map_ids.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = p.map_ids.iter().map(u32::to_string).collect();
        format!("  map_ids {}", ids.join(","))
    };
    writeln!(
        out,
        "\txlated {}B  jited {}B{maps}",
        p.bytes_xlated, p.bytes_jited
    )?;
    if p.run_cnt > 0 {
        writeln!(
            out,
            "\trun_time_ns {}  run_cnt {}",
            p.run_time_ns, p.run_cnt
        )?;
    }
    if p.btf_id != 0 {
        writeln!(out, "\tbtf_id {}", p.btf_id)?;
    }
    Ok(())
}

/// bpftool's `map show --json` fields.
#[derive(Serialize)]
struct MapJson {
    id: u32,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    flags: u32,
    bytes_key: u32,
    bytes_value: u32,
    max_entries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    btf_id: Option<u32>,
}

fn map_json(m: &oxbpf_sys::info::MapInfo) -> MapJson {
    MapJson {
        id: m.id,
        kind: map_type(m.map_type),
        name: m.name.clone(),
        flags: m.flags,
        bytes_key: m.key_size,
        bytes_value: m.value_size,
        max_entries: m.max_entries,
        btf_id: (m.btf_id != 0).then_some(m.btf_id),
    }
}

fn print_map(out: &mut impl std::io::Write, m: &oxbpf_sys::info::MapInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {}  name {}  flags {:#x}",
        m.id,
        map_type(m.map_type),
        m.name,
        m.flags
    )?;
    writeln!(
        out,
        "\tkey {}B  value {}B  max_entries {}",
        m.key_size, m.value_size, m.max_entries
    )?;
    if m.btf_id != 0 {
        writeln!(out, "\tbtf_id {}", m.btf_id)?;
    }
    Ok(())
}

fn missing(what: &str, id: u32, e: oxbpf_sys::SysError) -> anyhow::Error {
    if oxbpf_sys::info::is_missing(&e) {
        anyhow::anyhow!("no {what} with id {id}")
    } else {
        anyhow::anyhow!("{what} {id}: {e}")
    }
}

/// Prints `items` as one JSON array or as text, item by item.
fn print_all<T, J: Serialize, W: std::io::Write>(
    out: &mut W,
    items: &[T],
    as_json: bool,
    to_json: fn(&T) -> J,
    text: fn(&mut W, &T) -> std::io::Result<()>,
) -> Result<()> {
    if as_json {
        let rows: Vec<J> = items.iter().map(to_json).collect();
        writeln!(out, "{}", json::line(&rows))?;
    } else {
        for i in items {
            text(out, i)?;
        }
    }
    Ok(())
}

/// Prints one item as a JSON object or as text.
fn print_one<T, J: Serialize, W: std::io::Write>(
    out: &mut W,
    item: &T,
    as_json: bool,
    to_json: fn(&T) -> J,
    text: fn(&mut W, &T) -> std::io::Result<()>,
) -> Result<()> {
    if as_json {
        writeln!(out, "{}", json::line(&to_json(item)))?;
    } else {
        text(out, item)?;
    }
    Ok(())
}

/// Whether bpf(2) is usable, said as a person would.
fn need_bpf() -> Result<()> {
    oxbpf_sys::available().map_err(|e| anyhow::anyhow!("needs bpf(2) (run as root): {e}"))
}

/// Map `id` and its description, or "no map with id N".
fn open_map(id: u32) -> Result<(oxbpf_sys::Map, oxbpf_sys::info::MapInfo)> {
    oxbpf_sys::info::open_map(id).map_err(|e| missing("map", id, e))
}

pub fn prog(cmd: &ProgCmd) -> Result<ExitCode> {
    need_bpf()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        ProgCmd::List { json: j } => print_all(
            &mut out,
            &oxbpf_sys::info::programs()?,
            *j,
            prog_json,
            print_prog,
        )?,
        ProgCmd::Show { id, json: j } => {
            let fd = oxbpf_sys::info::prog_fd(*id).map_err(|e| missing("program", *id, e))?;
            print_one(
                &mut out,
                &oxbpf_sys::info::prog_info(&fd)?,
                *j,
                prog_json,
                print_prog,
            )?
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Key or value bytes from the command line: one hex string of exactly
/// `size` bytes, or one token per byte (`0x1f`, `31`).
fn parse_bytes(what: &str, tokens: &[String], size: usize) -> Result<Vec<u8>> {
    if let [one] = tokens {
        let h = one.strip_prefix("0x").unwrap_or(one);
        if h.len() == 2 * size && size > 1 && h.chars().all(|c| c.is_ascii_hexdigit()) {
            return (0..size)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).map_err(Into::into))
                .collect();
        }
    }
    let bytes = tokens
        .iter()
        .map(|t| {
            let v = match t.strip_prefix("0x") {
                Some(h) => u8::from_str_radix(h, 16),
                None => t.parse::<u8>(),
            };
            v.with_context(|| format!("{what}: `{t}` is not a byte (0x00..0xff or 0..255)"))
        })
        .collect::<Result<Vec<u8>>>()?;
    if bytes.len() != size {
        bail!(
            "{what}: {} bytes given, the map's {what} has {size}",
            bytes.len()
        );
    }
    Ok(bytes)
}

fn byte_list(b: &[u8]) -> serde_json::Value {
    serde_json::Value::Array(
        b.iter()
            .map(|x| serde_json::Value::String(format!("{x:#04x}")))
            .collect(),
    )
}

/// One entry as `bpftool map dump -j` prints it: `key` and `value` (or,
/// per CPU, `values: [{cpu, value}]`) as byte lists, and with BTF the
/// same decoded under `formatted`.
fn bpftool_entry(
    types: Option<&(oxbpf_obj::Btf, u32, u32)>,
    info: &oxbpf_sys::info::MapInfo,
    key: &[u8],
    value: &[u8],
) -> serde_json::Value {
    use oxbpf_abi::map_type as mt;
    use serde_json::{Map, Value, json};
    let decoded = |id: u32, bytes: &[u8]| -> Option<Value> {
        let (btf, _, _) = types?;
        (id != 0)
            .then(|| btf.decode(id, bytes))
            .flatten()
            .map(|v| json::btf_value(&v))
    };
    let (kt, vt) = types.map_or((0, 0), |(_, k, v)| (*k, *v));
    let percpu = matches!(
        info.map_type,
        mt::PERCPU_HASH | mt::PERCPU_ARRAY | mt::LRU_PERCPU_HASH | mt::PERCPU_CGROUP_STORAGE
    );
    let mut raw = Map::new();
    let mut formatted = Map::new();
    raw.insert("key".into(), byte_list(key));
    let fk = decoded(kt, key);
    if percpu {
        let size = info.value_size as usize;
        let stride = size.div_ceil(8) * 8;
        let (mut rv, mut fv) = (Vec::new(), Vec::new());
        let mut all_decoded = true;
        for (cpu, c) in value.chunks(stride.max(1)).enumerate() {
            let c = &c[..size.min(c.len())];
            rv.push(json!({ "cpu": cpu, "value": byte_list(c) }));
            match decoded(vt, c) {
                Some(d) => fv.push(json!({ "cpu": cpu, "value": d })),
                None => all_decoded = false,
            }
        }
        raw.insert("values".into(), Value::Array(rv));
        if let (Some(k), true) = (fk, all_decoded) {
            formatted.insert("key".into(), k);
            formatted.insert("values".into(), Value::Array(fv));
        }
    } else {
        raw.insert("value".into(), byte_list(value));
        if let (Some(k), Some(v)) = (fk, decoded(vt, value)) {
            formatted.insert("key".into(), k);
            formatted.insert("value".into(), v);
        }
    }
    if !formatted.is_empty() {
        raw.insert("formatted".into(), Value::Object(formatted));
    }
    Value::Object(raw)
}

/// The map's BTF types, when it has BTF.
fn kernel_map_types(info: &oxbpf_sys::info::MapInfo) -> Option<(oxbpf_obj::Btf, u32, u32)> {
    if info.btf_id == 0 {
        return None;
    }
    let raw = oxbpf_sys::info::btf_data(info.btf_id).ok()?;
    let btf = oxbpf_obj::Btf::parse(&raw).ok()?;
    Some((btf, info.btf_key_type_id, info.btf_value_type_id))
}

pub fn map(cmd: &MapCmd) -> Result<ExitCode> {
    need_bpf()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        MapCmd::List { json: j } => {
            print_all(&mut out, &oxbpf_sys::info::maps()?, *j, map_json, print_map)?
        }
        MapCmd::Show { id, json: j } => {
            let (_, info) = open_map(*id)?;
            print_one(&mut out, &info, *j, map_json, print_map)?
        }
        MapCmd::Dump { id, json: j } => {
            let (m, info) = open_map(*id)?;
            if !oxbpf_sys::map_is_dumpable(info.map_type) {
                bail!(
                    "map {id} is a {} map: its entries cannot be listed",
                    map_type(info.map_type)
                );
            }
            let entries = m.entries().map_err(|e| anyhow::anyhow!("map {id}: {e}"))?;
            let t = kernel_map_types(&info);
            if *j {
                // bpftool's shape: a list of {"key", "value"} (per-CPU maps:
                // "values": [{"cpu", "value"}]), decoded through BTF when
                // the map has it, byte lists ("0x01") otherwise.
                let rows: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|(k, v)| bpftool_entry(t.as_ref(), &info, k, v))
                    .collect();
                writeln!(out, "{}", json::line(&rows))?;
            } else {
                let types = t.as_ref().map(|(b, k, v)| MapTypes::new(b, *k, *v));
                write_entries(
                    &mut out,
                    types.as_ref(),
                    &info.name,
                    info.map_type,
                    &entries,
                    false,
                )?;
            }
        }
        MapCmd::Lookup { id, key, json: j } => {
            let (m, info) = open_map(*id)?;
            let k = parse_bytes("key", key, info.key_size as usize)?;
            match m.lookup(&k).map_err(|e| anyhow::anyhow!("map {id}: {e}"))? {
                Some(v) => {
                    let t = kernel_map_types(&info);
                    let types = t.as_ref().map(|(b, kt, vt)| MapTypes::new(b, *kt, *vt));
                    write_entries(
                        &mut out,
                        types.as_ref(),
                        &info.name,
                        info.map_type,
                        &[(k, v)],
                        *j,
                    )?;
                }
                None => {
                    eprintln!("map {id}: no entry for that key");
                    return Ok(ExitCode::from(1));
                }
            }
        }
        MapCmd::Update {
            id,
            key,
            value,
            flags,
        } => {
            let (m, info) = open_map(*id)?;
            let k = parse_bytes("key", key, info.key_size as usize)?;
            let v = parse_bytes("value", value, info.value_size as usize)?;
            let f = match flags.as_str() {
                "noexist" => oxbpf_abi::flags::BPF_NOEXIST,
                "exist" => oxbpf_abi::flags::BPF_EXIST,
                _ => oxbpf_abi::flags::BPF_ANY,
            };
            m.update(&k, &v, f)
                .map_err(|e| anyhow::anyhow!("map {id}: {e}"))?;
        }
        MapCmd::Delete { id, key } => {
            let (m, info) = open_map(*id)?;
            let k = parse_bytes("key", key, info.key_size as usize)?;
            m.delete(&k).map_err(|e| anyhow::anyhow!("map {id}: {e}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// bpftool's `link show --json` fields.
#[derive(Serialize)]
struct LinkJson {
    id: u32,
    #[serde(rename = "type")]
    kind: String,
    prog_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    attach_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ifindex: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tp_name: Option<String>,
}

fn link_json(l: &oxbpf_sys::info::LinkInfo) -> LinkJson {
    LinkJson {
        id: l.id,
        kind: link_type(l.link_type),
        prog_id: l.prog_id,
        attach_type: l.attach_type.map(|t| {
            type_name(
                oxbpf_abi::AttachType::from_u32,
                oxbpf_abi::AttachType::name,
                t,
            )
        }),
        ifindex: l.ifindex,
        cgroup_id: l.cgroup_id,
        tp_name: l.tp_name.clone(),
    }
}

fn print_link(out: &mut impl std::io::Write, l: &oxbpf_sys::info::LinkInfo) -> std::io::Result<()> {
    let j = link_json(l);
    writeln!(out, "{}: {}  prog {}", j.id, j.kind, j.prog_id)?;
    let mut details = Vec::new();
    if let Some(t) = &j.tp_name {
        details.push(format!("tp '{t}'"));
    }
    if let Some(t) = &j.attach_type {
        details.push(format!("attach_type {t}"));
    }
    if let Some(i) = j.ifindex {
        details.push(format!("ifindex {i}"));
    }
    if let Some(c) = j.cgroup_id {
        details.push(format!("cgroup_id {c}"));
    }
    if !details.is_empty() {
        writeln!(out, "\t{}", details.join("  "))?;
    }
    Ok(())
}

pub fn link(cmd: &LinkCmd) -> Result<ExitCode> {
    need_bpf()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        LinkCmd::List { json: j } => print_all(
            &mut out,
            &oxbpf_sys::info::links()?,
            *j,
            link_json,
            print_link,
        )?,
        LinkCmd::Detach { id } => {
            if let Err(e) = oxbpf_sys::info::detach_link(*id) {
                if e.errno == oxbpf_abi::errno::EOPNOTSUPP {
                    let kind = oxbpf_sys::info::link_fd(*id)
                        .and_then(|fd| oxbpf_sys::info::link_info(&fd))
                        .map_or("this".into(), |l| link_type(l.link_type));
                    bail!(
                        "link {id}: the kernel cannot detach a {kind} link from outside (only cgroup, XDP, tcx, netkit, netns, sockmap, struct_ops and netfilter links can be); close its owner instead"
                    );
                }
                return Err(missing("link", *id, e));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn btf(cmd: &BtfCmd) -> Result<ExitCode> {
    let BtfCmd::Dump { file, id } = cmd;
    let text = match (file, id) {
        (_, Some(id)) => {
            oxbpf_sys::available()
                .map_err(|e| anyhow::anyhow!("needs bpf(2) (run as root): {e}"))?;
            let raw = oxbpf_sys::info::btf_data(*id).map_err(|e| missing("BTF object", *id, e))?;
            oxbpf_obj::Btf::parse(&raw)
                .map_err(|e| anyhow::anyhow!("BTF object {id}: {e}"))?
                .dump_raw()
        }
        (Some(f), None) if f.as_os_str() == "vmlinux" => oxbpf_sys::vmlinux::btf()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .dump_raw(),
        (Some(f), None) => {
            // The .BTF section alone: an object whose code does not load
            // still has types to show.
            let bytes = std::fs::read(f).with_context(|| f.display().to_string())?;
            crate::commands::check_object_rule(f, &bytes)?;
            let elf = oxbpf_obj::elf::parse(&bytes).with_context(|| f.display().to_string())?;
            let sec = elf
                .section_by_name(".BTF")
                .with_context(|| format!("{}: no .BTF section", f.display()))?;
            oxbpf_obj::Btf::parse(&sec.data)
                .map_err(|e| anyhow::anyhow!("{}: .BTF: {e}", f.display()))?
                .dump_raw()
        }
        (None, None) => bail!("name an object, `vmlinux`, or --id N"),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}
