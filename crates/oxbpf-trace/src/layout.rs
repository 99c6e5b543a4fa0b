//! Maps laid out as libbpf-tools prints them, for the three statements
//! oxbpf's language adds to bpftrace's (the ready tools use them; any
//! script may):
//!
//! - `print_rows(@a [, @b …], "row format" [, top [, sort]])`: a line per
//!   key of the maps (their keys must have one type), the format taking the
//!   key's parts and then each map's value for that key (0 where a map has
//!   none); rows ordered by map `sort`'s value (1: the first, the default),
//!   largest first, ties by key; only the `top` first (0: all). This is how
//!   libbpf's `syscount` prints `SYSCALL COUNT TIME (us)`.
//! - `print_hist(@h, "unit" [, "key format"])`: a `hist()` as libbpf's
//!   `print_log2_hist` draws it (`usecs : count distribution`, power-of-two
//!   slots from 0 to the highest one used, 40-star bars), an `lhist()` as
//!   its `print_linear_hist`; a map with keys gets one histogram per key,
//!   each after its key's line (the key format applied to the key's parts,
//!   as `"disk = %s\n"`; without one, `@h[key]:`); maps given after the
//!   key format (`print_hist(@h, "usecs", "%s: %d waits\n", @n)`) add their
//!   values for the key to its line.
//! - `print_stacks(@m, "before", "after")`: a count or sum keyed by stacks
//!   as BCC and libbpf-tools print stacks (`profile`, `offcputime`): for
//!   each entry, smallest value first, the `before` line, then each stack
//!   of the key in the key's order, a frame a line (`    name`, innermost
//!   first), then the `after` line; both formats take the key's other parts
//!   and then the value (`"    -                %s (%d)\n        %d\n\n"`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::codegen::MapInfo;
use crate::format::{Arg, Piece, render};
use crate::output::{
    Datum, RawEntry, Symbols, aggregate_rows, decode_with, hist_lower_bound, hist_rows, merged,
    stack_names,
};
use crate::types::{MapKind, Ty};

/// A layout statement of the script, kept with the compiled script (and in
/// an ahead-of-time object); maps are named, as the object names them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// `print_rows(@a, @b…, "fmt", top, sort)`.
    Rows {
        maps: Vec<String>,
        format: String,
        top: usize,
        /// Index in `maps` of the map whose values order the rows.
        sort: usize,
    },
    /// `print_hist(@h, "unit", "key format", @a…)`.
    Hist {
        map: String,
        unit: String,
        key: Option<String>,
        /// Maps whose values for each key the key line also takes.
        #[serde(default)]
        with: Vec<String>,
    },
    /// `print_stacks(@m, "before", "after")`.
    Stacks {
        map: String,
        before: String,
        after: String,
    },
}

impl Layout {
    /// The maps the layout reads, in its order.
    pub fn maps(&self) -> Vec<&str> {
        match self {
            Layout::Rows { maps, .. } => maps.iter().map(String::as_str).collect(),
            Layout::Hist { map, with, .. } => std::iter::once(map)
                .chain(with)
                .map(String::as_str)
                .collect(),
            Layout::Stacks { map, .. } => vec![map.as_str()],
        }
    }
}

/// A decoded value as a printf argument: numbers as integers, the rest as
/// their text.
pub fn format_arg(d: &Datum) -> Arg {
    match d {
        Datum::Int(v) => Arg::Int(*v),
        Datum::Uint(v) | Datum::Ptr(v) => Arg::Int(*v as i64),
        Datum::Bool(b) => Arg::Int(i64::from(*b)),
        d => Arg::Str(d.to_string()),
    }
}

/// A key's parts as printf arguments (a tuple key flat).
fn key_args(m: &MapInfo, key: &[u8], syms: &dyn Symbols) -> Vec<Arg> {
    let mut at = 0;
    let mut args = Vec::new();
    for t in &m.key {
        match decode_with(t, key.get(at..).unwrap_or(&[]), syms) {
            Datum::Tuple(items) => args.extend(items.iter().map(format_arg)),
            d => args.push(format_arg(&d)),
        }
        at += t.stored_size();
    }
    args
}

/// The text of a layout, given each of its maps (in [`Layout::maps`]'
/// order) with its entries; `format`/`key` parsed by [`crate::format`].
pub fn print_layout(
    layout: &Layout,
    maps: &[(&MapInfo, Vec<RawEntry>)],
    syms: &dyn Symbols,
) -> String {
    match layout {
        Layout::Rows {
            format, top, sort, ..
        } => {
            let pieces = crate::format::parse(format).unwrap_or_default();
            print_rows(maps, &pieces, *top, *sort, syms)
        }
        Layout::Hist { unit, key, .. } => {
            let key = key
                .as_deref()
                .map(|k| crate::format::parse(k).unwrap_or_default());
            match maps.split_first() {
                Some(((m, entries), with)) => {
                    print_hist(m, entries, unit, key.as_deref(), with, syms)
                }
                None => String::new(),
            }
        }
        Layout::Stacks { before, after, .. } => {
            let before = crate::format::parse(before).unwrap_or_default();
            let after = crate::format::parse(after).unwrap_or_default();
            match maps.first() {
                Some((m, entries)) => print_stacks(m, entries, &before, &after, syms),
                None => String::new(),
            }
        }
    }
}

/// `print_stacks`: see the module's documentation.
pub fn print_stacks(
    m: &MapInfo,
    entries: &[RawEntry],
    before: &[Piece],
    after: &[Piece],
    syms: &dyn Symbols,
) -> String {
    let mut out = String::new();
    for ((v, _, _), key) in aggregate_rows(&m.kind, entries) {
        let mut args = Vec::new();
        let mut frames = Vec::new();
        let mut at = 0;
        for t in &m.key {
            let b = key.get(at..).unwrap_or(&[]);
            at += t.stored_size();
            match t {
                Ty::Stack { user, limit, .. } => {
                    frames.extend(stack_names(*user, *limit, b, syms).unwrap_or_default())
                }
                t => match decode_with(t, b, syms) {
                    Datum::Tuple(items) => args.extend(items.iter().map(format_arg)),
                    d => args.push(format_arg(&d)),
                },
            }
        }
        args.push(Arg::Int(v));
        out.push_str(&render(before, &args));
        for f in frames {
            let _ = writeln!(out, "    {f}");
        }
        out.push_str(&render(after, &args));
    }
    out
}

/// `print_rows`: see the module's documentation.
pub fn print_rows(
    maps: &[(&MapInfo, Vec<RawEntry>)],
    format: &[Piece],
    top: usize,
    sort: usize,
    syms: &dyn Symbols,
) -> String {
    // Key bytes -> each map's merged value.
    let mut rows: BTreeMap<&[u8], Vec<i64>> = BTreeMap::new();
    for (i, (m, entries)) in maps.iter().enumerate() {
        for (k, cpus) in entries {
            let Some((v, _, _)) = merged(&m.kind, cpus) else {
                continue;
            };
            rows.entry(k.as_slice())
                .or_insert_with(|| vec![0; maps.len()])[i] = v;
        }
    }
    let mut rows: Vec<(&[u8], Vec<i64>)> = rows.into_iter().collect();
    let sort = sort.min(maps.len().saturating_sub(1));
    // Stable: equal values keep the key order.
    rows.sort_by(|a, b| b.1[sort].cmp(&a.1[sort]));
    if top > 0 {
        rows.truncate(top);
    }
    let Some((first, _)) = maps.first() else {
        return String::new();
    };
    let mut out = String::new();
    for (k, values) in rows {
        let mut args = key_args(first, k, syms);
        args.extend(values.into_iter().map(Arg::Int));
        out.push_str(&render(format, &args));
    }
    out
}

/// `print_hist`: see the module's documentation.
pub fn print_hist(
    m: &MapInfo,
    entries: &[RawEntry],
    unit: &str,
    key: Option<&[Piece]>,
    with: &[(&MapInfo, Vec<RawEntry>)],
    syms: &dyn Symbols,
) -> String {
    let mut out = String::new();
    // Each trailing map's values by key, merged over CPUs once.
    let with: Vec<BTreeMap<&[u8], i64>> = with
        .iter()
        .map(|(w, we)| {
            we.iter()
                .filter_map(|(k, cpus)| Some((k.as_slice(), merged(&w.kind, cpus)?.0)))
                .collect()
        })
        .collect();
    for (k, buckets) in hist_rows(m, entries) {
        if !m.key.is_empty() {
            match key {
                Some(f) => {
                    let mut args = key_args(m, &k, syms);
                    args.extend(
                        with.iter()
                            .map(|w| Arg::Int(w.get(k.as_slice()).copied().unwrap_or(0))),
                    );
                    out.push_str(&render(f, &args));
                }
                None => {
                    let parts: Vec<String> = key_args(m, &k, syms)
                        .into_iter()
                        .map(|a| match a {
                            Arg::Int(v) => v.to_string(),
                            Arg::Str(s) => s,
                        })
                        .collect();
                    let _ = writeln!(out, "@{}[{}]:", m.name, parts.join(", "));
                }
            }
        }
        match m.kind {
            MapKind::Hist { bits } => log2_hist(&mut out, &log2_slots(&buckets, bits), unit),
            MapKind::Lhist { min, max, step } => {
                linear_hist(&mut out, &buckets, min, max, step, unit)
            }
            _ => {}
        }
    }
    out
}

/// A `hist()`'s buckets (bpftrace's indices: 0 below zero, then `[0]`,
/// `[1]`, `[2, 4)` …, finer with `bits`) as libbpf's slots: slot 0 holds 0
/// and 1, slot `s` the values `2^s ..= 2^(s+1) - 1`. Returns the slots and
/// the count of negative values (libbpf's values are unsigned).
fn log2_slots(buckets: &BTreeMap<u64, u64>, bits: u32) -> (Vec<u64>, u64) {
    let mut slots = Vec::new();
    let mut negative = 0;
    for (&i, &n) in buckets {
        if i == 0 {
            negative += n;
            continue;
        }
        let lo = hist_lower_bound(i, bits);
        let slot = if lo <= 1 { 0 } else { lo.ilog2() as usize };
        if slots.len() <= slot {
            slots.resize(slot + 1, 0);
        }
        slots[slot] += n;
    }
    (slots, negative)
}

/// libbpf's bar: `val * width / max` stars (a `+` past the width).
fn stars(out: &mut String, val: u64, max: u64, width: usize) {
    let n = if max == 0 {
        0
    } else {
        (u128::from(val.min(max)) * width as u128 / u128::from(max)) as usize
    };
    out.push_str(&"*".repeat(n));
    out.push_str(&" ".repeat(width - n));
    if val > max {
        out.push('+');
    }
}

/// libbpf's `print_log2_hist`: nothing when every slot is empty; up to
/// slot 32 narrow columns and 40 stars, wider ones and 20 above.
fn log2_hist(out: &mut String, (slots, negative): &(Vec<u64>, u64), unit: &str) {
    let top = slots.iter().rposition(|&n| n > 0);
    if top.is_none() && *negative == 0 {
        return;
    }
    let top = top.unwrap_or(0);
    let max = slots.iter().copied().max().unwrap_or(0).max(*negative);
    let narrow = top <= 32;
    let (pad, label, width, bar) = if narrow {
        (5, 19, 10, 40)
    } else {
        (15, 29, 20, 20)
    };
    let _ = writeln!(
        out,
        "{:pad$}{unit:<label$} : count    distribution",
        "",
        pad = pad,
        label = label
    );
    // Values below zero (libbpf's are unsigned): a row of their own.
    if *negative > 0 {
        let _ = write!(out, "{:>w$} : {negative:<8} |", "< 0", w = 2 * width + 4);
        stars(out, *negative, max, bar);
        out.push_str("|\n");
    }
    for (i, &n) in slots.iter().enumerate().take(top + 1) {
        let high: u128 = (1u128 << (i + 1)) - 1;
        let mut low: u128 = (1u128 << (i + 1)) >> 1;
        if low == high {
            low -= 1;
        }
        let _ = write!(out, "{low:>width$} -> {high:<width$} : {n:<8} |");
        stars(out, n, max, bar);
        out.push_str("|\n");
    }
}

/// libbpf's `print_linear_hist`: the used buckets from the first to the
/// last, each labelled by its lowest value, empty ones left out; values
/// below `min` or from `max` up under `< min` and `>= max`.
fn linear_hist(
    out: &mut String,
    buckets: &BTreeMap<u64, u64>,
    min: i64,
    max: i64,
    step: i64,
    unit: &str,
) {
    let n = crate::output::lhist_buckets(min, max, step);
    let used: Vec<(u64, u64)> = buckets
        .iter()
        .filter(|&(_, &c)| c > 0)
        .map(|(&i, &c)| (i, c))
        .collect();
    if used.is_empty() {
        return;
    }
    let most = used.iter().map(|&(_, c)| c).max().unwrap_or(0);
    let _ = writeln!(out, "     {unit:<13} : count     distribution");
    for (i, c) in used {
        let label = if i == 0 {
            format!("< {min}")
        } else if i > n {
            format!(">= {max}")
        } else {
            (min + (i as i64 - 1) * step).to_string()
        };
        let _ = write!(out, "        {label:<10} : {c:<8} |");
        stars(out, c, most, 40);
        out.push_str("|\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::NoSymbols;

    fn map(name: &str, key: Vec<Ty>, kind: MapKind) -> MapInfo {
        MapInfo {
            name: name.into(),
            key,
            kind,
            index: 2,
            array: None,
        }
    }

    fn v(n: u64) -> Vec<u8> {
        n.to_le_bytes().to_vec()
    }

    fn s(text: &str) -> Vec<u8> {
        let mut b = text.as_bytes().to_vec();
        b.resize(16, 0);
        b
    }

    #[test]
    fn log2_histograms_as_libbpf_draws_them() {
        let m = map("usecs", vec![], MapKind::Hist { bits: 0 });
        // bpftrace's buckets: 1 = [0], 2 = [1], 3 = [2, 4), 5 = [8, 16).
        let key = |b: u64| [vec![0; 8], v(b)].concat();
        let entries = vec![
            (key(1), vec![v(1)]),
            (key(2), vec![v(1), v(2)]),
            (key(3), vec![v(2)]),
            (key(5), vec![v(8)]),
        ];
        let text = print_hist(&m, &entries, "usecs", None, &[], &NoSymbols);
        let want = "     usecs               : count    distribution\n\
\x20        0 -> 1          : 4        |********************                    |\n\
\x20        2 -> 3          : 2        |**********                              |\n\
\x20        4 -> 7          : 0        |                                        |\n\
\x20        8 -> 15         : 8        |****************************************|\n";
        assert_eq!(text, want);
        // Nothing counted: nothing printed, as libbpf does.
        assert_eq!(print_hist(&m, &[], "usecs", None, &[], &NoSymbols), "");
    }

    #[test]
    fn finer_buckets_fold_into_their_power_of_two() {
        // hist(x, 2): the buckets above 8 split each power of two in 4;
        // all of [16, 32) is libbpf's slot 4.
        let mut b = BTreeMap::new();
        for i in 1..40u64 {
            b.insert(i, 1);
        }
        let (slots, neg) = log2_slots(&b, 2);
        assert_eq!(neg, 0);
        let mut want = vec![0u64; slots.len()];
        for i in 1..40u64 {
            let lo = hist_lower_bound(i, 2);
            want[if lo <= 1 { 0 } else { lo.ilog2() as usize }] += 1;
        }
        assert_eq!(slots, want);
        assert_eq!(slots.iter().sum::<u64>(), 39);
        // Every bucket's bounds lie within one slot.
        for i in 1..39u64 {
            let lo = hist_lower_bound(i, 2);
            let hi = hist_lower_bound(i + 1, 2) - 1;
            let slot = |x: u64| if x <= 1 { 0 } else { x.ilog2() };
            assert_eq!(slot(lo), slot(hi), "bucket {i}: [{lo}, {hi}]");
        }
    }

    #[test]
    fn keyed_histograms_each_after_their_key_line() {
        let m = map("us", vec![Ty::Str(16)], MapKind::Hist { bits: 0 });
        let key = |d: &str, b: u64| [s(d), v(b)].concat();
        let entries = vec![(key("vda", 4), vec![v(3)]), (key("loop0", 3), vec![v(1)])];
        let f = crate::format::parse("\ndisk = %s\n").unwrap();
        let text = print_hist(&m, &entries, "usecs", Some(&f), &[], &NoSymbols);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "");
        assert_eq!(lines[1], "disk = loop0");
        assert!(lines[3].starts_with("         0 -> 1          : 0 "));
        assert_eq!(
            lines[4],
            "         2 -> 3          : 1        |****************************************|"
        );
        assert_eq!(lines[6], "disk = vda");
        assert!(
            lines[10].starts_with("         4 -> 7          : 3 "),
            "{text}"
        );
        // Without a key format, the key as bpftrace labels it.
        let text = print_hist(&m, &entries, "usecs", None, &[], &NoSymbols);
        assert!(text.starts_with("@us[loop0]:\n     usecs"), "{text}");
    }

    #[test]
    fn linear_histograms_as_libbpf_draws_them() {
        let m = map(
            "q",
            vec![],
            MapKind::Lhist {
                min: 0,
                max: 10,
                step: 1,
            },
        );
        let key = |b: u64| [vec![0; 8], v(b)].concat();
        // Buckets 1 = [0, 1), 3 = [2, 3), 11 = [10, ...).
        let entries = vec![
            (key(1), vec![v(10)]),
            (key(3), vec![v(5)]),
            (key(11), vec![v(1)]),
        ];
        let text = print_hist(&m, &entries, "runqlen", None, &[], &NoSymbols);
        let want = "     runqlen       : count     distribution\n\
\x20       0          : 10       |****************************************|\n\
\x20       2          : 5        |********************                    |\n\
\x20       >= 10      : 1        |****                                    |\n";
        assert_eq!(text, want);
    }

    #[test]
    fn rows_sorted_by_the_chosen_map_largest_first() {
        let calls = map("calls", vec![Ty::Str(16)], MapKind::Count);
        let us = map("us", vec![Ty::Str(16)], MapKind::Sum);
        let calls_e = vec![
            (s("read"), vec![v(10), v(5)]),
            (s("write"), vec![v(3)]),
            (s("openat"), vec![v(7)]),
        ];
        let us_e = vec![(s("read"), vec![v(40)]), (s("write"), vec![v(900)])];
        let f = crate::format::parse("%-22s %8d %16d\n").unwrap();
        let maps = [(&calls, calls_e), (&us, us_e)];
        let text = print_rows(&maps, &f, 0, 0, &NoSymbols);
        assert_eq!(
            text,
            format!(
                "{:<22} {:>8} {:>16}\n{:<22} {:>8} {:>16}\n{:<22} {:>8} {:>16}\n",
                "read", 15, 40, "openat", 7, 0, "write", 3, 900
            )
        );
        // By the second map, the first two only.
        let text = print_rows(&maps, &f, 2, 1, &NoSymbols);
        let names: Vec<&str> = text.lines().map(|l| &l[..6]).collect();
        assert_eq!(names, ["write ", "read  "]);
    }

    /// Stack 1 is main → work (innermost first: work, main).
    struct Fake;

    impl Symbols for Fake {
        fn stack(&self, id: u32) -> Vec<u64> {
            if id == 1 {
                vec![0x20, 0x10, 0x99]
            } else {
                vec![]
            }
        }
        fn resolve(&self, _pid: Option<u32>, addrs: &[u64]) -> Vec<Option<(String, u64, String)>> {
            addrs
                .iter()
                .map(|a| match a {
                    0x10 => Some(("main".to_string(), 4, "f".to_string())),
                    0x20 => Some(("work".to_string(), 8, "f".to_string())),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn stacks_as_bcc_prints_them() {
        let m = map(
            "s",
            vec![
                Ty::Stack {
                    user: false,
                    perf: false,
                    limit: 0,
                },
                Ty::Str(16),
                Ty::U64,
            ],
            MapKind::Sum,
        );
        let key = |id: u64, comm: &str, pid: u64| [v(id), s(comm), v(pid)].concat();
        let e = vec![
            (key(1, "dd", 42), vec![v(7), v(5)]),
            (key(2, "sh", 9), vec![v(3)]),
        ];
        let after = crate::format::parse("    -                %s (%d)\n        %d\n\n").unwrap();
        let text = print_stacks(&m, &e, &[], &after, &Fake);
        // Smallest first; stack 2 has no frames.
        assert_eq!(
            text,
            "    -                sh (9)\n        3\n\n    work\n    main\n    0x99\n    -                dd (42)\n        12\n\n"
        );
    }

    #[test]
    fn tuple_keys_fill_several_columns() {
        let m = map(
            "calls",
            vec![Ty::Tuple(vec![Ty::U64, Ty::Str(16)])],
            MapKind::Count,
        );
        let e = vec![([v(42), s("dd")].concat(), vec![v(3)])];
        let f = crate::format::parse("%-6d %-15s %8d\n").unwrap();
        let text = print_rows(&[(&m, e)], &f, 10, 0, &NoSymbols);
        assert_eq!(text, format!("{:<6} {:<15} {:>8}\n", 42, "dd", 3));
    }
}
