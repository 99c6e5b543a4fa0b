//! Where a program attaches, from its section name, by libbpf's
//! conventions (the `section_defs` table in libbpf.c): `tracepoint/CAT/NAME`,
//! `raw_tp/NAME`, `uprobe/PATH:SYMBOL+OFF`, `xdp`, `cgroup/connect4`, ...

use std::fmt;

/// An attachment point named by a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// `tracepoint/CAT/NAME`, `tp/CAT/NAME`: a perf tracepoint event.
    Tracepoint { category: String, name: String },
    /// `raw_tracepoint/NAME`, `raw_tp/NAME` (`.w`: writable arguments).
    RawTracepoint { name: String, writable: bool },
    /// `tp_btf/NAME`: a BTF-typed raw tracepoint (target fixed at load).
    TpBtf { name: String },
    /// `uprobe/PATH:SYMBOL[+OFF]`, `uretprobe/...` (`.s`: sleepable).
    Uprobe {
        path: String,
        symbol: String,
        offset: u64,
        ret: bool,
    },
    /// `uprobe.multi/PATH:PATTERN`, `uretprobe.multi/...`.
    UprobeMulti {
        path: String,
        pattern: String,
        ret: bool,
    },
    /// `usdt/PATH:PROVIDER:NAME`.
    Usdt {
        path: String,
        provider: String,
        name: String,
    },
    /// `kprobe/FUNC[+OFF]`, `kretprobe/FUNC`, `ksyscall/NAME`,
    /// `kprobe.multi/PATTERN`, ...
    Kprobe { target: String, ret: bool },
    /// `kprobe.multi/PATTERN`, `kretprobe.multi/PATTERN`,
    /// `kprobe.session/PATTERN`: one link on every traceable kernel
    /// function matching the glob (fprobe).
    KprobeMulti {
        pattern: String,
        ret: bool,
        session: bool,
    },
    /// `fentry/FUNC`, `fexit/FUNC`, `fmod_ret/FUNC`, `lsm/HOOK`,
    /// `freplace/FUNC`: BPF trampolines.
    Trampoline { kind: &'static str, target: String },
    /// `perf_event`: sampling events (software cpu-clock by default).
    PerfEvent,
    /// A `perf_event` program run every `period_ns` nanoseconds on one CPU
    /// (a cpu-clock timer; bpftrace's `interval` probes). Never named by a
    /// section: attach with [`crate::Session::attach_interval`].
    Interval { period_ns: u64 },
    /// A `perf_event` program run when the `len` bytes at `addr` are
    /// accessed as `bp_type` says (read, write, execute bits of
    /// `oxbpf_sys::perf::breakpoint`): in process `pid` (every thread of
    /// it) or, with none, on every CPU (kernel addresses). Never named by
    /// a section: attach with [`crate::Session::attach_breakpoint`].
    Breakpoint {
        addr: u64,
        len: u64,
        bp_type: u32,
        pid: Option<i32>,
    },
    /// `xdp`, `xdp.frags` (on `--iface`).
    Xdp,
    /// `tc`, `classifier`, `tc/ingress|egress`, `tcx/ingress|egress`.
    Tc { egress: bool },
    /// `cgroup_skb/...`, `cgroup/...` (on `--cgroup`), with the kernel's
    /// attach type.
    Cgroup { attach_type: u32 },
    /// `socket`: a socket filter on a raw socket on `--iface`.
    Socket,
    /// `sk_msg`, `sk_skb/stream_parser|stream_verdict|verdict`: on a
    /// sockmap or sockhash of the object (`--sockmap`), with the kernel's
    /// attach type.
    Sockmap { attach_type: u32 },
    /// A section that names no hook this loader attaches automatically
    /// (libbpf's manual-attach sections: `iter`, `struct_ops`, `syscall`,
    /// `sk_lookup`, ... or one without a target), and why.
    Manual { why: String },
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hook::Tracepoint { category, name } => write!(f, "tracepoint {category}:{name}"),
            Hook::RawTracepoint { name, .. } => write!(f, "raw tracepoint {name}"),
            Hook::TpBtf { name } => write!(f, "BTF tracepoint {name}"),
            Hook::Uprobe {
                path,
                symbol,
                offset,
                ret,
            } => {
                let kind = if *ret { "uretprobe" } else { "uprobe" };
                if *offset != 0 {
                    write!(f, "{kind} {path}:{symbol}+{offset:#x}")
                } else {
                    write!(f, "{kind} {path}:{symbol}")
                }
            }
            Hook::UprobeMulti { path, pattern, ret } => {
                let kind = if *ret {
                    "uretprobe.multi"
                } else {
                    "uprobe.multi"
                };
                write!(f, "{kind} {path}:{pattern}")
            }
            Hook::Usdt {
                path,
                provider,
                name,
            } => write!(f, "USDT {path}:{provider}:{name}"),
            Hook::Kprobe { target, ret } => {
                write!(f, "{} {target}", if *ret { "kretprobe" } else { "kprobe" })
            }
            Hook::KprobeMulti {
                pattern,
                ret,
                session,
            } => {
                let kind = match (session, ret) {
                    (true, _) => "kprobe.session",
                    (_, true) => "kretprobe.multi",
                    _ => "kprobe.multi",
                };
                write!(f, "{kind} {pattern}")
            }
            Hook::Trampoline { kind, target } => write!(f, "{kind} {target}"),
            Hook::PerfEvent => f.write_str("perf event"),
            Hook::Interval { period_ns } => match period_ns {
                n if n % 1_000_000_000 == 0 => write!(f, "interval {}s", n / 1_000_000_000),
                n if n % 1_000_000 == 0 => write!(f, "interval {}ms", n / 1_000_000),
                n if n % 1_000 == 0 => write!(f, "interval {}us", n / 1_000),
                n => write!(f, "interval {n}ns"),
            },
            Hook::Breakpoint {
                addr, len, bp_type, ..
            } => {
                use oxbpf_sys::perf::breakpoint as bp;
                let mode: String = [(bp::READ, 'r'), (bp::WRITE, 'w'), (bp::EXECUTE, 'x')]
                    .iter()
                    .filter(|(b, _)| bp_type & b != 0)
                    .map(|(_, c)| *c)
                    .collect();
                write!(f, "watchpoint {addr:#x}:{len}:{mode}")
            }
            Hook::Xdp => f.write_str("XDP"),
            Hook::Tc { egress } => write!(f, "tc {}", if *egress { "egress" } else { "ingress" }),
            Hook::Cgroup { attach_type } => write!(
                f,
                "cgroup {}",
                oxbpf_abi::AttachType::from_u32(*attach_type).map_or("?", |a| a.name())
            ),
            Hook::Socket => f.write_str("socket filter"),
            Hook::Sockmap { attach_type } => write!(
                f,
                "sockmap {}",
                oxbpf_abi::AttachType::from_u32(*attach_type).map_or("?", |a| a.name())
            ),
            Hook::Manual { why } => write!(f, "no automatic attachment ({why})"),
        }
    }
}

/// A section name that promises a hook but says it wrongly.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("section `{section}`: {message}")]
pub struct HookError {
    pub section: String,
    pub message: String,
}

/// `PATH:REST` of a uprobe/usdt section, with libbpf's `PATH` rule (the
/// path may itself contain no `:`).
fn split_path<'a>(
    section: &str,
    rest: &'a str,
    what: &str,
) -> Result<(&'a str, &'a str), HookError> {
    rest.split_once(':')
        .filter(|(p, r)| !p.is_empty() && !r.is_empty())
        .ok_or_else(|| HookError {
            section: section.into(),
            message: format!("expected {what}"),
        })
}

/// The hook a section names.
pub fn hook_for(section: &str) -> Result<Hook, HookError> {
    use oxbpf_abi::attach_type as a;
    let bad = |message: &str| HookError {
        section: section.into(),
        message: message.into(),
    };
    let (head, rest) = match section.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (section, None),
    };
    let target = || rest.filter(|r| !r.is_empty());
    Ok(match head {
        "tracepoint" | "tp" => {
            let (category, name) = rest
                .and_then(|r| r.split_once('/'))
                .filter(|(c, n)| !c.is_empty() && !n.is_empty() && !n.contains('/'))
                .ok_or_else(|| bad("expected tracepoint/CATEGORY/NAME"))?;
            Hook::Tracepoint {
                category: category.into(),
                name: name.into(),
            }
        }
        "raw_tracepoint" | "raw_tp" | "raw_tracepoint.w" | "raw_tp.w" => match target() {
            Some(name) => Hook::RawTracepoint {
                name: name.into(),
                writable: head.ends_with(".w"),
            },
            None => Hook::Manual {
                why: "no tracepoint named in the section".into(),
            },
        },
        "tp_btf" => Hook::TpBtf {
            name: target().ok_or_else(|| bad("expected tp_btf/NAME"))?.into(),
        },
        "uprobe" | "uretprobe" | "uprobe.s" | "uretprobe.s" => match target() {
            None => Hook::Manual {
                why: "no binary and function named in the section".into(),
            },
            Some(r) => {
                let (path, func) = split_path(section, r, "uprobe/PATH:SYMBOL[+OFFSET]")?;
                let (symbol, offset) = match func.rsplit_once('+') {
                    Some((s, off)) => (
                        s,
                        parse_offset(off).ok_or_else(|| bad("bad offset after `+`"))?,
                    ),
                    None => (func, 0),
                };
                Hook::Uprobe {
                    path: path.into(),
                    symbol: symbol.into(),
                    offset,
                    ret: head.starts_with("uretprobe"),
                }
            }
        },
        "uprobe.multi" | "uretprobe.multi" | "uprobe.multi.s" | "uretprobe.multi.s" => {
            match target() {
                None => Hook::Manual {
                    why: "no binary and pattern named in the section".into(),
                },
                Some(r) => {
                    let (path, pattern) = split_path(section, r, "uprobe.multi/PATH:PATTERN")?;
                    Hook::UprobeMulti {
                        path: path.into(),
                        pattern: pattern.into(),
                        ret: head.starts_with("uretprobe"),
                    }
                }
            }
        }
        "usdt" | "usdt.s" => match target() {
            None => Hook::Manual {
                why: "no binary and probe named in the section".into(),
            },
            Some(r) => {
                let mut parts = r.rsplitn(3, ':');
                let (name, provider, path) = (parts.next(), parts.next(), parts.next());
                match (path, provider, name) {
                    (Some(p), Some(pr), Some(n))
                        if !p.is_empty() && !pr.is_empty() && !n.is_empty() =>
                    {
                        Hook::Usdt {
                            path: p.into(),
                            provider: pr.into(),
                            name: n.into(),
                        }
                    }
                    _ => return Err(bad("expected usdt/PATH:PROVIDER:NAME")),
                }
            }
        },
        "kprobe" | "kretprobe" | "ksyscall" | "kretsyscall" | "kprobe.multi"
        | "kretprobe.multi" | "kprobe.session" => match target() {
            None => Hook::Manual {
                why: "no kernel function named in the section".into(),
            },
            Some(t) if head.contains('.') => Hook::KprobeMulti {
                pattern: t.into(),
                ret: head.starts_with("kret"),
                session: head == "kprobe.session",
            },
            // A syscall by name: its entry point on this architecture
            // (libbpf's rule).
            Some(t) if head.ends_with("syscall") => Hook::Kprobe {
                target: format!("{}{t}", syscall_prefix()),
                ret: head.starts_with("kret"),
            },
            Some(t) => Hook::Kprobe {
                target: t.into(),
                ret: head.starts_with("kret"),
            },
        },
        "fentry" | "fexit" | "fmod_ret" | "fentry.s" | "fexit.s" | "fmod_ret.s" | "lsm"
        | "lsm.s" | "lsm_cgroup" | "freplace" => {
            let kind = match head {
                "fentry" | "fentry.s" => "fentry",
                "fexit" | "fexit.s" => "fexit",
                "fmod_ret" | "fmod_ret.s" => "fmod_ret",
                "freplace" => "freplace",
                "lsm_cgroup" => "lsm_cgroup",
                _ => "lsm",
            };
            Hook::Trampoline {
                kind,
                target: target()
                    .ok_or_else(|| bad("expected a function or hook name"))?
                    .into(),
            }
        }
        "perf_event" => Hook::PerfEvent,
        "xdp" | "xdp.frags" if rest.is_none() => Hook::Xdp,
        "xdp" | "xdp.frags" if matches!(rest, Some("devmap" | "cpumap")) => Hook::Manual {
            why: "a devmap/cpumap program runs from its map".into(),
        },
        "xdp" | "xdp.frags" => Hook::Manual {
            why: "only a section named exactly `xdp` attaches to an interface (libbpf's rule)"
                .into(),
        },
        // libbpf attaches tc programs only with a direction (tcx links).
        "tc" | "tcx" if matches!(rest, Some("ingress" | "egress")) => Hook::Tc {
            egress: rest == Some("egress"),
        },
        "tc" | "tcx" | "classifier" | "action" => Hook::Manual {
            why: "a tc program without a direction (name the section tc/ingress or tc/egress)"
                .into(),
        },
        "socket" => Hook::Socket,
        "sk_msg" if rest.is_none() => Hook::Sockmap {
            attach_type: a::SK_MSG_VERDICT,
        },
        "sk_skb" => match rest {
            Some("stream_parser") => Hook::Sockmap {
                attach_type: a::SK_SKB_STREAM_PARSER,
            },
            Some("stream_verdict") => Hook::Sockmap {
                attach_type: a::SK_SKB_STREAM_VERDICT,
            },
            Some("verdict") => Hook::Sockmap {
                attach_type: a::SK_SKB_VERDICT,
            },
            _ => Hook::Manual {
                why: "an sk_skb program without stream_parser, stream_verdict or verdict".into(),
            },
        },
        "cgroup_skb" | "cgroup" => {
            let t = oxbpf_sys::object::expected_attach_type(section);
            let t = match (t, section) {
                (0, "cgroup/skb") => a::CGROUP_INET_INGRESS,
                (0, _) => {
                    return Ok(Hook::Manual {
                        why: "not a cgroup hook this loader knows".into(),
                    });
                }
                (t, _) => t,
            };
            Hook::Cgroup { attach_type: t }
        }
        "iter" | "iter.s" => Hook::Manual {
            why: "an iterator runs when its link is read".into(),
        },
        "struct_ops" | "struct_ops.s" => Hook::Manual {
            why: "struct_ops programs are registered through their map".into(),
        },
        "syscall" => Hook::Manual {
            why: "a syscall program runs through BPF_PROG_RUN".into(),
        },
        _ => Hook::Manual {
            why: "the section names no hook".into(),
        },
    })
}

/// The prefix of a syscall's kernel entry point on this architecture.
fn syscall_prefix() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "__x64_sys_",
        "aarch64" => "__arm64_sys_",
        "s390x" => "__s390x_sys_",
        "riscv64" => "__riscv_sys_",
        "powerpc64" => "sys_",
        _ => "__se_sys_",
    }
}

/// `0x1a` or `26`.
pub(crate) fn parse_offset(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_section_names() {
        assert_eq!(
            hook_for("tracepoint/syscalls/sys_enter_openat").unwrap(),
            Hook::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_openat".into()
            }
        );
        assert_eq!(
            hook_for("tp/sched/sched_switch").unwrap().to_string(),
            "tracepoint sched:sched_switch"
        );
        assert_eq!(
            hook_for("raw_tp.w/bpf_test_finish").unwrap(),
            Hook::RawTracepoint {
                name: "bpf_test_finish".into(),
                writable: true
            }
        );
        assert_eq!(
            hook_for("uretprobe//usr/lib/libc.so.6:malloc+0x10").unwrap(),
            Hook::Uprobe {
                path: "/usr/lib/libc.so.6".into(),
                symbol: "malloc".into(),
                offset: 0x10,
                ret: true
            }
        );
        assert_eq!(
            hook_for("usdt/./test:prov:probe1").unwrap(),
            Hook::Usdt {
                path: "./test".into(),
                provider: "prov".into(),
                name: "probe1".into()
            }
        );
        assert_eq!(hook_for("xdp").unwrap(), Hook::Xdp);
        assert_eq!(hook_for("tcx/egress").unwrap(), Hook::Tc { egress: true });
        assert_eq!(hook_for("tc/ingress").unwrap(), Hook::Tc { egress: false });
        assert_eq!(
            hook_for("sk_skb/stream_verdict").unwrap().to_string(),
            "sockmap sk_skb_stream_verdict"
        );
        assert_eq!(
            hook_for("sk_msg").unwrap(),
            Hook::Sockmap {
                attach_type: oxbpf_abi::attach_type::SK_MSG_VERDICT
            }
        );
        assert!(matches!(hook_for("sk_skb").unwrap(), Hook::Manual { .. }));
        assert_eq!(
            hook_for("kretprobe.multi/vfs_*").unwrap(),
            Hook::KprobeMulti {
                pattern: "vfs_*".into(),
                ret: true,
                session: false
            }
        );
        assert_eq!(
            hook_for("kprobe.session/do_unlinkat").unwrap().to_string(),
            "kprobe.session do_unlinkat"
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            hook_for("ksyscall/openat").unwrap(),
            Hook::Kprobe {
                target: "__x64_sys_openat".into(),
                ret: false
            }
        );
        assert!(matches!(hook_for("tc").unwrap(), Hook::Manual { .. }));
        assert!(matches!(hook_for("tc/tail").unwrap(), Hook::Manual { .. }));
        assert!(matches!(hook_for("xdp/tail").unwrap(), Hook::Manual { .. }));
        assert_eq!(
            hook_for("cgroup/connect4").unwrap(),
            Hook::Cgroup {
                attach_type: oxbpf_abi::attach_type::CGROUP_INET4_CONNECT
            }
        );
        assert!(matches!(
            hook_for("iter/task").unwrap(),
            Hook::Manual { .. }
        ));
        assert!(matches!(hook_for("uprobe").unwrap(), Hook::Manual { .. }));
        assert!(matches!(hook_for(".text").unwrap(), Hook::Manual { .. }));
    }

    #[test]
    fn malformed_sections_say_what_they_expected() {
        let e = hook_for("tracepoint/syscalls").unwrap_err();
        assert_eq!(
            e.to_string(),
            "section `tracepoint/syscalls`: expected tracepoint/CATEGORY/NAME"
        );
        assert!(hook_for("uprobe/nocolon").is_err());
        assert!(hook_for("uprobe//bin/x:f+zz").is_err());
        assert!(hook_for("usdt/a:b").is_err());
        assert!(hook_for("tp_btf/").is_err());
    }
}
