//! Kernel functions (kfuncs): which program types may call them and their
//! flags, as the kernel registers them (`BTF_ID_FLAGS` in its kfunc sets,
//! Linux 6.18). Prototypes come from the kernel's BTF (the FUNC record
//! tagged `bpf_kfunc`); what the BTF cannot say — acquire, release, trust,
//! NULL results — is this table.

use oxbpf_obj::ProgramType;

/// `KF_*` flags (include/linux/btf.h).
pub mod kf {
    pub const ACQUIRE: u32 = 1 << 0;
    pub const RELEASE: u32 = 1 << 1;
    pub const RET_NULL: u32 = 1 << 2;
    pub const TRUSTED_ARGS: u32 = 1 << 4;
    pub const SLEEPABLE: u32 = 1 << 5;
    pub const RCU: u32 = 1 << 7;
    /// The iterator walks RCU-protected objects: it must be created in an
    /// RCU read section (a non-sleepable program is always in one).
    pub const RCU_PROTECTED: u32 = 1 << 11;
}

/// The kfunc set a function is registered in, which decides the program
/// types that may call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Set {
    /// `common_kfunc_set`, registered for BPF_PROG_TYPE_UNSPEC: every type.
    Common,
    /// `generic_kfunc_set` (kernel/bpf/helpers.c).
    Generic,
    /// `cpumask_kfunc_set` (kernel/bpf/cpumask.c).
    Cpumask,
    /// `bpf_kfunc_set_skb` (net/core/filter.c).
    Skb,
    /// `bpf_kfunc_set_xdp` (net/core/filter.c).
    Xdp,
}

impl Set {
    pub fn allows(self, t: ProgramType) -> bool {
        use ProgramType as T;
        match self {
            Set::Common => true,
            // As Linux 6.18 registers generic_kfunc_set (checked against
            // the running kernel: kprobes, raw tracepoints, socket filters,
            // sk_skb/sk_msg, lwt, flow dissector, sk_lookup, sk_reuseport
            // and tc actions may not call them).
            Set::Generic => matches!(
                t,
                T::Tracing
                    | T::SchedCls
                    | T::Xdp
                    | T::StructOps
                    | T::Syscall
                    | T::CgroupSkb
                    | T::Tracepoint
                    | T::PerfEvent
                    | T::CgroupSock
                    | T::CgroupSockAddr
                    | T::SockOps
                    | T::CgroupDevice
                    | T::CgroupSysctl
                    | T::CgroupSockopt
            ),
            Set::Cpumask => matches!(t, T::Tracing | T::Lsm | T::StructOps | T::Syscall),
            Set::Skb => matches!(
                t,
                T::SchedCls
                    | T::SchedAct
                    | T::SkSkb
                    | T::SocketFilter
                    | T::CgroupSkb
                    | T::LwtIn
                    | T::LwtOut
                    | T::LwtXmit
                    | T::LwtSeg6local
                    | T::Netfilter
                    | T::Tracing
            ),
            Set::Xdp => t == T::Xdp,
        }
    }
}

/// Special cases the verifier treats by name, as the kernel's
/// `special_kfunc_list` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    None,
    RcuLock,
    RcuUnlock,
    /// `bpf_rdonly_cast(obj, btf_id)`: an untrusted pointer of that type.
    RdonlyCast,
    /// `bpf_cast_to_kern_ctx(ctx)`: the context as the kernel's struct.
    CastToKernCtx,
    /// Open-coded iterators (`KF_ITER_NEW`/`NEXT`/`DESTROY`): the first
    /// argument is an iterator on the stack, of the struct the name gives
    /// (`bpf_iter_num_new` takes a `struct bpf_iter_num *`).
    IterNew,
    IterNext,
    IterDestroy,
    /// Takes dynptrs (`struct bpf_dynptr *`; `__uninit` ones it makes).
    Dynptr,
    /// `bpf_dynptr_from_skb/xdp(ctx, flags, ptr__uninit)`: a dynptr over
    /// the packet.
    DynptrFrom {
        xdp: bool,
    },
    /// `bpf_dynptr_slice(_rdwr)`: memory of the dynptr, of the constant
    /// size of its last argument, or NULL.
    DynptrSlice {
        rdwr: bool,
    },
    /// `bpf_obj_new_impl(local_type_id__k, meta__ign)`: a new object of
    /// one of the program's own structs (plain data: no lists, trees,
    /// reference counts, locks or kptrs inside), a reference.
    ObjNew,
    /// `bpf_obj_drop_impl(p__alloc, meta__ign)`: frees it.
    ObjDrop,
    /// Allocated objects' lists and trees, per-CPU and reference-counted
    /// objects, work queues, IRQ and preemption state: not modelled yet.
    Unmodelled(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Kfunc {
    pub name: &'static str,
    pub flags: u32,
    pub set: Set,
    pub special: Special,
}

const fn k(name: &'static str, flags: u32, set: Set) -> Kfunc {
    Kfunc {
        name,
        flags,
        set,
        special: Special::None,
    }
}

const fn spf(name: &'static str, flags: u32, set: Set, special: Special) -> Kfunc {
    Kfunc {
        name,
        flags,
        set,
        special,
    }
}

const fn sp(name: &'static str, set: Set, special: Special) -> Kfunc {
    spf(name, 0, set, special)
}

use Set::*;
use kf::*;

const ALLOC: Special = Special::Unmodelled(
    "per-CPU allocated objects, reference-counted objects and the lists and trees of allocated objects",
);

/// The kfuncs oxbpf's verifier knows.
pub const KFUNCS: &[Kfunc] = &[
    // generic_btf_ids
    k("bpf_task_acquire", ACQUIRE | RCU | RET_NULL, Generic),
    k("bpf_task_release", RELEASE, Generic),
    k("bpf_task_from_pid", ACQUIRE | RET_NULL, Generic),
    k("bpf_task_from_vpid", ACQUIRE | RET_NULL, Generic),
    k("bpf_cgroup_acquire", ACQUIRE | RCU | RET_NULL, Generic),
    k("bpf_cgroup_release", RELEASE, Generic),
    k("bpf_cgroup_ancestor", ACQUIRE | RCU | RET_NULL, Generic),
    k("bpf_cgroup_from_id", ACQUIRE | RET_NULL, Generic),
    k("bpf_task_under_cgroup", RCU, Generic),
    k("bpf_task_get_cgroup1", ACQUIRE | RCU | RET_NULL, Generic),
    k("bpf_send_signal_task", TRUSTED_ARGS, Generic),
    k("bpf_throw", 0, Generic),
    spf(
        "bpf_obj_new_impl",
        ACQUIRE | RET_NULL,
        Generic,
        Special::ObjNew,
    ),
    sp("bpf_percpu_obj_new_impl", Generic, ALLOC),
    spf("bpf_obj_drop_impl", RELEASE, Generic, Special::ObjDrop),
    sp("bpf_percpu_obj_drop_impl", Generic, ALLOC),
    sp("bpf_refcount_acquire_impl", Generic, ALLOC),
    sp("bpf_list_push_front_impl", Generic, ALLOC),
    sp("bpf_list_push_back_impl", Generic, ALLOC),
    sp("bpf_list_pop_front", Generic, ALLOC),
    sp("bpf_list_pop_back", Generic, ALLOC),
    sp("bpf_list_front", Generic, ALLOC),
    sp("bpf_list_back", Generic, ALLOC),
    sp("bpf_rbtree_remove", Generic, ALLOC),
    sp("bpf_rbtree_add_impl", Generic, ALLOC),
    sp("bpf_rbtree_first", Generic, ALLOC),
    sp("bpf_rbtree_root", Generic, ALLOC),
    sp("bpf_rbtree_left", Generic, ALLOC),
    sp("bpf_rbtree_right", Generic, ALLOC),
    // common_btf_ids
    sp("bpf_cast_to_kern_ctx", Common, Special::CastToKernCtx),
    sp("bpf_rdonly_cast", Common, Special::RdonlyCast),
    sp("bpf_rcu_read_lock", Common, Special::RcuLock),
    sp("bpf_rcu_read_unlock", Common, Special::RcuUnlock),
    sp("bpf_iter_num_new", Common, Special::IterNew),
    sp("bpf_iter_num_next", Common, Special::IterNext),
    sp("bpf_iter_num_destroy", Common, Special::IterDestroy),
    spf("bpf_iter_task_vma_new", RCU, Common, Special::IterNew),
    sp("bpf_iter_task_vma_next", Common, Special::IterNext),
    sp("bpf_iter_task_vma_destroy", Common, Special::IterDestroy),
    spf(
        "bpf_iter_css_task_new",
        TRUSTED_ARGS,
        Common,
        Special::IterNew,
    ),
    sp("bpf_iter_css_task_next", Common, Special::IterNext),
    sp("bpf_iter_css_task_destroy", Common, Special::IterDestroy),
    spf(
        "bpf_iter_css_new",
        TRUSTED_ARGS | RCU_PROTECTED,
        Common,
        Special::IterNew,
    ),
    sp("bpf_iter_css_next", Common, Special::IterNext),
    sp("bpf_iter_css_destroy", Common, Special::IterDestroy),
    spf(
        "bpf_iter_task_new",
        TRUSTED_ARGS | RCU_PROTECTED,
        Common,
        Special::IterNew,
    ),
    sp("bpf_iter_task_next", Common, Special::IterNext),
    sp("bpf_iter_task_destroy", Common, Special::IterDestroy),
    sp("bpf_iter_bits_new", Common, Special::IterNew),
    sp("bpf_iter_bits_next", Common, Special::IterNext),
    sp("bpf_iter_bits_destroy", Common, Special::IterDestroy),
    sp(
        "bpf_dynptr_from_skb",
        Skb,
        Special::DynptrFrom { xdp: false },
    ),
    sp(
        "bpf_dynptr_from_xdp",
        Set::Xdp,
        Special::DynptrFrom { xdp: true },
    ),
    sp(
        "bpf_dynptr_slice",
        Common,
        Special::DynptrSlice { rdwr: false },
    ),
    sp(
        "bpf_dynptr_slice_rdwr",
        Common,
        Special::DynptrSlice { rdwr: true },
    ),
    sp("bpf_dynptr_adjust", Common, Special::Dynptr),
    sp("bpf_dynptr_is_null", Common, Special::Dynptr),
    sp("bpf_dynptr_is_rdonly", Common, Special::Dynptr),
    sp("bpf_dynptr_size", Common, Special::Dynptr),
    sp("bpf_dynptr_clone", Common, Special::Dynptr),
    sp("bpf_dynptr_copy", Common, Special::Dynptr),
    sp("bpf_dynptr_memset", Common, Special::Dynptr),
    sp(
        "bpf_preempt_disable",
        Common,
        Special::Unmodelled("preemption state"),
    ),
    sp(
        "bpf_preempt_enable",
        Common,
        Special::Unmodelled("preemption state"),
    ),
    sp(
        "bpf_local_irq_save",
        Common,
        Special::Unmodelled("IRQ state"),
    ),
    sp(
        "bpf_local_irq_restore",
        Common,
        Special::Unmodelled("IRQ state"),
    ),
    sp("bpf_wq_init", Common, Special::Unmodelled("work queues")),
    sp(
        "bpf_wq_set_callback_impl",
        Common,
        Special::Unmodelled("work queues"),
    ),
    sp("bpf_wq_start", Common, Special::Unmodelled("work queues")),
    k("bpf_get_kmem_cache", 0, Common),
    k("bpf_copy_from_user_str", SLEEPABLE, Common),
    k("bpf_strcmp", 0, Common),
    k("bpf_strcasecmp", 0, Common),
    k("bpf_strchr", 0, Common),
    k("bpf_strchrnul", 0, Common),
    k("bpf_strnchr", 0, Common),
    k("bpf_strrchr", 0, Common),
    k("bpf_strlen", 0, Common),
    k("bpf_strnlen", 0, Common),
    k("bpf_strspn", 0, Common),
    k("bpf_strcspn", 0, Common),
    k("bpf_strstr", 0, Common),
    k("bpf_strnstr", 0, Common),
    // cpumask_kfunc_btf_ids
    k("bpf_cpumask_create", ACQUIRE | RET_NULL, Cpumask),
    k("bpf_cpumask_release", RELEASE, Cpumask),
    k("bpf_cpumask_acquire", ACQUIRE | TRUSTED_ARGS, Cpumask),
    k("bpf_cpumask_first", RCU, Cpumask),
    k("bpf_cpumask_first_zero", RCU, Cpumask),
    k("bpf_cpumask_first_and", RCU, Cpumask),
    k("bpf_cpumask_set_cpu", RCU, Cpumask),
    k("bpf_cpumask_clear_cpu", RCU, Cpumask),
    k("bpf_cpumask_test_cpu", RCU, Cpumask),
    k("bpf_cpumask_test_and_set_cpu", RCU, Cpumask),
    k("bpf_cpumask_test_and_clear_cpu", RCU, Cpumask),
    k("bpf_cpumask_setall", RCU, Cpumask),
    k("bpf_cpumask_clear", RCU, Cpumask),
    k("bpf_cpumask_and", RCU, Cpumask),
    k("bpf_cpumask_or", RCU, Cpumask),
    k("bpf_cpumask_xor", RCU, Cpumask),
    k("bpf_cpumask_equal", RCU, Cpumask),
    k("bpf_cpumask_intersects", RCU, Cpumask),
    k("bpf_cpumask_subset", RCU, Cpumask),
    k("bpf_cpumask_empty", RCU, Cpumask),
    k("bpf_cpumask_full", RCU, Cpumask),
    k("bpf_cpumask_copy", RCU, Cpumask),
    k("bpf_cpumask_any_distribute", RCU, Cpumask),
    k("bpf_cpumask_any_and_distribute", RCU, Cpumask),
    k("bpf_cpumask_weight", RCU, Cpumask),
    k("bpf_cpumask_populate", RCU, Cpumask),
];

pub fn lookup(name: &str) -> Option<&'static Kfunc> {
    KFUNCS.iter().find(|k| k.name == name)
}

/// The release kfunc for references to a struct, for messages.
pub fn release_for(strukt: &str) -> &'static str {
    match strukt {
        "task_struct" => "bpf_task_release",
        "cgroup" => "bpf_cgroup_release",
        "bpf_cpumask" => "bpf_cpumask_release",
        _ => "its release kfunc",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kfunc_is_listed_once_and_releases_pair_with_acquires() {
        for (i, a) in KFUNCS.iter().enumerate() {
            assert!(
                KFUNCS[i + 1..].iter().all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
        assert!(lookup("bpf_task_acquire").unwrap().flags & ACQUIRE != 0);
        assert!(lookup("bpf_task_release").unwrap().flags & RELEASE != 0);
        assert!(Set::Generic.allows(ProgramType::Tracing));
        assert!(!Set::Generic.allows(ProgramType::Kprobe));
        assert!(Set::Common.allows(ProgramType::Kprobe));
    }
}
