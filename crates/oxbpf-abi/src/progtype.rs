//! What oxbpf needs to know about each program type beyond its number.

use crate::ProgType;

impl ProgType {
    /// Size of the context the program gets in `r1` (x86-64 layouts):
    /// `xdp_md`, `__sk_buff`, `pt_regs`, `bpf_perf_event_data`, raw
    /// tracepoint arguments, `bpf_sock_ops`; tracepoint records vary, so
    /// their bound is a page.
    pub fn ctx_size(self) -> u32 {
        use ProgType::*;
        match self {
            Xdp => 24,
            SocketFilter | SchedCls | SchedAct | CgroupSkb | LwtIn | LwtOut | LwtXmit | SkSkb
            | LwtSeg6local => 192,
            Kprobe => 168,
            PerfEvent => 184,
            RawTracepoint | RawTracepointWritable | Tracing => 12 * 8,
            SockOps => 200,
            _ => 4096,
        }
    }

    /// Parses a type name as users write it on the command line: the
    /// kernel's name with or without `BPF_PROG_TYPE_`, in any case, or
    /// the usual short forms (`socket`, `tc`, `raw_tp`, `tp`, `uprobe`...).
    pub fn from_user_name(s: &str) -> Option<ProgType> {
        let s = s.to_ascii_lowercase();
        let s = s.trim_start_matches("bpf_prog_type_");
        ProgType::ALL
            .iter()
            .copied()
            .find(|t| t.name() == s)
            .or(match s {
                "socket" => Some(ProgType::SocketFilter),
                "tc" | "classifier" => Some(ProgType::SchedCls),
                "action" => Some(ProgType::SchedAct),
                "raw_tp" => Some(ProgType::RawTracepoint),
                "tp" => Some(ProgType::Tracepoint),
                "sockops" => Some(ProgType::SockOps),
                "uprobe" => Some(ProgType::Kprobe),
                _ => None,
            })
    }
}
