//! What oxbpf needs to know about each program type beyond its number.

use crate::ProgType;

impl ProgType {
    /// Size of the context the program gets in `r1` (x86-64 layouts):
    /// `xdp_md`, `__sk_buff`, `pt_regs`, `bpf_perf_event_data`, raw
    /// tracepoint arguments, `bpf_sock_ops`; tracepoint records vary, so
    /// their bound is a page.
    pub fn ctx_size(self) -> u32 {
        use crate::ctx;
        use ProgType::*;
        match self {
            Xdp => ctx::xdp_md::STRUCT_SIZE,
            SocketFilter | SchedCls | SchedAct | CgroupSkb | LwtIn | LwtOut | LwtXmit | SkSkb
            | LwtSeg6local => ctx::sk_buff::STRUCT_SIZE,
            Kprobe => ctx::pt_regs::STRUCT_SIZE,
            PerfEvent => ctx::bpf_perf_event_data::STRUCT_SIZE,
            // Up to 12 u64 arguments (the kernel's MAX_BPF_FUNC_ARGS).
            RawTracepoint | RawTracepointWritable | Tracing => 12 * 8,
            SockOps => ctx::bpf_sock_ops::STRUCT_SIZE,
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

#[cfg(test)]
mod tests {
    use crate::ctx;

    #[test]
    fn context_sizes_are_the_kernels() {
        use crate::ProgType::*;
        assert_eq!(Xdp.ctx_size(), ctx::xdp_md::STRUCT_SIZE);
        assert_eq!(SchedCls.ctx_size(), ctx::sk_buff::STRUCT_SIZE);
        assert_eq!(Kprobe.ctx_size(), ctx::pt_regs::STRUCT_SIZE);
        assert_eq!(PerfEvent.ctx_size(), ctx::bpf_perf_event_data::STRUCT_SIZE);
        assert_eq!(ctx::xdp_md::DATA_END, 4);
        assert_eq!(ctx::sk_buff::DATA, 76);
        assert_eq!(ctx::sk_buff::LAYOUT.field_at(50).unwrap().name, "cb");
    }
}
