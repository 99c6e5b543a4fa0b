//! Program types, and how libbpf's section-name conventions map to them.

/// Kernel program types (`enum bpf_prog_type`): the ABI crate's
/// [`oxbpf_abi::ProgType`], under the name the loader has always used.
pub use oxbpf_abi::ProgType as ProgramType;

/// Section-name prefixes in libbpf's order of precedence. A prefix ending in
/// `/` requires the separator; others match the whole name or `name/...`.
const SECTION_PREFIXES: &[(&str, ProgramType)] = {
    use ProgramType::*;
    &[
        ("socket", SocketFilter),
        ("sk_reuseport/migrate", SkReuseport),
        ("sk_reuseport", SkReuseport),
        ("kprobe.multi", Kprobe),
        ("kretprobe.multi", Kprobe),
        ("uprobe.multi", Kprobe),
        ("uretprobe.multi", Kprobe),
        ("kprobe", Kprobe),
        ("kretprobe", Kprobe),
        ("uprobe", Kprobe),
        ("uretprobe", Kprobe),
        ("usdt", Kprobe),
        ("ksyscall", Kprobe),
        ("kretsyscall", Kprobe),
        ("tc/ingress", SchedCls),
        ("tc/egress", SchedCls),
        ("tcx", SchedCls),
        ("netkit", SchedCls),
        ("tc", SchedCls),
        ("classifier", SchedCls),
        ("action", SchedAct),
        ("tracepoint", Tracepoint),
        ("tp", Tracepoint),
        ("raw_tracepoint.w", RawTracepointWritable),
        ("raw_tp.w", RawTracepointWritable),
        ("raw_tracepoint", RawTracepoint),
        ("raw_tp", RawTracepoint),
        ("tp_btf", Tracing),
        ("fentry", Tracing),
        ("fmod_ret", Tracing),
        ("fexit", Tracing),
        ("iter", Tracing),
        ("freplace", Ext),
        ("lsm", Lsm),
        ("lsm_cgroup", Lsm),
        ("xdp.frags", Xdp),
        ("xdp/devmap", Xdp),
        ("xdp/cpumap", Xdp),
        ("xdp", Xdp),
        ("perf_event", PerfEvent),
        ("lwt_in", LwtIn),
        ("lwt_out", LwtOut),
        ("lwt_xmit", LwtXmit),
        ("lwt_seg6local", LwtSeg6local),
        ("sockops", SockOps),
        ("sk_skb", SkSkb),
        ("sk_msg", SkMsg),
        ("lirc_mode2", LircMode2),
        ("flow_dissector", FlowDissector),
        ("cgroup_skb", CgroupSkb),
        ("cgroup/skb", CgroupSkb),
        ("cgroup/sock_create", CgroupSock),
        ("cgroup/sock_release", CgroupSock),
        ("cgroup/sock", CgroupSock),
        ("cgroup/post_bind4", CgroupSock),
        ("cgroup/post_bind6", CgroupSock),
        ("cgroup/dev", CgroupDevice),
        ("cgroup/sysctl", CgroupSysctl),
        ("cgroup/getsockopt", CgroupSockopt),
        ("cgroup/setsockopt", CgroupSockopt),
        ("cgroup/bind4", CgroupSockAddr),
        ("cgroup/bind6", CgroupSockAddr),
        ("cgroup/connect4", CgroupSockAddr),
        ("cgroup/connect6", CgroupSockAddr),
        ("cgroup/connect_unix", CgroupSockAddr),
        ("cgroup/sendmsg4", CgroupSockAddr),
        ("cgroup/sendmsg6", CgroupSockAddr),
        ("cgroup/sendmsg_unix", CgroupSockAddr),
        ("cgroup/recvmsg4", CgroupSockAddr),
        ("cgroup/recvmsg6", CgroupSockAddr),
        ("cgroup/recvmsg_unix", CgroupSockAddr),
        ("cgroup/getpeername4", CgroupSockAddr),
        ("cgroup/getpeername6", CgroupSockAddr),
        ("cgroup/getsockname4", CgroupSockAddr),
        ("cgroup/getsockname6", CgroupSockAddr),
        ("struct_ops", StructOps),
        ("struct_ops.s", StructOps),
        ("sk_lookup", SkLookup),
        ("syscall", Syscall),
        ("netfilter", Netfilter),
    ]
};

/// Prefixes of the older samples/bpf `bpf_load.c` convention, which
/// matched on the start of the name (`xdp1`, `socket1`, `kprobe/...`).
const LEGACY_PREFIXES: &[(&str, ProgramType)] = {
    use ProgramType::*;
    &[
        ("socket", SocketFilter),
        ("kprobe/", Kprobe),
        ("kretprobe/", Kprobe),
        ("tracepoint/", Tracepoint),
        ("raw_tracepoint/", RawTracepoint),
        ("xdp", Xdp),
        ("perf_event", PerfEvent),
        ("cgroup/skb", CgroupSkb),
        ("cgroup/sock", CgroupSock),
        ("sockops", SockOps),
        ("sk_skb", SkSkb),
        ("sk_msg", SkMsg),
        ("classifier", SchedCls),
        ("action", SchedAct),
        ("lwt_in", LwtIn),
        ("lwt_out", LwtOut),
        ("lwt_xmit", LwtXmit),
    ]
};

/// The program type for a section name: libbpf's conventions first, then
/// the older prefix convention of the kernel's samples.
pub fn from_section_name(section: &str) -> Option<ProgramType> {
    from_libbpf_name(section).or_else(|| {
        LEGACY_PREFIXES
            .iter()
            .find(|(p, _)| section.starts_with(p))
            .map(|(_, t)| *t)
    })
}

/// The program type libbpf would give a section name, if any.
pub fn from_libbpf_name(section: &str) -> Option<ProgramType> {
    // Sleepable variants (`fentry.s/`, `uprobe.s/`, ...) share their type.
    let base = section.split('/').next().unwrap_or(section);
    let base = base.strip_suffix(".s").unwrap_or(base);
    for (prefix, t) in SECTION_PREFIXES {
        if prefix.contains('/') {
            if section == *prefix || section.starts_with(&format!("{prefix}/")) {
                return Some(*t);
            }
        } else if base == *prefix {
            return Some(*t);
        }
    }
    None
}

/// The attach target written after the first `/`, e.g. `sched/sched_switch`
/// for `tracepoint/sched/sched_switch`.
pub fn attach_target(section: &str) -> Option<&str> {
    section
        .split_once('/')
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_conventions() {
        for (s, t) in [
            ("xdp", ProgramType::Xdp),
            ("xdp.frags", ProgramType::Xdp),
            ("tc", ProgramType::SchedCls),
            ("classifier/ingress", ProgramType::SchedCls),
            ("socket1", ProgramType::SocketFilter),
            ("xdp1", ProgramType::Xdp),
            ("socket", ProgramType::SocketFilter),
            (
                "tracepoint/syscalls/sys_enter_write",
                ProgramType::Tracepoint,
            ),
            ("tp/sched/sched_switch", ProgramType::Tracepoint),
            ("raw_tracepoint/sched_switch", ProgramType::RawTracepoint),
            ("raw_tp/sys_enter", ProgramType::RawTracepoint),
            ("tp_btf/sched_wakeup", ProgramType::Tracing),
            ("kprobe/sys_write", ProgramType::Kprobe),
            ("uprobe.s//bin/bash:readline", ProgramType::Kprobe),
            ("perf_event", ProgramType::PerfEvent),
            ("cgroup/skb", ProgramType::CgroupSkb),
            ("cgroup_skb/egress", ProgramType::CgroupSkb),
            ("cgroup/connect4", ProgramType::CgroupSockAddr),
            ("sockops", ProgramType::SockOps),
            ("fentry.s/do_sys_open", ProgramType::Tracing),
        ] {
            assert_eq!(
                from_section_name(s).unwrap_or(ProgramType::Unspec),
                t,
                "{s}"
            );
        }
        assert_eq!(
            attach_target("tracepoint/sched/sched_switch"),
            Some("sched/sched_switch")
        );
        assert_eq!(
            ProgramType::from_user_name("tc"),
            Some(ProgramType::SchedCls)
        );
        assert_eq!(ProgramType::from_user_name("XDP"), Some(ProgramType::Xdp));
    }
}
