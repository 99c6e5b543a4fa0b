//! Helpers: every `struct bpf_func_proto` of Linux 6.18 (return and
//! argument types as the kernel's verifier reads them) and which program
//! type may call which helper, under which condition.
//!
//! The data lives in `crates/oxbpf-abi/data/*.tsv` (taken from the kernel
//! source: the protos of kernel/bpf, kernel/trace and net/core, and every
//! program type's `get_func_proto`); `scripts/gen-abi-helpers.py` turns it
//! into [`PROTOS`] and [`AVAILABILITY`].

use crate::{HelperId, ProgType};

pub use crate::helper_table::{AVAILABILITY, PROTOS};

/// Type flags of the kernel (`enum bpf_type_flag`), as bits.
pub mod flag {
    pub const PTR_MAYBE_NULL: u16 = 1 << 0;
    pub const MEM_RDONLY: u16 = 1 << 1;
    pub const MEM_UNINIT: u16 = 1 << 2;
    pub const MEM_WRITE: u16 = 1 << 3;
    pub const MEM_ALIGNED: u16 = 1 << 4;
    pub const MEM_FIXED_SIZE: u16 = 1 << 5;
    pub const OBJ_RELEASE: u16 = 1 << 6;
    pub const DYNPTR_TYPE_LOCAL: u16 = 1 << 7;
    pub const DYNPTR_TYPE_RINGBUF: u16 = 1 << 8;
}

/// An argument's base type (`enum bpf_arg_type` without its flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgBase {
    /// Not an argument (`ARG_DONTCARE`).
    None,
    Anything,
    Scalar,
    ConstMapPtr,
    PtrToMapKey,
    PtrToMapValue,
    PtrToMem,
    ConstSize,
    ConstSizeOrZero,
    ConstAllocSizeOrZero,
    PtrToCtx,
    PtrToFunc,
    PtrToStack,
    PtrToSpinLock,
    PtrToSockCommon,
    PtrToSocket,
    PtrToBtfId,
    PtrToBtfIdSockCommon,
    PtrToPercpuBtfId,
    PtrToRingbufMem,
    PtrToDynptr,
    PtrToTimer,
    PtrToConstStr,
    KptrXchgDest,
}

/// One argument: base type, flags ([`flag`]) and, for fixed-size memory,
/// its size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Arg {
    pub base: ArgBase,
    pub flags: u16,
    pub size: u32,
}

impl Arg {
    pub const NONE: Arg = Arg {
        base: ArgBase::None,
        flags: 0,
        size: 0,
    };

    pub const fn new(base: ArgBase, flags: u16, size: u32) -> Arg {
        Arg { base, flags, size }
    }

    pub const fn has(self, f: u16) -> bool {
        self.flags & f != 0
    }
}

/// A return type's base (`enum bpf_return_type` without its flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetBase {
    Integer,
    Void,
    PtrToMapValue,
    PtrToSocket,
    PtrToTcpSock,
    PtrToSockCommon,
    PtrToMem,
    PtrToRingbufMem,
    PtrToDynptrMem,
    PtrToMemOrBtfId,
    PtrToBtfId,
    PtrToBtfIdTrusted,
}

/// A return type: base and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ret {
    pub base: RetBase,
    pub flags: u16,
}

impl Ret {
    pub const fn new(base: RetBase, flags: u16) -> Ret {
        Ret { base, flags }
    }

    pub const fn has(self, f: u16) -> bool {
        self.flags & f != 0
    }
}

/// One `struct bpf_func_proto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelperProto {
    pub id: u32,
    /// The helper's name without `bpf_` (`map_lookup_elem`).
    pub name: &'static str,
    /// The C name of the proto (`bpf_xdp_sk_lookup_tcp_proto`): a helper
    /// may have one per family of program types.
    pub variant: &'static str,
    pub gpl_only: bool,
    pub ret: Ret,
    pub args: [Arg; 5],
    /// The return and argument types as the kernel source writes them.
    pub kernel_ret: &'static str,
    pub kernel_args: [&'static str; 5],
    /// In the kernel's `bpf_helper_changes_pkt_data()` list.
    pub changes_pkt_data: bool,
    /// May sleep: only sleepable programs may call it.
    pub might_sleep: bool,
}

impl HelperProto {
    /// The C prototype as a person reads it:
    /// `bpf_map_lookup_elem(ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY) -> RET_PTR_TO_MAP_VALUE_OR_NULL`.
    pub fn signature(&self) -> String {
        let args: Vec<&str> = self
            .kernel_args
            .iter()
            .copied()
            .filter(|a| !a.is_empty())
            .collect();
        format!(
            "bpf_{}({}) -> {}",
            self.name,
            args.join(", "),
            self.kernel_ret
        )
    }
}

/// A capability a helper needs beyond loading the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cap {
    None,
    /// CAP_BPF (or a BPF token allowing it).
    Bpf,
    /// CAP_BPF and CAP_PERFMON.
    Perfmon,
    /// CAP_SYS_ADMIN.
    SysAdmin,
}

/// That program type `prog_type` gets proto `variant` of helper `helper`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Availability {
    pub prog_type: ProgType,
    pub helper: u32,
    pub variant: &'static str,
    pub cap: Cap,
    /// Kernel configuration options the helper needs here.
    pub configs: &'static [&'static str],
    /// A condition on the program's expected attach type, as the kernel
    /// states it, when there is one.
    pub attach: Option<&'static str>,
    /// Only sleepable programs may call it (`might_sleep`).
    pub sleepable_only: bool,
    /// Any other condition (lockdown, struct_ops specifics), as text.
    pub note: &'static str,
}

/// The configuration options of the reference kernel (Linux 6.18 as built
/// for these machines: `/proc/config.gz`) among those the helper table
/// depends on. `CONFIG_BPF_KPROBE_OVERRIDE` is not set there.
pub const REFERENCE_CONFIG: &[&str] = &[
    "CONFIG_ARCH_HAS_NON_OVERLAPPING_ADDRESS_SPACE",
    "CONFIG_BPF_EVENTS",
    "CONFIG_CGROUPS",
    "CONFIG_CGROUP_BPF",
    "CONFIG_CGROUP_NET_CLASSID",
    "CONFIG_INET",
    "CONFIG_IPV6_SEG6_BPF",
    "CONFIG_NET",
    "CONFIG_PERF_EVENTS",
    "CONFIG_SOCK_CGROUP_DATA",
    "CONFIG_SYN_COOKIES",
    "CONFIG_UNIX",
    "CONFIG_XFRM",
];

/// Every proto of helper `id`.
pub fn protos_of(id: u32) -> &'static [HelperProto] {
    let lo = PROTOS.partition_point(|p| p.id < id);
    let hi = PROTOS.partition_point(|p| p.id <= id);
    &PROTOS[lo..hi]
}

/// The generic proto of helper `id` (`bpf_NAME_proto` where it exists).
pub fn proto(id: u32) -> Option<&'static HelperProto> {
    let all = protos_of(id);
    all.iter()
        .find(|p| {
            p.variant
                .strip_prefix("bpf_")
                .and_then(|v| v.strip_suffix("_proto"))
                == Some(p.name)
        })
        .or(all.first())
}

/// The proto a program of type `t` gets for helper `id`, with the
/// conditions, if its `get_func_proto` hands one out at all.
pub fn proto_for(t: ProgType, id: u32) -> Option<(&'static HelperProto, &'static Availability)> {
    let lo = AVAILABILITY.partition_point(|a| (a.prog_type, a.helper) < (t, id));
    let a = AVAILABILITY
        .get(lo)
        .filter(|a| a.prog_type == t && a.helper == id)?;
    let p = protos_of(id)
        .iter()
        .find(|p| p.variant == a.variant)
        .or(proto(id))?;
    Some((p, a))
}

/// The helper's name as the kernel's documentation writes it
/// (`bpf_map_lookup_elem`), for any id the kernel defines.
pub fn helper_name(id: u32) -> Option<String> {
    HelperId::from_u32(id)
        .filter(|h| *h != HelperId::Unspec)
        .map(|h| format!("bpf_{}", h.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_helper_has_a_proto_and_a_program_type() {
        for h in HelperId::ALL.iter().skip(1) {
            let p = proto(h.id()).unwrap_or_else(|| panic!("{h:?} has no proto"));
            assert_eq!(p.name, h.name());
            assert!(
                AVAILABILITY.iter().any(|a| a.helper == h.id()),
                "{h:?} is available to no program type"
            );
        }
        assert_eq!(PROTOS.len(), 276);
    }

    #[test]
    fn tables_are_sorted_for_lookup() {
        for w in PROTOS.windows(2) {
            assert!(w[0].id <= w[1].id);
        }
        for w in AVAILABILITY.windows(2) {
            assert!((w[0].prog_type, w[0].helper) < (w[1].prog_type, w[1].helper));
        }
    }

    #[test]
    fn known_protos() {
        let p = proto(HelperId::MapLookupElem.id()).unwrap();
        assert_eq!(p.args[0].base, ArgBase::ConstMapPtr);
        assert_eq!(p.ret.base, RetBase::PtrToMapValue);
        assert!(p.ret.has(flag::PTR_MAYBE_NULL));
        assert_eq!(
            p.signature(),
            "bpf_map_lookup_elem(ARG_CONST_MAP_PTR, ARG_PTR_TO_MAP_KEY) -> RET_PTR_TO_MAP_VALUE_OR_NULL"
        );
        let (x, a) = proto_for(ProgType::Xdp, HelperId::SkLookupTcp.id()).unwrap();
        assert_eq!(x.variant, "bpf_xdp_sk_lookup_tcp_proto");
        assert_eq!(a.cap, Cap::None);
        assert!(proto_for(ProgType::SocketFilter, HelperId::XdpAdjustHead.id()).is_none());
        let (_, a) = proto_for(ProgType::Xdp, HelperId::TracePrintk.id()).unwrap();
        assert_eq!(a.cap, Cap::Perfmon);
        let rb = proto(HelperId::RingbufSubmit.id()).unwrap();
        assert_eq!(rb.args[0].base, ArgBase::PtrToRingbufMem);
        assert!(rb.args[0].has(flag::OBJ_RELEASE));
        let pr = proto(HelperId::ProbeReadKernel.id()).unwrap();
        assert!(pr.args[0].has(flag::MEM_UNINIT) && pr.args[0].has(flag::MEM_WRITE));
        assert!(
            proto(HelperId::XdpAdjustHead.id())
                .unwrap()
                .changes_pkt_data
        );
        assert_eq!(
            helper_name(158).as_deref(),
            Some("bpf_get_current_task_btf")
        );
    }
}
