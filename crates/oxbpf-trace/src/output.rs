//! Maps printed the way bpftrace prints them in its text format: maps in
//! name order; `@name[key]: value` lines sorted by value; averages and
//! statistics followed by a blank line; histograms with bpftrace's bucket
//! labels (`[4K, 8K)`) and 52-column bars; an empty map as a blank line.
//! Per-CPU values are merged here (sums added, minima and maxima taken
//! over the CPUs that saw a value).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::codegen::MapInfo;
use crate::types::{MapKind, Ty};

/// One entry as read from the kernel: the key bytes and the values of
/// every CPU (one value for maps that are not per-CPU).
pub type RawEntry = (Vec<u8>, Vec<Vec<u8>>);

/// A key or value, decoded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Datum {
    Int(i64),
    Uint(u64),
    Str(String),
    Tuple(Vec<Datum>),
    /// A pointer, printed in hex as bpftrace prints them.
    Ptr(u64),
    /// `true` or `false`.
    Bool(bool),
    /// A stack's frames (innermost first), as text; `perf` for perf's
    /// layout (a tab before each frame).
    Stack {
        frames: Vec<String>,
        perf: bool,
    },
}

/// What user space knows that the kernel's records do not say: the
/// stacks behind stack ids, and the names of addresses.
pub trait Symbols {
    /// The addresses of stack `id` in the stack map, innermost first.
    fn stack(&self, id: u32) -> Vec<u64>;
    /// Each address's (function, offset, file): the kernel's (`pid`
    /// `None`) or process `pid`'s; `None` where unknown.
    fn resolve(&self, pid: Option<u32>, addrs: &[u64]) -> Vec<Option<(String, u64, String)>>;
    /// The name of user `uid`.
    fn user_name(&self, _uid: u32) -> Option<String> {
        None
    }
    /// Nanoseconds since boot as local wall-clock time by a strftime
    /// format (bpftrace's `%f` is microseconds).
    fn strftime(&self, _fmt: &str, ns: u64) -> String {
        ns.to_string()
    }
    /// The paths of cgroup `id` in the hierarchies whose names match the
    /// wildcard `pattern` (cgroup2 is `unified`), as bpftrace prints them:
    /// `name:path` joined by commas.
    fn cgroup_path(&self, id: u64, _pattern: &str) -> String {
        id.to_string()
    }
    /// The name of block device `major:minor` (`vda`, `loop0`).
    fn disk_name(&self, _major: u32, _minor: u32) -> Option<String> {
        None
    }
}

/// The message of error number `e`, as the C library's `strerror` gives
/// it ("Unknown error N" for one it does not know).
pub fn strerror_text(e: i64) -> String {
    let Ok(n) = i32::try_from(e) else {
        return format!("Unknown error {e}");
    };
    let s = std::io::Error::from_raw_os_error(n).to_string();
    // std adds " (os error N)" to the C library's message.
    match s.rfind(" (os error ") {
        Some(at) => s[..at].to_string(),
        None => s,
    }
}

/// An address of `ntop`: family (2 = AF_INET, 10 = AF_INET6) and bytes.
fn inet_text(b: &[u8]) -> String {
    let family = u64_at(b, 0);
    let a = b.get(8..24).unwrap_or(&[]);
    match (family, a.len()) {
        (2, 16) => std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
        (10, 16) => {
            let mut x = [0u8; 16];
            x.copy_from_slice(a);
            std::net::Ipv6Addr::from(x).to_string()
        }
        _ => String::new(),
    }
}

/// `buf()` bytes as bpftrace prints them: printable ASCII as is, the rest
/// as `\xNN`.
fn buf_text(b: &[u8], cap: usize) -> String {
    let n = (u64_at(b, 0) as usize).min(cap);
    let bytes = b.get(8..8 + n).unwrap_or(&[]);
    let mut s = String::new();
    for &c in bytes {
        if (0x20..0x7f).contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

/// No symbols: stacks empty, addresses as numbers.
pub struct NoSymbols;

impl Symbols for NoSymbols {
    fn stack(&self, _: u32) -> Vec<u64> {
        Vec::new()
    }

    fn resolve(&self, _: Option<u32>, addrs: &[u64]) -> Vec<Option<(String, u64, String)>> {
        vec![None; addrs.len()]
    }
}

/// An address bpftrace could not name: `0x…` (0 prints as `0`).
fn raw_addr(a: u64) -> String {
    if a == 0 {
        "0".into()
    } else {
        format!("{a:#x}")
    }
}

/// A stack's frames as bpftrace writes them: `func+off` (offset in
/// decimal), or in perf's layout `addr func+off (file)`.
fn stack_frames(
    syms: &dyn Symbols,
    id: u64,
    pid: Option<u32>,
    perf: bool,
    limit: u8,
) -> Vec<String> {
    // A failed bpf_get_stackid() stored a negative id: no frames.
    if id as i64 >= i64::from(u32::MAX) || (id as i64) < 0 {
        return Vec::new();
    }
    let mut addrs = syms.stack(id as u32);
    if limit > 0 {
        addrs.truncate(limit as usize);
    }
    let names = syms.resolve(pid, &addrs);
    addrs
        .iter()
        .zip(names)
        .map(|(&a, n)| match (perf, n) {
            (false, Some((f, off, _))) => format!("{f}+{off}"),
            (false, None) => raw_addr(a),
            (true, Some((f, off, file))) if pid.is_some() => format!("{a:x} {f}+{off} ({file})"),
            (true, Some((f, off, _))) => format!("{a:x} {f}+{off}"),
            (true, None) if pid.is_some() => format!("{a:x} {} ([unknown])", raw_addr(a)),
            (true, None) => format!("{a:x} {}", raw_addr(a)),
        })
        .collect()
}

impl std::fmt::Display for Datum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Datum::Int(v) => write!(f, "{v}"),
            Datum::Uint(v) => write!(f, "{v}"),
            Datum::Str(s) => f.write_str(s),
            Datum::Ptr(v) => write!(f, "{v:#x}"),
            Datum::Bool(b) => write!(f, "{b}"),
            Datum::Stack { frames, perf } => {
                f.write_str("\n")?;
                for fr in frames {
                    if *perf {
                        writeln!(f, "\t{fr}")?;
                    } else {
                        writeln!(f, "        {fr}")?;
                    }
                }
                Ok(())
            }
            Datum::Tuple(items) => {
                f.write_str("(")?;
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str(")")
            }
        }
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map(|x| u64::from_le_bytes(x.try_into().expect("8 bytes")))
        .unwrap_or(0)
}

/// Decodes a value of type `ty` at the start of `b` (stacks and symbols
/// as numbers: see [`decode_with`]).
pub fn decode(ty: &Ty, b: &[u8]) -> Datum {
    decode_with(ty, b, &NoSymbols)
}

/// Decodes a value of type `ty` at the start of `b`, naming stacks and
/// addresses through `syms`.
pub fn decode_with(ty: &Ty, b: &[u8], syms: &dyn Symbols) -> Datum {
    match ty {
        Ty::Int { signed: true, .. } => Datum::Int(u64_at(b, 0) as i64),
        Ty::Int { .. } => Datum::Uint(u64_at(b, 0)),
        Ty::Stack { user, perf, limit } => {
            let pid = user.then(|| u64_at(b, 8) as u32);
            Datum::Stack {
                frames: stack_frames(syms, u64_at(b, 0), pid, *perf, *limit),
                perf: *perf,
            }
        }
        Ty::Username => {
            let uid = u64_at(b, 0) as u32;
            Datum::Str(syms.user_name(uid).unwrap_or_else(|| uid.to_string()))
        }
        Ty::Strftime(fmt) => Datum::Str(syms.strftime(fmt, u64_at(b, 0))),
        Ty::Inet => Datum::Str(inet_text(b)),
        Ty::Buf(n) => Datum::Str(buf_text(b, *n)),
        Ty::Bool => Datum::Bool(u64_at(b, 0) != 0),
        Ty::Errno => Datum::Str(strerror_text(u64_at(b, 0) as i64)),
        Ty::Syscall => {
            let n = u64_at(b, 0);
            Datum::Str(
                oxbpf_abi::syscalls::X86_64
                    .iter()
                    .find(|(_, nr)| u64::from(*nr) == n)
                    .map_or_else(|| (n as i64).to_string(), |(name, _)| name.to_string()),
            )
        }
        Ty::CgroupPath(pattern) => Datum::Str(syms.cgroup_path(u64_at(b, 0), pattern)),
        Ty::Disk => {
            // The kernel's dev_t: 12 bits of major above 20 of minor.
            let dev = u64_at(b, 0) as u32;
            let (major, minor) = (dev >> 20, dev & 0xf_ffff);
            Datum::Str(
                syms.disk_name(major, minor)
                    .unwrap_or_else(|| format!("{major}:{minor}")),
            )
        }
        Ty::Sym { user } => {
            let a = u64_at(b, 0);
            let pid = user.then(|| u64_at(b, 8) as u32);
            Datum::Str(match syms.resolve(pid, &[a]).pop().flatten() {
                Some((f, _, _)) => f,
                None => raw_addr(a),
            })
        }
        Ty::Ptr { .. } => Datum::Ptr(u64_at(b, 0)),
        Ty::Str(n) => {
            let b = &b[..(*n).min(b.len())];
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            Datum::Str(String::from_utf8_lossy(&b[..end]).into_owned())
        }
        Ty::Tuple(items) => {
            let mut at = 0;
            let mut out = Vec::new();
            for t in items {
                out.push(decode_with(t, b.get(at..).unwrap_or(&[]), syms));
                at += t.stored_size();
            }
            Datum::Tuple(out)
        }
    }
}

/// The user's key of an entry, as printed inside `[…]`.
fn key_text(m: &MapInfo, key: &[u8], syms: &dyn Symbols) -> String {
    let mut at = 0;
    let mut parts = Vec::new();
    // A stack in a key is indented by 4 (8 elsewhere).
    let text = |d: &Datum| match d {
        Datum::Stack { frames, perf } => {
            let mut s = String::from("\n");
            for f in frames {
                s.push_str(if *perf { "\t" } else { "    " });
                s.push_str(f);
                s.push('\n');
            }
            s
        }
        d => d.to_string(),
    };
    for t in &m.key {
        let d = decode_with(t, key.get(at..).unwrap_or(&[]), syms);
        // A tuple key prints flat: @x[1, a].
        match d {
            Datum::Tuple(items) => parts.extend(items.iter().map(text)),
            d => parts.push(text(&d)),
        }
        at += t.stored_size();
    }
    parts.join(", ")
}

fn label(m: &MapInfo, key: &[u8], syms: &dyn Symbols) -> String {
    let name = format!("@{}", m.name);
    if m.key.is_empty() {
        name
    } else {
        format!("{name}[{}]", key_text(m, key, syms))
    }
}

/// (value, count, total) of an entry, with its key.
pub(crate) type Row<'a> = ((i64, u64, i64), &'a [u8]);

/// The merged (over CPUs) value of a count, sum, min, max, avg or stats
/// entry: (value to print and sort by, count, total).
pub(crate) fn merged(kind: &MapKind, cpus: &[Vec<u8>]) -> Option<(i64, u64, i64)> {
    match kind {
        MapKind::Count | MapKind::Sum | MapKind::Hist { .. } | MapKind::Lhist { .. } => {
            let s = cpus
                .iter()
                .map(|c| u64_at(c, 0) as i64)
                .fold(0i64, i64::wrapping_add);
            Some((s, 0, s))
        }
        MapKind::Min | MapKind::Max => {
            let set = cpus
                .iter()
                .filter(|c| u64_at(c, 8) != 0)
                .map(|c| u64_at(c, 0) as i64);
            let v = if *kind == MapKind::Min {
                set.min()
            } else {
                set.max()
            }?;
            Some((v, 0, v))
        }
        MapKind::Avg | MapKind::Stats => {
            let total = cpus
                .iter()
                .map(|c| u64_at(c, 0) as i64)
                .fold(0i64, i64::wrapping_add);
            let count: u64 = cpus.iter().map(|c| u64_at(c, 8)).sum();
            let avg = if count == 0 { 0 } else { total / count as i64 };
            Some((avg, count, total))
        }
        MapKind::Scalar(_) => None,
    }
}

/// A value map's entries decoded and in bpftrace's order: integers by
/// value, other values by key. A pointer stored as a value prints as
/// bpftrace 0.17 prints it: a signed integer (keys print in hex).
fn scalar_rows<'a>(t: &Ty, entries: &'a [RawEntry], syms: &dyn Symbols) -> Vec<(Datum, &'a [u8])> {
    let t = &match t {
        Ty::Ptr { .. } => Ty::I64,
        t => t.clone(),
    };
    let mut rows: Vec<(Datum, &[u8])> = entries
        .iter()
        .map(|(k, v)| {
            (
                decode_with(t, v.first().map_or(&[][..], |v| v), syms),
                k.as_slice(),
            )
        })
        .collect();
    if t.is_int() {
        rows.sort();
    } else {
        rows.sort_by(|a, b| a.1.cmp(b.1));
    }
    rows
}

/// The entries of a map held in a per-CPU array ([`MapInfo::array`]) in
/// the form a hash of the same map has: keys of 8 zero bytes (and the
/// bucket index after them for histograms), entries never written left
/// out — except a `count()`, which exists from the start, as in bpftrace.
pub fn array_entries(m: &MapInfo, entries: Vec<RawEntry>) -> Vec<RawEntry> {
    entries
        .into_iter()
        .filter(|(_, cpus)| match m.kind {
            MapKind::Count => true,
            // A bucket's count, the set flag of min/max, avg's count.
            MapKind::Hist { .. } | MapKind::Lhist { .. } => cpus.iter().any(|c| u64_at(c, 0) != 0),
            _ => cpus.iter().any(|c| u64_at(c, 8) != 0),
        })
        .map(|(k, cpus)| {
            let mut key = vec![0u8; 8];
            if m.kind.bucketed() {
                let index = u32::from_le_bytes(
                    k.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]),
                );
                key.extend_from_slice(&u64::from(index).to_le_bytes());
            }
            (key, cpus)
        })
        .collect()
}

/// An aggregation's entries merged over CPUs, sorted by value.
pub(crate) fn aggregate_rows<'a>(kind: &MapKind, entries: &'a [RawEntry]) -> Vec<Row<'a>> {
    let mut rows: Vec<Row<'_>> = entries
        .iter()
        .filter_map(|(k, v)| Some((merged(kind, v)?, k.as_slice())))
        .collect();
    rows.sort();
    rows
}

/// A histogram's user keys with their (bucket -> count) over every CPU,
/// ordered by total count.
pub(crate) fn hist_rows(m: &MapInfo, entries: &[RawEntry]) -> Vec<(Vec<u8>, BTreeMap<u64, u64>)> {
    let ksize = m.key_size();
    let mut by_key: BTreeMap<Vec<u8>, BTreeMap<u64, u64>> = BTreeMap::new();
    for (k, cpus) in entries {
        let (user, bucket) = k.split_at(ksize.min(k.len()));
        let n: u64 = cpus.iter().map(|c| u64_at(c, 0)).sum();
        if n > 0 {
            *by_key
                .entry(user.to_vec())
                .or_default()
                .entry(u64_at(bucket, 0))
                .or_default() += n;
        }
    }
    let mut rows: Vec<(u64, Vec<u8>, BTreeMap<u64, u64>)> = by_key
        .into_iter()
        .map(|(k, b)| (b.values().sum(), k, b))
        .collect();
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    rows.into_iter().map(|(_, k, b)| (k, b)).collect()
}

/// Text of one map, as bpftrace prints it at exit or for `print(@m)`.
pub fn print_map(m: &MapInfo, entries: &[RawEntry], syms: &dyn Symbols) -> String {
    print_map_with(m, entries, syms, 0, 0)
}

/// Text of one map as `print(@m, top, div)` prints it: only the `top`
/// entries of largest value (0: all), values divided by `div` (0: as
/// they are).
pub fn print_map_with(
    m: &MapInfo,
    entries: &[RawEntry],
    syms: &dyn Symbols,
    top: usize,
    div: u64,
) -> String {
    let mut out = String::new();
    let keep = |n: usize| if top == 0 { 0 } else { n.saturating_sub(top) };
    let div = div.max(1) as i64;
    match &m.kind {
        MapKind::Hist { .. } | MapKind::Lhist { .. } => {
            print_hists(&mut out, m, entries, syms, top)
        }
        MapKind::Scalar(t) => {
            let rows = scalar_rows(t, entries, syms);
            for (d, k) in &rows[keep(rows.len())..] {
                let d = match d {
                    Datum::Int(v) => Datum::Int(v / div),
                    Datum::Uint(v) => Datum::Uint(v / div as u64),
                    d => d.clone(),
                };
                let _ = writeln!(out, "{}: {d}", label(m, k, syms));
            }
        }
        kind => {
            let rows = aggregate_rows(kind, entries);
            for ((v, count, total), k) in &rows[keep(rows.len())..] {
                let v = v / div;
                match kind {
                    MapKind::Stats => {
                        let _ = writeln!(
                            out,
                            "{}: count {count}, average {v}, total {total}",
                            label(m, k, syms)
                        );
                    }
                    _ => {
                        let _ = writeln!(out, "{}: {v}", label(m, k, syms));
                    }
                }
            }
            if matches!(kind, MapKind::Avg | MapKind::Stats) && !rows.is_empty() {
                out.push('\n');
            }
        }
    }
    if out.is_empty() {
        out.push('\n');
    }
    out
}

/// Whether `--folded`/`--flamegraph` draw this map: a count or sum keyed
/// by at least one stack.
pub fn is_stack_map(m: &MapInfo) -> bool {
    matches!(m.kind, MapKind::Count | MapKind::Sum)
        && m.key.iter().any(|t| matches!(t, Ty::Stack { .. }))
}

/// A map as folded stacks, the input of flame graph tools: one line per
/// entry, the key's parts joined by `;` in the key's order (a stack's
/// frames outermost first, by function name without offset; an address
/// without a symbol in hex), a space, and the value. `None` for a map that
/// is not a count or sum keyed by at least one stack.
pub fn folded_map(m: &MapInfo, entries: &[RawEntry], syms: &dyn Symbols) -> Option<Vec<String>> {
    if !is_stack_map(m) {
        return None;
    }
    let clean = |s: &str| s.replace(';', ":").replace(['\n', '\t'], " ");
    let mut lines = Vec::new();
    for ((v, _, _), key) in aggregate_rows(&m.kind, entries) {
        let mut parts = Vec::new();
        let mut at = 0;
        for t in &m.key {
            let b = key.get(at..).unwrap_or(&[]);
            at += t.stored_size();
            match t {
                Ty::Stack { user, limit, .. } => {
                    if let Some(frames) = stack_names(*user, *limit, b, syms) {
                        parts.extend(frames.iter().rev().map(|f| clean(f)));
                    }
                }
                t => match decode_with(t, b, syms) {
                    Datum::Tuple(items) => {
                        parts.extend(items.iter().map(|d| clean(&d.to_string())))
                    }
                    d => parts.push(clean(&d.to_string())),
                },
            }
        }
        if parts.is_empty() {
            parts.push("[no stack]".into());
        }
        lines.push(format!("{} {v}", parts.join(";")));
    }
    Some(lines)
}

/// The frames of the stack stored at the start of `b` (a stack id, and
/// the pid after it for a user stack), innermost first, each by its
/// function's name (an address without a symbol in hex); `None` where the
/// id says no stack was taken (a kernel stack of a sample in user mode), a
/// frame `[Missed User Stack]` (or Kernel), as libbpf-tools print it, where
/// the stack map had no room for it (`-EEXIST`: its bucket held another).
pub(crate) fn stack_names(
    user: bool,
    limit: u8,
    b: &[u8],
    syms: &dyn Symbols,
) -> Option<Vec<String>> {
    const EEXIST: i64 = 17;
    let id = u64_at(b, 0);
    if id as i64 == -EEXIST {
        let which = if user { "User" } else { "Kernel" };
        return Some(vec![format!("[Missed {which} Stack]")]);
    }
    if id as i64 >= i64::from(u32::MAX) || (id as i64) < 0 {
        return None;
    }
    let pid = user.then(|| u64_at(b, 8) as u32);
    let mut addrs = syms.stack(id as u32);
    if limit > 0 {
        addrs.truncate(limit as usize);
    }
    let names = syms.resolve(pid, &addrs);
    Some(
        addrs
            .iter()
            .zip(names)
            .map(|(a, n)| n.map_or_else(|| raw_addr(*a), |(f, _, _)| f))
            .collect(),
    )
}

/// A power of 1024 as bpftrace writes bucket bounds: `4K`, `1M`, `512`.
pub fn size_label(n: i64) -> String {
    if n < 0 {
        // unsigned_abs: -i64::MIN does not exist as an i64.
        return format!("-{}", unsigned_size_label(n.unsigned_abs()));
    }
    unsigned_size_label(n as u64)
}

/// [`size_label`] of a magnitude.
fn unsigned_size_label(mut n: u64) -> String {
    let mut unit = 0;
    const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    while n != 0 && n.is_multiple_of(1024) && unit < 6 {
        n /= 1024;
        unit += 1;
    }
    format!("{n}{}", UNITS[unit])
}

/// The regular buckets of `lhist(x, min, max, step)`: whole steps only, as
/// bpftrace counts them (with a step that does not divide `max - min`,
/// values from the last whole step up go to the `[max, ...)` bucket).
pub fn lhist_buckets(min: i64, max: i64, step: i64) -> u64 {
    ((max - min) / step).max(0) as u64
}

/// Where `hist(x, bits)`'s bucket `i + 1` starts, as bpftrace labels it:
/// (the value, its text, whether it is a plain number). Buckets up to
/// `2 << bits` hold one value each, labelled by the number; above, a power
/// of two `2^p` is split into `2^bits` buckets, labelled `m * 2^(p % 10)`
/// with the suffix of `p / 10` (K, M, … E).
fn hist_bound(i: u64, bits: u32) -> (u64, String, bool) {
    if i <= 2u64 << bits {
        return (i, i.to_string(), true);
    }
    let n = 1u64 << bits;
    let interval = i & (n - 1);
    let power = (i >> bits) as u32 - 1;
    let value = 1u64
        .checked_shl(power)
        .unwrap_or(0)
        .wrapping_mul(n + interval);
    let decade = (power / 10).min(6) as usize;
    let digits = (1u64 << (power - 10 * decade as u32)) * (n + interval);
    let text = format!("{digits}{}", ["", "K", "M", "G", "T", "P", "E"][decade]);
    (value, text, false)
}

/// The lowest value of `hist(x, bits)`'s bucket `i` (from 1: bucket 0
/// holds the negative values).
pub(crate) fn hist_lower_bound(i: u64, bits: u32) -> u64 {
    hist_bound(i.saturating_sub(1), bits).0
}

fn bucket_label(kind: &MapKind, i: u64) -> String {
    match *kind {
        MapKind::Hist { bits } => {
            if i == 0 {
                return "(..., 0)".into();
            }
            let (lo, lo_text, lo_plain) = hist_bound(i - 1, bits);
            let (hi, hi_text, hi_plain) = hist_bound(i, bits);
            if lo_plain && hi_plain && lo + 1 == hi {
                format!("[{lo_text}]")
            } else {
                format!("[{lo_text}, {hi_text})")
            }
        }
        MapKind::Lhist { min, max, step } => {
            let n = lhist_buckets(min, max, step);
            if i == 0 {
                format!("(..., {})", size_label(min))
            } else if i > n {
                format!("[{}, ...)", size_label(max))
            } else {
                let lo = min + (i as i64 - 1) * step;
                format!("[{}, {})", size_label(lo), size_label((lo + step).min(max)))
            }
        }
        _ => String::new(),
    }
}

fn print_hists(
    out: &mut String,
    m: &MapInfo,
    entries: &[RawEntry],
    syms: &dyn Symbols,
    top: usize,
) {
    let keys = hist_rows(m, entries);
    let skip = if top == 0 {
        0
    } else {
        keys.len().saturating_sub(top)
    };
    for (k, buckets) in keys.iter().skip(skip) {
        let _ = writeln!(out, "{}: ", label(m, k, syms));
        let (Some((&lo, _)), Some((&hi, _))) =
            (buckets.first_key_value(), buckets.last_key_value())
        else {
            continue;
        };
        let top = buckets.values().copied().max().unwrap_or(1).max(1);
        for i in lo..=hi {
            let n = buckets.get(&i).copied().unwrap_or(0);
            let bar = (n as f64 / top as f64 * 52.0) as usize;
            let _ = writeln!(
                out,
                "{:<16}{n:>8} |{}{}|",
                bucket_label(&m.kind, i),
                "@".repeat(bar),
                " ".repeat(52 - bar.min(52))
            );
        }
        out.push('\n');
    }
}

/// Whether `--plot` draws this map: a `hist()` or `lhist()`.
pub fn is_histogram(m: &MapInfo) -> bool {
    matches!(m.kind, MapKind::Hist { .. } | MapKind::Lhist { .. })
}

/// The histogram maps drawn as one SVG page: a bar chart per map and key
/// (`@lat[vda]`), buckets left to right with their labels (`[64K,
/// 128K)`), bar heights by count, each bar's count above it; maps that
/// are not histograms are left out. The page is plain SVG (rectangles
/// and text), readable by any browser.
pub fn hist_svg(title: &str, maps: &[(&MapInfo, Vec<RawEntry>)], syms: &dyn Symbols) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut charts: Vec<(String, Vec<(String, u64)>)> = Vec::new();
    for (m, entries) in maps.iter().filter(|(m, _)| is_histogram(m)) {
        for (k, buckets) in &hist_rows(m, entries) {
            let (Some((&lo, _)), Some((&hi, _))) =
                (buckets.first_key_value(), buckets.last_key_value())
            else {
                continue;
            };
            let bars = (lo..=hi)
                .map(|i| {
                    (
                        bucket_label(&m.kind, i),
                        buckets.get(&i).copied().unwrap_or(0),
                    )
                })
                .collect();
            charts.push((label(m, k, syms), bars));
        }
    }
    let (w, h, top) = (960.0f64, 260.0f64, 40.0f64);
    let height = top + h * charts.len().max(1) as f64;
    let mut s = format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"Verdana, sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"26\" text-anchor=\"middle\" font-size=\"17\">{}</text>\n",
        w / 2.0,
        esc(title)
    );
    if charts.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\">no values were recorded</text>",
            w / 2.0,
            top + 40.0,
        );
    }
    for (c, (name, bars)) in charts.iter().enumerate() {
        let y0 = top + h * c as f64;
        let (left, bottom, plot_h) = (60.0, y0 + h - 70.0, h - 110.0);
        let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
        let total: u64 = bars.iter().map(|b| b.1).sum();
        let slot = (w - left - 20.0) / bars.len().max(1) as f64;
        let _ = writeln!(
            s,
            "<text x=\"{left}\" y=\"{}\" font-size=\"14\">{} ({total} values)</text>",
            y0 + 22.0,
            esc(name)
        );
        let _ = writeln!(
            s,
            "<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\" stroke=\"black\"/>",
            w - 20.0
        );
        for (i, (label, n)) in bars.iter().enumerate() {
            let x = left + slot * i as f64;
            let bh = *n as f64 / max * plot_h;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"rgb(70,130,180)\"><title>{} {n}</title></rect>",
                x + slot * 0.1,
                bottom - bh,
                slot * 0.8,
                esc(label)
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{n}</text>",
                x + slot / 2.0,
                bottom - bh - 3.0
            );
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" transform=\"rotate(45 {:.1} {:.1})\">{}</text>",
                x + slot / 2.0,
                bottom + 12.0,
                x + slot / 2.0,
                bottom + 12.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A string as a JSON string literal.
pub fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A value as JSON, as bpftrace's `-f json` writes it (tuples as arrays
/// without spaces).
pub fn json_datum(d: &Datum) -> String {
    match d {
        Datum::Int(v) => v.to_string(),
        Datum::Uint(v) | Datum::Ptr(v) => v.to_string(),
        Datum::Bool(b) => b.to_string(),
        Datum::Str(s) => json_str(s),
        Datum::Tuple(items) => format!(
            "[{}]",
            items.iter().map(json_datum).collect::<Vec<_>>().join(",")
        ),
        d @ Datum::Stack { .. } => json_str(&d.to_string()),
    }
}

/// A map's key as bpftrace's JSON names it: the parts joined by `,`.
fn json_key(m: &MapInfo, key: &[u8], syms: &dyn Symbols) -> String {
    json_str(&key_text(m, key, syms).replace(", ", ","))
}

/// One record of `-f json` output.
pub fn json_record(kind: &str, data: &str) -> String {
    format!("{{\"type\": \"{kind}\", \"data\": {data}}}\n")
}

/// The inclusive range of a histogram bucket: (min, max), either open.
fn bucket_range(kind: &MapKind, i: u64) -> (Option<i64>, Option<i64>) {
    match *kind {
        // The last bucket ends at 2^63 - 1, the largest i64.
        MapKind::Hist { bits } if i > 0 => (
            Some(hist_bound(i - 1, bits).0 as i64),
            Some(hist_bound(i, bits).0.wrapping_sub(1) as i64),
        ),
        MapKind::Hist { .. } => (None, Some(-1)),
        MapKind::Lhist { min, max, step } => {
            let n = lhist_buckets(min, max, step);
            if i == 0 {
                (None, Some(min - 1))
            } else if i > n {
                (Some(max), None)
            } else {
                let lo = min + (i as i64 - 1) * step;
                (Some(lo), Some((lo + step).min(max) - 1))
            }
        }
        _ => (None, None),
    }
}

/// A map as one `-f json` record, as bpftrace writes it: `map` for
/// counts, sums, minima, maxima and values; `hist` for histograms;
/// `stats` for stats and averages.
pub fn print_map_json(m: &MapInfo, entries: &[RawEntry], syms: &dyn Symbols) -> String {
    let name = json_str(&format!("@{}", m.name));
    let keyed = !m.key.is_empty();
    let wrap = |kind: &str, items: Vec<(String, String)>| {
        let data = if keyed {
            let body: Vec<String> = items.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{{{name}: {{{}}}}}", body.join(", "))
        } else {
            let v = items.into_iter().next().map_or("0".to_string(), |(_, v)| v);
            format!("{{{name}: {v}}}")
        };
        json_record(kind, &data)
    };
    match &m.kind {
        MapKind::Hist { .. } | MapKind::Lhist { .. } => {
            let items = hist_rows(m, entries)
                .into_iter()
                .map(|(k, b)| {
                    let (lo, hi) = match (b.first_key_value(), b.last_key_value()) {
                        (Some((&lo, _)), Some((&hi, _))) => (lo, hi),
                        _ => (1, 0),
                    };
                    let buckets: Vec<String> = (lo..=hi)
                        .map(|i| {
                            let n = b.get(&i).copied().unwrap_or(0);
                            match bucket_range(&m.kind, i) {
                                (Some(a), Some(z)) => {
                                    format!("{{\"min\": {a}, \"max\": {z}, \"count\": {n}}}")
                                }
                                (None, Some(z)) => format!("{{\"max\": {z}, \"count\": {n}}}"),
                                (Some(a), None) => format!("{{\"min\": {a}, \"count\": {n}}}"),
                                (None, None) => format!("{{\"count\": {n}}}"),
                            }
                        })
                        .collect();
                    (json_key(m, &k, syms), format!("[{}]", buckets.join(", ")))
                })
                .collect();
            wrap("hist", items)
        }
        MapKind::Scalar(t) => {
            let rows = scalar_rows(t, entries, syms);
            let items = rows
                .iter()
                .map(|(d, k)| (json_key(m, k, syms), json_datum(d)))
                .collect();
            wrap("map", items)
        }
        kind => {
            let rows = aggregate_rows(kind, entries);
            let items = rows
                .iter()
                .map(|((v, count, total), k)| {
                    let v = match kind {
                        MapKind::Stats => {
                            format!("{{\"count\": {count}, \"average\": {v}, \"total\": {total}}}")
                        }
                        _ => v.to_string(),
                    };
                    (json_key(m, k, syms), v)
                })
                .collect();
            let kind = if matches!(kind, MapKind::Avg | MapKind::Stats) {
                "stats"
            } else {
                "map"
            };
            wrap(kind, items)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(name: &str, key: Vec<Ty>, kind: MapKind) -> MapInfo {
        MapInfo {
            name: name.into(),
            key,
            kind,
            index: 2,
            array: None,
        }
    }

    fn int(v: i64) -> Vec<u8> {
        v.to_le_bytes().to_vec()
    }

    fn pair(a: i64, b: u64) -> Vec<u8> {
        [a.to_le_bytes(), b.to_le_bytes()].concat()
    }

    /// Stack 1 is main → work (innermost first: work, main); stack 2 is
    /// a kernel stack with an unknown address; names by address.
    struct Fake;

    impl Symbols for Fake {
        fn stack(&self, id: u32) -> Vec<u64> {
            match id {
                1 => vec![0x20, 0x10],
                2 => vec![0x300, 0xdead],
                _ => vec![],
            }
        }
        fn resolve(&self, _pid: Option<u32>, addrs: &[u64]) -> Vec<Option<(String, u64, String)>> {
            addrs
                .iter()
                .map(|a| {
                    let n = match a {
                        0x10 => "main",
                        0x20 => "work;inner",
                        0x300 => "do_syscall_64",
                        _ => return None,
                    };
                    Some((n.to_string(), 4, "f".to_string()))
                })
                .collect()
        }
    }

    #[test]
    fn histograms_plot_as_svg() {
        let m = map("lat", vec![Ty::Str(8)], MapKind::Hist { bits: 0 });
        let mut k = b"a<b".to_vec();
        k.resize(8, 0);
        // Bucket 1 ([0]): 3; bucket 3 ([2, 4)): 5; a key per bucket.
        let key = |b: u64| [k.clone(), b.to_le_bytes().to_vec()].concat();
        let entries = vec![(key(1), vec![int(3)]), (key(3), vec![int(5)])];
        let other = map("n", vec![], MapKind::Count);
        let svg = hist_svg("t & u", &[(&m, entries), (&other, vec![])], &NoSymbols);
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">t &amp; u</text>"), "{svg}");
        assert!(svg.contains("@lat[a&lt;b] (8 values)"), "{svg}");
        // Three bars (the empty bucket between drawn as 0).
        assert_eq!(svg.matches("<rect x=").count(), 3, "{svg}");
        assert!(svg.contains("<title>[0] 3</title>"), "{svg}");
        assert!(svg.contains("<title>[1] 0</title>"), "{svg}");
        assert!(svg.contains("<title>[2, 4) 5</title>"), "{svg}");
        let empty = hist_svg("x", &[(&other, vec![])], &NoSymbols);
        assert!(empty.contains("no values were recorded"), "{empty}");
    }

    #[test]
    fn maps_keyed_by_stacks_fold() {
        let ustack = Ty::Stack {
            user: true,
            perf: false,
            limit: 0,
        };
        let kstack = Ty::Stack {
            user: false,
            perf: false,
            limit: 0,
        };
        let m = map(
            "",
            vec![Ty::Str(16), ustack, kstack.clone()],
            MapKind::Count,
        );
        let key = |comm: &str, u: i64, k: i64| {
            let mut b = comm.as_bytes().to_vec();
            b.resize(16, 0);
            [b, pair(u, 42), int(k)].concat()
        };
        let entries = vec![
            (key("busy", 1, 2), vec![int(3), int(4)]),
            // A failed stack walk (a negative id) is left out.
            (key("idle", 1, -14), vec![int(1)]),
        ];
        assert_eq!(
            folded_map(&m, &entries, &Fake).unwrap(),
            [
                "idle;main;work:inner 1",
                "busy;main;work:inner;0xdead;do_syscall_64 7"
            ]
        );
        // Not a count keyed by a stack: nothing to fold.
        let m = map("", vec![Ty::I64], MapKind::Count);
        assert!(folded_map(&m, &[], &Fake).is_none());
        let m = map("", vec![kstack], MapKind::Hist { bits: 0 });
        assert!(folded_map(&m, &[], &Fake).is_none());
    }

    #[test]
    fn labels_at_the_ends_of_the_integers() {
        // A found bug: the top hist bucket's bound, 2^63, recursed without
        // end through -i64::MIN.
        assert_eq!(size_label(i64::MIN), "-8E");
        assert_eq!(size_label(i64::MAX), "9223372036854775807");
        assert_eq!(bucket_label(&MapKind::Hist { bits: 0 }, 64), "[4E, 8E)");
        assert_eq!(bucket_label(&MapKind::Hist { bits: 0 }, 3), "[2, 4)");
        // An uneven step: whole steps only, then the overflow bucket.
        let l = MapKind::Lhist {
            min: 10,
            max: 100,
            step: 7,
        };
        assert_eq!(lhist_buckets(10, 100, 7), 12);
        assert_eq!(bucket_label(&l, 12), "[87, 94)");
        assert_eq!(bucket_label(&l, 13), "[100, ...)");
    }

    /// bpftrace's bucket index of `hist(n, k)`, written from its
    /// description: 0 for negatives, `n + 1` below `2^k`, else from the
    /// leftmost 1's position `l` and the `k` bits after it `y`:
    /// `((l - k + 1) << k) + y + 1`.
    fn hist_index(n: i64, k: u32) -> u64 {
        if n < 0 {
            return 0;
        }
        let n = n as u64;
        if n < 1 << k {
            return n + 1;
        }
        let l = 63 - n.leading_zeros();
        let y = (n >> (l - k)) & ((1 << k) - 1);
        (u64::from(l - k + 1) << k) + y + 1
    }

    #[test]
    fn every_hist_value_lies_in_its_buckets_range() {
        for k in 0..=5 {
            let kind = MapKind::Hist { bits: k };
            let mut values = vec![i64::MIN, -1, 0, 1, i64::MAX];
            for p in 1..63 {
                for d in [-1, 0, 1] {
                    values.push((1i64 << p) + d);
                }
                values.push((1i64 << p) + (1i64 << p) / 3);
            }
            for v in values {
                let i = hist_index(v, k);
                let (lo, hi) = bucket_range(&kind, i);
                assert!(lo.is_none_or(|lo| lo <= v), "k {k}: {v} below bucket {i}");
                assert!(hi.is_some_and(|hi| v <= hi), "k {k}: {v} above bucket {i}");
            }
            // Buckets tile the integers: each starts where the last ended.
            let last = ((64 - u64::from(k)) << k) as usize;
            assert_eq!(hist_index(i64::MAX, k), last as u64);
            assert_eq!(
                crate::codegen::MapInfo::array_entries(&[], &kind),
                Some(last as u32 + 1)
            );
            for i in 1..last as u64 {
                assert_eq!(
                    bucket_range(&kind, i).1.map(|h| h + 1),
                    bucket_range(&kind, i + 1).0,
                    "k {k}: bucket {i}"
                );
            }
        }
        // Labels as bpftrace writes them (its hist_index_label: m * 2^(p %
        // 10) with the suffix of p / 10; one value a bucket up to 2 << k).
        let two = MapKind::Hist { bits: 2 };
        assert_eq!(bucket_label(&two, 0), "(..., 0)");
        assert_eq!(bucket_label(&two, 1), "[0]");
        assert_eq!(bucket_label(&two, 8), "[7]");
        assert_eq!(bucket_label(&two, 9), "[8, 10)");
        assert_eq!(bucket_label(&two, 28), "[224, 256)");
        assert_eq!(bucket_label(&two, hist_index(3500, 2)), "[3072, 3584)");
        assert_eq!(bucket_label(&two, hist_index(3584, 2)), "[3584, 4K)");
        assert_eq!(
            bucket_label(&two, hist_index(1_000_000, 2)),
            "[896K, 1024K)"
        );
    }

    #[test]
    fn counts_sorted_by_value_summed_over_cpus() {
        let m = map("x", vec![Ty::I64], MapKind::Count);
        let e = vec![
            (int(1), vec![int(2), int(3)]),
            (int(2), vec![int(1), int(2)]),
        ];
        assert_eq!(print_map(&m, &e, &NoSymbols), "@x[2]: 3\n@x[1]: 5\n");
        let s = map("", vec![Ty::Str(16)], MapKind::Count);
        let mut k = b"bash".to_vec();
        k.resize(16, 0);
        assert_eq!(
            print_map(&s, &[(k, vec![int(7)])], &NoSymbols),
            "@[bash]: 7\n"
        );
        assert_eq!(print_map(&m, &[], &NoSymbols), "\n");
    }

    #[test]
    fn avg_stats_min_max() {
        let f = map("f", vec![], MapKind::Avg);
        assert_eq!(
            print_map(&f, &[(int(0), vec![pair(10, 1), pair(5, 1)])], &NoSymbols),
            "@f: 7\n\n"
        );
        let g = map("g", vec![], MapKind::Stats);
        assert_eq!(
            print_map(&g, &[(int(0), vec![pair(4, 1), pair(8, 1)])], &NoSymbols),
            "@g: count 2, average 6, total 12\n\n"
        );
        let v = map("v", vec![], MapKind::Max);
        assert_eq!(
            print_map(&v, &[(int(0), vec![pair(-3, 1), pair(0, 0)])], &NoSymbols),
            "@v: -3\n"
        );
    }

    #[test]
    fn histograms_as_bpftrace_draws_them() {
        let h = map("h", vec![], MapKind::Hist { bits: 0 });
        let k = |b: u64| [0u64.to_le_bytes(), b.to_le_bytes()].concat();
        // hist(3), hist(1) x3: buckets [1] = 3, [2, 4) = 1.
        let e = vec![(k(2), vec![int(3)]), (k(3), vec![int(1)])];
        assert_eq!(
            print_map(&h, &e, &NoSymbols),
            "@h: \n[1]                    3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n[2, 4)                 1 |@@@@@@@@@@@@@@@@@                                   |\n\n"
        );
        assert_eq!(bucket_label(&MapKind::Hist { bits: 0 }, 11), "[512, 1K)");
        assert_eq!(bucket_label(&MapKind::Hist { bits: 0 }, 33), "[2G, 4G)");
        let l = MapKind::Lhist {
            min: 0,
            max: 4096,
            step: 1024,
        };
        assert_eq!(bucket_label(&l, 3), "[2K, 3K)");
        assert_eq!(bucket_label(&l, 0), "(..., 0)");
        assert_eq!(bucket_label(&l, 5), "[4K, ...)");
    }
}
