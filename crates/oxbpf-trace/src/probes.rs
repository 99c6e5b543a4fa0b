//! Attach points as bpftrace writes them (`tracepoint:syscalls:sys_enter_*`,
//! `u:/bin/bash:readline`, `i:ms:100`, `BEGIN`), parsed into what to attach.

use crate::diag::{Diagnostic, Span};

/// What a probe attaches to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProbeKind {
    Begin,
    End,
    /// `tracepoint:CAT:NAME` (either may be a wildcard).
    Tracepoint {
        category: String,
        name: String,
    },
    /// `rawtracepoint:NAME`.
    RawTracepoint {
        name: String,
    },
    /// `uprobe:PATH:FUNC[+OFF]`, `uretprobe:…`, `uprobe:PATH:ADDR`.
    Uprobe {
        path: String,
        func: String,
        offset: u64,
        ret: bool,
    },
    /// `usdt:PATH:[PROVIDER:]NAME`.
    Usdt {
        path: String,
        provider: Option<String>,
        name: String,
    },
    /// `interval:UNIT:N`: every period, on one CPU (`as_written`:
    /// `UNIT:N`, for the probe's name).
    Interval {
        period_ns: u64,
        as_written: String,
    },
    /// `profile:UNIT:N`: on every CPU, `hz` times a second or every
    /// `period_ns`.
    Profile {
        hz: Option<u64>,
        period_ns: u64,
        as_written: String,
    },
    /// `software:EVENT[:COUNT]`.
    Software {
        event: String,
        count: u64,
    },
    /// `watchpoint:ADDR:LEN:MODE`: a hardware breakpoint on `len` bytes at
    /// `addr`, for the accesses in `mode` (`r`, `w`, `x`, e.g. `rw`).
    Watchpoint {
        addr: u64,
        len: u64,
        mode: String,
    },
    /// `kprobe:FUNC[+OFF]`, `kretprobe:FUNC` (`MODULE:FUNC` too; a
    /// wildcard makes one kprobe.multi program): arguments from
    /// `struct pt_regs`. Refused at attach where the kernel has no kprobes.
    Kprobe {
        func: String,
        offset: u64,
        ret: bool,
    },
    /// `fentry:FUNC`, `fexit:FUNC` (also `kfunc`/`kretfunc`,
    /// `MODULE:FUNC`): arguments by name and type from the function's BTF
    /// (`args.NAME`), `retval` in fexit. Refused at load where the kernel
    /// has no BPF trampolines.
    Fentry {
        func: String,
        ret: bool,
    },
    /// Kinds that compile but need what this kernel may lack (hardware
    /// counters): refused at attach with the reason.
    Unavailable {
        kind: String,
        target: String,
    },
}

impl ProbeKind {
    /// The probe's full name as bpftrace spells it (the `probe` builtin).
    pub fn full_name(&self) -> String {
        match self {
            ProbeKind::Begin => "BEGIN".into(),
            ProbeKind::End => "END".into(),
            ProbeKind::Tracepoint { category, name } => format!("tracepoint:{category}:{name}"),
            ProbeKind::RawTracepoint { name } => format!("rawtracepoint:{name}"),
            ProbeKind::Uprobe {
                path,
                func,
                offset,
                ret,
            } => {
                let k = if *ret { "uretprobe" } else { "uprobe" };
                if *offset != 0 {
                    format!("{k}:{path}:{func}+{offset}")
                } else {
                    format!("{k}:{path}:{func}")
                }
            }
            ProbeKind::Usdt {
                path,
                provider,
                name,
            } => match provider {
                Some(p) => format!("usdt:{path}:{p}:{name}"),
                None => format!("usdt:{path}:{name}"),
            },
            ProbeKind::Interval { as_written, .. } => format!("interval:{as_written}"),
            ProbeKind::Profile { as_written, .. } => format!("profile:{as_written}"),
            ProbeKind::Software { event, count } => format!("software:{event}:{count}"),
            ProbeKind::Watchpoint { addr, len, mode } => {
                format!("watchpoint:{addr:#x}:{len}:{mode}")
            }
            ProbeKind::Kprobe { func, offset, ret } => {
                let k = if *ret { "kretprobe" } else { "kprobe" };
                if *offset != 0 {
                    format!("{k}:{func}+{offset}")
                } else {
                    format!("{k}:{func}")
                }
            }
            ProbeKind::Fentry { func, ret } => {
                format!("{}:{func}", if *ret { "fexit" } else { "fentry" })
            }
            ProbeKind::Unavailable { kind, target } => format!("{kind}:{target}"),
        }
    }
}

/// bpftrace's long names for the short provider names.
fn provider(p: &str) -> &str {
    match p {
        "t" => "tracepoint",
        "rt" => "rawtracepoint",
        "u" => "uprobe",
        "ur" => "uretprobe",
        "U" => "usdt",
        "i" => "interval",
        "p" => "profile",
        "s" => "software",
        "h" => "hardware",
        "k" => "kprobe",
        "kr" => "kretprobe",
        "f" | "kfunc" => "fentry",
        "fr" | "kretfunc" => "fexit",
        "w" => "watchpoint",
        "begin" => "BEGIN",
        "end" => "END",
        other => other,
    }
}

/// The providers, for "did you mean" hints.
pub const PROVIDERS: &[&str] = &[
    "BEGIN",
    "END",
    "tracepoint",
    "rawtracepoint",
    "uprobe",
    "uretprobe",
    "usdt",
    "interval",
    "profile",
    "software",
    "hardware",
    "kprobe",
    "kretprobe",
    "fentry",
    "fexit",
    "watchpoint",
];

/// A period in nanoseconds from a unit (`s`, `ms`, `us`, `hz`) and count.
fn period(unit: &str, n: u64) -> Option<u64> {
    match unit {
        "s" => n.checked_mul(1_000_000_000),
        "ms" => n.checked_mul(1_000_000),
        "us" => n.checked_mul(1_000),
        "ns" => Some(n),
        "hz" if n > 0 => Some(1_000_000_000 / n),
        _ => None,
    }
}

fn number(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses one attach point.
pub fn parse_attach(text: &str, span: Span) -> Result<ProbeKind, Diagnostic> {
    let err = |m: String| Diagnostic::new(span, m);
    let (head, rest) = match text.split_once(':') {
        Some((h, r)) => (h, Some(r)),
        None => (text, None),
    };
    let p = provider(head);
    let need = |what: &str| err(format!("{p} probes are written {what}"));
    Ok(match (p, rest) {
        ("BEGIN", None) => ProbeKind::Begin,
        ("END", None) => ProbeKind::End,
        ("tracepoint", Some(r)) => {
            let (c, n) = r
                .split_once(':')
                .ok_or_else(|| need("tracepoint:CATEGORY:NAME"))?;
            if c.is_empty() || n.is_empty() || n.contains(':') {
                return Err(need("tracepoint:CATEGORY:NAME"));
            }
            ProbeKind::Tracepoint {
                category: c.into(),
                name: n.into(),
            }
        }
        ("rawtracepoint", Some(r)) => {
            // bpftrace ≥ 0.21 also accepts rawtracepoint:MODULE:NAME.
            let name = r.rsplit(':').next().unwrap_or(r);
            if name.is_empty() {
                return Err(need("rawtracepoint:NAME"));
            }
            ProbeKind::RawTracepoint { name: name.into() }
        }
        ("uprobe" | "uretprobe", Some(r)) => {
            let (path, func) = r
                .rsplit_once(':')
                .filter(|(p, f)| !p.is_empty() && !f.is_empty())
                .ok_or_else(|| need("uprobe:PATH:FUNCTION (or PATH:ADDRESS, FUNCTION+OFFSET)"))?;
            let (func, offset) = match func.split_once('+') {
                Some((f, o)) => (
                    f,
                    number(o).ok_or_else(|| err(format!("`{o}` is not an offset")))?,
                ),
                None => (func, 0),
            };
            ProbeKind::Uprobe {
                path: path.into(),
                func: func.into(),
                offset,
                ret: p == "uretprobe",
            }
        }
        ("usdt", Some(r)) => {
            let parts: Vec<&str> = r.split(':').collect();
            match parts[..] {
                [path, name] if !path.is_empty() && !name.is_empty() => ProbeKind::Usdt {
                    path: path.into(),
                    provider: None,
                    name: name.into(),
                },
                [path, prov, name] if !path.is_empty() && !name.is_empty() => ProbeKind::Usdt {
                    path: path.into(),
                    provider: Some(prov.into()).filter(|p: &String| !p.is_empty()),
                    name: name.into(),
                },
                _ => return Err(need("usdt:PATH:[PROVIDER:]NAME")),
            }
        }
        ("interval" | "profile", Some(r)) => {
            let (unit, n) = match r.split_once(':') {
                Some((u, n)) => (u, n),
                // `interval:1s` style is not bpftrace's; `profile:99` is
                // not either: say how.
                None => return Err(need(&format!("{p}:UNIT:N (UNIT one of s, ms, us, hz)"))),
            };
            let n = number(n).ok_or_else(|| err(format!("`{n}` is not a number")))?;
            let ns = period(unit, n).filter(|&ns| ns > 0).ok_or_else(|| {
                err(format!(
                    "`{unit}:{n}` is not a period (units: s, ms, us, hz)"
                ))
            })?;
            let as_written = format!("{unit}:{n}");
            if p == "interval" {
                ProbeKind::Interval {
                    period_ns: ns,
                    as_written,
                }
            } else {
                ProbeKind::Profile {
                    hz: (unit == "hz").then_some(n),
                    period_ns: ns,
                    as_written,
                }
            }
        }
        ("software", Some(r)) => {
            let (event, count) = match r.split_once(':') {
                Some((e, c)) => (
                    e,
                    number(c).ok_or_else(|| err(format!("`{c}` is not a count")))?,
                ),
                None => (r, 0),
            };
            ProbeKind::Software {
                event: event.into(),
                count,
            }
        }
        ("watchpoint", Some(r)) => {
            let parts: Vec<&str> = r.split(':').collect();
            let [addr, len, mode] = parts[..] else {
                return Err(err(format!(
                    "`{text}`: a watchpoint is watchpoint:ADDRESS:LENGTH:MODE (e.g. watchpoint:0x10000000:8:rw)"
                )));
            };
            let addr = number(addr).ok_or_else(|| {
                err(format!(
                    "`{addr}` is not an address (watchpoints on function arguments are not supported; give an absolute address)"
                ))
            })?;
            let len = match number(len) {
                Some(n @ (1 | 2 | 4 | 8)) => n,
                _ => {
                    return Err(err(format!(
                        "a watchpoint's length is 1, 2, 4 or 8, not `{len}`"
                    )));
                }
            };
            // x86 watches writes, reads with writes, or execution.
            if !matches!(mode, "w" | "rw" | "wr" | "x") {
                return Err(err(format!(
                    "a watchpoint's mode is w, rw or x (reads alone cannot be watched), not `{mode}`"
                )));
            }
            ProbeKind::Watchpoint {
                addr,
                len,
                mode: mode.to_string(),
            }
        }
        ("kprobe" | "kretprobe", Some(r)) => {
            let ret = p == "kretprobe";
            let (func, offset) = match r.rsplit_once('+') {
                Some((f, o)) => (
                    f,
                    number(o).ok_or_else(|| err(format!("`{o}` is not an offset")))?,
                ),
                None => (r, 0),
            };
            if func.is_empty() || func.ends_with(':') {
                return Err(need(&format!("{p}:FUNCTION")));
            }
            if ret && offset != 0 {
                return Err(err(
                    "a kretprobe is on a function's return: it takes no offset".into(),
                ));
            }
            ProbeKind::Kprobe {
                func: func.into(),
                offset,
                ret,
            }
        }
        ("fentry" | "fexit", Some(r)) => {
            if r.is_empty() || r.ends_with(':') {
                return Err(need(&format!("{p}:FUNCTION")));
            }
            ProbeKind::Fentry {
                func: r.into(),
                ret: p == "fexit",
            }
        }
        ("hardware", Some(r)) => ProbeKind::Unavailable {
            kind: p.into(),
            target: r.into(),
        },
        ("BEGIN" | "END", Some(_)) => return Err(err(format!("{p} takes no arguments"))),
        (_, None) if PROVIDERS.contains(&p) => {
            return Err(err(format!("`{text}` needs a target (e.g. {p}:…)")));
        }
        _ => {
            let d = err(format!("unknown probe type `{head}`"));
            return Err(
                match crate::diag::nearest(head, PROVIDERS.iter().copied()) {
                    Some(n) => d.with_hint(format!("did you mean `{n}`?")),
                    None => d,
                },
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ProbeKind {
        parse_attach(s, Span::default()).unwrap()
    }

    #[test]
    fn long_and_short_names() {
        assert_eq!(
            p("t:syscalls:sys_enter_*"),
            ProbeKind::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_*".into()
            }
        );
        assert_eq!(
            p("i:ms:100"),
            ProbeKind::Interval {
                period_ns: 100_000_000,
                as_written: "ms:100".into()
            }
        );
        assert_eq!(p("i:ms:100").full_name(), "interval:ms:100");
        assert_eq!(
            p("profile:hz:99"),
            ProbeKind::Profile {
                hz: Some(99),
                period_ns: 1_000_000_000 / 99,
                as_written: "hz:99".into()
            }
        );
        assert_eq!(
            p("ur:/bin/bash:readline"),
            ProbeKind::Uprobe {
                path: "/bin/bash".into(),
                func: "readline".into(),
                offset: 0,
                ret: true
            }
        );
        assert_eq!(
            p("uprobe:libc:malloc+0x10").full_name(),
            "uprobe:libc:malloc+16"
        );
        assert_eq!(
            p("kprobe:vfs_read+0x8"),
            ProbeKind::Kprobe {
                func: "vfs_read".into(),
                offset: 8,
                ret: false
            }
        );
        assert_eq!(p("kr:vfs_read").full_name(), "kretprobe:vfs_read");
        assert_eq!(
            p("kfunc:vmlinux:vfs_read").full_name(),
            "fentry:vmlinux:vfs_read"
        );
        assert_eq!(
            p("fr:vfs_read"),
            ProbeKind::Fentry {
                func: "vfs_read".into(),
                ret: true
            }
        );
        assert!(matches!(p("h:cache-misses"), ProbeKind::Unavailable { .. }));
        assert_eq!(p("begin"), ProbeKind::Begin);
        assert_eq!(
            p("w:0x10000000:8:rw"),
            ProbeKind::Watchpoint {
                addr: 0x1000_0000,
                len: 8,
                mode: "rw".into()
            }
        );
        assert_eq!(
            p("watchpoint:4096:1:x").full_name(),
            "watchpoint:0x1000:1:x"
        );
        for bad in [
            "w:0x10:3:w",
            "w:0x10:8:q",
            "w:0x10:8:r",
            "w:0x10:8:rx",
            "w:func+arg0:8:w",
            "w:0x10:8",
        ] {
            assert!(parse_attach(bad, Span::default()).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_explained() {
        let e = parse_attach("tracepiont:a:b", Span::default()).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean `tracepoint`?"));
        assert!(parse_attach("interval:1", Span::default()).is_err());
        assert!(parse_attach("interval:min:1", Span::default()).is_err());
        assert!(parse_attach("tracepoint:syscalls", Span::default()).is_err());
        assert!(parse_attach("uprobe:readline", Span::default()).is_err());
    }
}
