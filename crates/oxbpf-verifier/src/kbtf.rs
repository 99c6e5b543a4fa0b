//! Typed kernel pointers (the kernel's PTR_TO_BTF_ID), read against the
//! kernel's own BTF: what a BTF-attached program's context arguments are
//! (`btf_ctx_access` in kernel/bpf/btf.c), what a read through a kernel
//! struct yields (`btf_struct_walk`), and whether a pointer is the struct a
//! helper wants (`btf_struct_ids_match`). The rules are the kernel's; the
//! messages name the struct, the member and the offset.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use oxbpf_obj::btf::{BtfType, Kind as BK};
use oxbpf_obj::btfindex::BtfIndex;
use oxbpf_obj::core::KernelBtf;

use crate::state::btf_flag;

/// What a BTF-attached program attaches to, from its section name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtfTarget {
    pub kind: TargetKind,
    /// The tracepoint, function, LSM hook or iterator name.
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// `tp_btf/NAME`: BPF_TRACE_RAW_TP, typed by `btf_trace_NAME`.
    RawTp,
    Fentry,
    Fexit,
    FmodRet,
    /// `lsm/NAME`: the hook `bpf_lsm_NAME`.
    Lsm,
    /// `iter/NAME`: `bpf_iter_NAME`.
    Iter,
}

impl BtfTarget {
    /// The target a section names (`tp_btf/sched_switch`, `fentry/tcp_connect`,
    /// `fexit.s/…`, `lsm/file_open`, `iter/task`), if it is a BTF-attached one.
    pub fn from_section(section: &str) -> Option<BtfTarget> {
        let (prefix, name) = section.split_once('/')?;
        let prefix = prefix.strip_suffix(".s").unwrap_or(prefix);
        let kind = match prefix {
            "tp_btf" => TargetKind::RawTp,
            "fentry" => TargetKind::Fentry,
            "fexit" => TargetKind::Fexit,
            "fmod_ret" => TargetKind::FmodRet,
            "lsm" | "lsm_cgroup" => TargetKind::Lsm,
            "iter" => TargetKind::Iter,
            _ => return None,
        };
        // `fentry/module:function` names a module's function.
        let name = name.rsplit(':').next().unwrap_or(name);
        if name.is_empty() {
            return None;
        }
        Some(BtfTarget {
            kind,
            name: name.to_string(),
        })
    }

    /// The section prefix, for messages.
    pub fn prefix(&self) -> &'static str {
        match self.kind {
            TargetKind::RawTp => "tp_btf",
            TargetKind::Fentry => "fentry",
            TargetKind::Fexit => "fexit",
            TargetKind::FmodRet => "fmod_ret",
            TargetKind::Lsm => "lsm",
            TargetKind::Iter => "iter",
        }
    }
}

/// One argument of the attach target's prototype.
#[derive(Clone, Debug)]
pub struct CtxArg {
    pub name: String,
    pub type_id: u32,
}

/// The context of a BTF-attached program: its target's arguments (and
/// return value, for fexit, fmod_ret and LSM programs).
#[derive(Clone, Debug)]
pub struct CtxArgs {
    pub target: BtfTarget,
    pub args: Vec<CtxArg>,
    /// The return type (0 = void) where the program may read it.
    pub ret: Option<u32>,
    /// Arguments that may be NULL (the kernel's `raw_tp_null_args`, by
    /// argument index), and arguments that may hold an error pointer.
    pub null_args: u32,
    pub err_args: u32,
}

/// What a read through a typed kernel pointer yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    Scalar,
    /// A pointer to the struct `id`, with the flags its member's type tags
    /// give (`__rcu`, `__user`, `__percpu`).
    Ptr {
        id: u32,
        flags: u8,
        /// Through a union of several members: untrusted.
        untrusted: bool,
    },
    /// A pointer to something other than a struct: untrusted read-only
    /// memory.
    PtrUntrusted,
}

/// The kernel's BTF with decoded types cached.
#[derive(Debug)]
pub struct Kbtf {
    pub kernel: Arc<KernelBtf>,
    types: RefCell<HashMap<u32, Option<Rc<BtfType>>>>,
    structs: RefCell<HashMap<String, Option<u32>>>,
}

/// Tracepoints whose arguments may be NULL or an error pointer (the
/// kernel's `raw_tp_null_args`, Linux 6.18): four bits per argument, bit 0
/// "may be NULL", bit 1 "may be an error pointer".
const RAW_TP_NULL_ARGS: &[(&str, u64)] = &[
    ("sched_pi_setprio", 0x10),
    ("sched_stick_numa", 0x100),
    ("sched_swap_numa", 0x100),
    ("afs_make_fs_call", 0x10),
    ("afs_make_fs_calli", 0x10),
    ("afs_make_fs_call1", 0x10),
    ("afs_make_fs_call2", 0x10),
    ("afs_protocol_error", 0x1),
    ("afs_flock_ev", 0x10),
    ("cachefiles_lookup", 0x1 | 0x200),
    ("cachefiles_unlink", 0x1),
    ("cachefiles_rename", 0x1),
    ("cachefiles_prep_read", 0x1),
    ("cachefiles_mark_active", 0x1),
    ("cachefiles_mark_failed", 0x1),
    ("cachefiles_mark_inactive", 0x1),
    ("cachefiles_vfs_error", 0x1),
    ("cachefiles_io_error", 0x1),
    ("cachefiles_ondemand_open", 0x1),
    ("cachefiles_ondemand_copen", 0x1),
    ("cachefiles_ondemand_close", 0x1),
    ("cachefiles_ondemand_read", 0x1),
    ("cachefiles_ondemand_cread", 0x1),
    ("cachefiles_ondemand_fd_write", 0x1),
    ("cachefiles_ondemand_fd_release", 0x1),
    ("break_lease_noblock", 0x10),
    ("break_lease_block", 0x10),
    ("break_lease_unblock", 0x10),
    ("generic_delete_lease", 0x10),
    ("time_out_leases", 0x10),
    ("host1x_cdma_push_gather", 0x10000),
    ("mm_khugepaged_scan_pmd", 0x10),
    ("mm_collapse_huge_page_isolate", 0x1),
    ("mm_khugepaged_scan_file", 0x10),
    ("mm_khugepaged_collapse_file", 0x10),
    ("mm_page_alloc", 0x1),
    ("mm_page_pcpu_drain", 0x1),
    ("mm_page_alloc_zone_locked", 0x1),
    ("netfs_failure", 0x10),
    ("device_pm_callback_start", 0x10),
    ("qdisc_dequeue", 0x1000),
    ("rxrpc_recvdata", 0x1),
    ("rxrpc_resend", 0x10),
    ("rxrpc_tq", 0x10),
    ("rxrpc_client", 0x1),
    ("kfree_skb", 0x1000),
    ("xs_stream_read_data", 0x1),
    ("xprt_reserve_cong", 0x10),
    ("xprt_release_cong", 0x10),
    ("xprt_get_cong", 0x10),
    ("xprt_put_cong", 0x10),
    ("tcp_send_reset", 0x11),
    ("tcp_sendmsg_locked", 0x100),
    ("tegra_dma_tx_status", 0x100),
    ("tmigr_update_events", 0x1),
    ("writeback_dirty_folio", 0x10),
    ("folio_wait_writeback", 0x10),
    ("mr_integ_alloc", 0x2000),
    ("amdgpu_vm_bo_map", 0x1),
    ("amdgpu_vm_bo_unmap", 0x1),
    ("netfs_folioq", 0x1),
    ("xfs_defer_create_intent", 0x1),
    ("xfs_defer_cancel_list", 0x1),
    ("xfs_defer_pending_finish", 0x1),
    ("xfs_defer_pending_abort", 0x1),
    ("xfs_defer_relog_intent", 0x1),
    ("xfs_defer_isolate_paused", 0x1),
    ("xfs_defer_item_pause", 0x1),
    ("xfs_defer_item_unpause", 0x1),
    ("xfs_defer_add_item", 0x1),
    ("xfs_defer_cancel_item", 0x1),
    ("xfs_defer_finish_item", 0x1),
    ("xfs_ioc_free_eofblocks", 0x10),
    ("xfs_blockgc_free_space", 0x10),
    ("xfs_btree_updkeys", 0x100),
    ("xfs_btree_overlapped_query_range", 0x100),
    ("xfs_map_blocks_found", 0x10000),
    ("xfs_map_blocks_alloc", 0x10000),
    ("xfs_iomap_alloc", 0x1000),
    ("xfs_iomap_found", 0x1000),
    ("xfs_inodegc_flush", 0x1),
    ("xfs_inodegc_push", 0x1),
    ("xfs_inodegc_start", 0x1),
    ("xfs_inodegc_stop", 0x1),
    ("xfs_inodegc_queue", 0x1),
    ("xfs_inodegc_throttle", 0x1),
    ("xfs_fs_sync_fs", 0x1),
    ("xfs_blockgc_start", 0x1),
    ("xfs_blockgc_stop", 0x1),
    ("xfs_blockgc_worker", 0x1),
    ("xfs_blockgc_flush_all", 0x1),
    ("xchk_nlinks_live_update", 0x10),
    ("xchk_metapath_lookup", 0x100),
    ("nfsd_dirent", 0x1),
    ("nfsd_file_acquire", 0x1001),
    ("nfsd_file_insert_err", 0x1),
    ("nfsd_file_cons_err", 0x1),
    ("nfs4_setup_sequence", 0x1),
    ("pnfs_update_layout", 0x10000),
    ("nfs4_inode_callback_event", 0x200),
    ("nfs4_inode_stateid_callback_event", 0x200),
    ("pnfs_mds_fallback_pg_init_read", 0x10000),
    ("pnfs_mds_fallback_pg_init_write", 0x10000),
    ("pnfs_mds_fallback_pg_get_mirror_count", 0x10000),
    ("pnfs_mds_fallback_read_done", 0x10000),
    ("pnfs_mds_fallback_write_done", 0x10000),
    ("pnfs_mds_fallback_read_pagelist", 0x10000),
    ("pnfs_mds_fallback_write_pagelist", 0x10000),
    ("coda_dec_pic_run", 0x10),
    ("coda_dec_pic_done", 0x10),
    ("cfg80211_scan_done", 0x11),
    ("rdev_set_coalesce", 0x10),
    ("cfg80211_report_wowlan_wakeup", 0x100),
    ("cfg80211_inform_bss_frame", 0x100),
    ("cfg80211_michael_mic_failure", 0x10000),
    ("wiphy_work_queue", 0x10),
    ("wiphy_work_run", 0x10),
    ("wiphy_work_cancel", 0x10),
    ("wiphy_work_flush", 0x10),
    ("hugetlbfs_alloc_inode", 0x10),
    ("spufs_context", 0x10),
    ("kvm_page_fault_enter", 0x100),
    ("dpu_crtc_setup_mixer", 0x100),
    ("binder_transaction", 0x100),
    ("btree_path_free", 0x100),
    ("hfi1_sdma_progress", 0x1000),
    ("iptfs_ingress_postq_event", 0x1000),
    ("neigh_update", 0x10),
    ("amdtp_packet", 0x100),
];

/// Members whose pointers keep a trusted parent's trust, or are valid in
/// the RCU read section (possibly NULL): the kernel's
/// `BTF_TYPE_SAFE_TRUSTED`, `BTF_TYPE_SAFE_RCU` and their `_OR_NULL` lists.
const SAFE_TRUSTED: &[(&str, &str)] = &[
    ("bpf_iter_meta", "seq"),
    ("bpf_iter__task", "task"),
    ("linux_binprm", "file"),
    ("file", "f_inode"),
];
const SAFE_TRUSTED_OR_NULL: &[(&str, &str)] = &[("dentry", "d_inode"), ("socket", "sk")];
const SAFE_RCU: &[(&str, &str)] = &[
    ("task_struct", "cpus_ptr"),
    ("task_struct", "cgroups"),
    ("task_struct", "real_parent"),
    ("task_struct", "group_leader"),
    ("cgroup", "kn"),
    ("css_set", "dfl_cgrp"),
    ("cgroup_subsys_state", "cgroup"),
];
const SAFE_RCU_OR_NULL: &[(&str, &str)] = &[
    ("mm_struct", "exe_file"),
    ("sk_buff", "sk"),
    ("request_sock", "sk"),
];

/// How a pointer read out of a struct is trusted, by the member's place
/// in the kernel's lists: `(flags, maybe_null)` added to the result.
pub fn member_trust(strukt: &str, member: &str) -> Option<(u8, bool)> {
    let has = |l: &[(&str, &str)]| l.iter().any(|&(s, m)| s == strukt && m == member);
    if has(SAFE_TRUSTED) {
        Some((btf_flag::TRUSTED, false))
    } else if has(SAFE_TRUSTED_OR_NULL) {
        Some((btf_flag::TRUSTED, true))
    } else if has(SAFE_RCU) {
        Some((btf_flag::RCU, false))
    } else if has(SAFE_RCU_OR_NULL) {
        Some((btf_flag::RCU, true))
    } else {
        None
    }
}

const MAX_BPF_FUNC_ARGS: i64 = 12;

impl Kbtf {
    pub fn new(kernel: Arc<KernelBtf>) -> Kbtf {
        Kbtf {
            kernel,
            types: RefCell::new(HashMap::new()),
            structs: RefCell::new(HashMap::new()),
        }
    }

    pub fn idx(&self) -> &BtfIndex {
        &self.kernel.index
    }

    pub fn ty(&self, id: u32) -> Option<Rc<BtfType>> {
        if let Some(t) = self.types.borrow().get(&id) {
            return t.clone();
        }
        let t = self.idx().get(id).map(Rc::new);
        self.types.borrow_mut().insert(id, t.clone());
        t
    }

    /// The struct (or union) named `name`.
    pub fn struct_id(&self, name: &str) -> Option<u32> {
        if let Some(&id) = self.structs.borrow().get(name) {
            return id;
        }
        let id = self.idx().find(name, |k| k == 4 || k == 5);
        self.structs.borrow_mut().insert(name.to_string(), id);
        id
    }

    pub fn name(&self, id: u32) -> String {
        self.ty(id).map(|t| t.name.clone()).unwrap_or_default()
    }

    /// Follows typedefs and qualifiers (the kernel's `btf_type_is_modifier`
    /// kinds); also returns the first type tag met and whether it came
    /// before anything else (the kernel looks at the tag right below a
    /// pointer).
    fn skip_mods(&self, mut id: u32) -> (u32, Option<String>) {
        let mut tag = None;
        for _ in 0..32 {
            let Some(t) = self.ty(id) else { break };
            match t.kind {
                BK::TypeTag { target } => {
                    if tag.is_none() && !t.kind_flag {
                        tag = Some(t.name.clone());
                    }
                    id = target;
                }
                BK::Typedef { target }
                | BK::Volatile { target }
                | BK::Const { target }
                | BK::Restrict { target } => id = target,
                _ => break,
            }
        }
        (id, tag)
    }

    fn is_struct(&self, id: u32) -> bool {
        self.ty(id)
            .is_some_and(|t| matches!(t.kind, BK::Struct { .. } | BK::Union { .. }))
    }

    fn is_scalar_arg(&self, id: u32) -> bool {
        // btf_type_is_small_int, any enum, or a struct passed by value.
        self.ty(id).is_some_and(|t| match t.kind {
            BK::Int { size, .. } => id != 0 && size <= 8,
            BK::Enum { .. } | BK::Enum64 { .. } | BK::Struct { .. } | BK::Union { .. } => true,
            _ => false,
        })
    }

    /// The prototype's arguments (and return type) of a target.
    pub fn ctx_args(&self, target: &BtfTarget) -> Result<CtxArgs, String> {
        let i = self.idx();
        let proto_of = |func: u32| -> Option<u32> {
            match self.ty(func)?.kind {
                BK::Func { proto, .. } => Some(proto),
                _ => None,
            }
        };
        let (proto, skip_first) = match target.kind {
            TargetKind::RawTp => {
                let name = format!("btf_trace_{}", target.name);
                let td = i.find(&name, |k| k == 8).ok_or_else(|| {
                    format!(
                        "tp_btf/{}: the kernel has no such tracepoint (its BTF has no typedef {name})",
                        target.name
                    )
                })?;
                let (p, _) = self.skip_mods(td);
                let ptr = match self.ty(p).map(|t| t.kind.clone()) {
                    Some(BK::Ptr { target }) => target,
                    _ => return Err(format!("{name} is not a pointer to a function")),
                };
                (self.skip_mods(ptr).0, true)
            }
            k => {
                let name = match k {
                    TargetKind::Lsm => format!("bpf_lsm_{}", target.name),
                    TargetKind::Iter => format!("bpf_iter_{}", target.name),
                    _ => target.name.clone(),
                };
                let f = i.find(&name, |k| k == 12).ok_or_else(|| {
                    format!(
                        "{}/{}: the kernel's BTF has no function {name}",
                        target.prefix(),
                        target.name
                    )
                })?;
                (
                    proto_of(f).ok_or_else(|| format!("{name} has no prototype"))?,
                    false,
                )
            }
        };
        let Some(BK::FuncProto { ret, params }) = self.ty(proto).map(|t| t.kind.clone()) else {
            return Err(format!("{}: not a function prototype", target.name));
        };
        let mut args: Vec<CtxArg> = params
            .into_iter()
            .map(|(name, type_id)| CtxArg { name, type_id })
            .collect();
        if skip_first && !args.is_empty() {
            args.remove(0);
        }
        let ret = match target.kind {
            TargetKind::Fexit | TargetKind::Lsm => Some(ret),
            TargetKind::FmodRet => {
                let (r, _) = self.skip_mods(ret);
                if !self.ty(r).is_some_and(
                    |t| matches!(t.kind, BK::Int { size, .. } if size > 0 && size <= 8),
                ) {
                    return Err(format!(
                        "fmod_ret/{}: ret type {} not allowed for fmod_ret (it must return an int)",
                        target.name,
                        oxbpf_obj::btfindex::BtfTypes::type_name(i, ret)
                    ));
                }
                Some(ret)
            }
            _ => None,
        };
        let (mut null_args, mut err_args) = (0, 0);
        if target.kind == TargetKind::RawTp
            && let Some(&(_, mask)) = RAW_TP_NULL_ARGS.iter().find(|(n, _)| *n == target.name)
        {
            for a in 0..16 {
                if mask & (1 << (a * 4)) != 0 {
                    null_args |= 1 << a;
                }
                if mask & (2 << (a * 4)) != 0 {
                    err_args |= 1 << a;
                }
            }
        }
        Ok(CtxArgs {
            target: target.clone(),
            args,
            ret,
            null_args,
            err_args,
        })
    }

    /// Size of a type for argument slots (pointers 8).
    fn arg_size(&self, id: u32) -> u64 {
        oxbpf_obj::btfindex::BtfTypes::size_of(self.idx(), id).unwrap_or(8)
    }

    /// A read of `size` bytes at `off` of a BTF-attached program's context:
    /// what register it yields (`Ok(None)`: a scalar), as the kernel's
    /// `btf_ctx_access` decides.
    pub fn ctx_access(
        &self,
        c: &CtxArgs,
        off: i64,
        size: i64,
        write: bool,
    ) -> Result<Option<(u32, u8, bool)>, String> {
        let func = &c.target.name;
        if write {
            return Err(format!(
                "invalid bpf_context access off={off} size={size}: the context of a {} program is read-only",
                c.target.prefix()
            ));
        }
        if !(0..8 * MAX_BPF_FUNC_ARGS).contains(&off) || off % size != 0 {
            return Err(format!("invalid bpf_context access off={off} size={size}"));
        }
        if off % 8 != 0 {
            return Err(format!("func '{func}' offset {off} is not multiple of 8"));
        }
        // Arguments take whole 8-byte slots (a struct by value, two).
        let mut arg = c.args.len();
        let mut at = 0u64;
        for (k, a) in c.args.iter().enumerate() {
            let sz = self.arg_size(a.type_id).div_ceil(8) * 8;
            if (off as u64) < at + sz.max(8) {
                arg = k;
                break;
            }
            at += sz.max(8);
        }
        if arg == c.args.len() && (off as u64) > at {
            return Err(format!(
                "func '{func}' doesn't have {}-th argument",
                arg + 1 + ((off as u64 - at) / 8) as usize
            ));
        }
        let ty = if arg == c.args.len() {
            match c.ret {
                Some(r) => r,
                None => {
                    return Err(format!(
                        "func '{func}' doesn't have {}-th argument",
                        arg + 1
                    ));
                }
            }
        } else {
            c.args[arg].type_id
        };
        let (t, _) = self.skip_mods(ty);
        if ty == 0 && arg == c.args.len() {
            // A void function's "return value".
            return Ok(None);
        }
        if self.is_scalar_arg(t) {
            return Ok(None);
        }
        let Some(BK::Ptr { target: pointee }) = self.ty(t).map(|x| x.kind.clone()) else {
            return Err(format!(
                "func '{func}' arg{arg} has type {}. Only pointer access is allowed",
                oxbpf_obj::btfindex::BtfTypes::type_name(self.idx(), ty)
            ));
        };
        if size != 8 {
            return Err(format!("func '{func}' size {size} must be 8"));
        }
        let (s, tag) = self.skip_mods(pointee);
        if !self.is_struct(s) {
            // A pointer to a scalar, or a pointer to a pointer: a number.
            return Ok(None);
        }
        let mut flags = 0u8;
        if matches!(c.target.kind, TargetKind::RawTp | TargetKind::Iter) {
            flags |= btf_flag::TRUSTED;
        }
        match tag.as_deref() {
            Some("user") => flags |= btf_flag::USER,
            Some("percpu") => flags |= btf_flag::PERCPU,
            _ => {}
        }
        if c.err_args & (1 << arg) != 0 {
            return Ok(None);
        }
        let mut maybe_null = c.null_args & (1 << arg) != 0
            || c.args
                .get(arg)
                .is_some_and(|a| a.name.ends_with("__nullable"));
        // Iterators hand their object over possibly NULL (the end of the
        // walk), their meta never.
        if c.target.kind == TargetKind::Iter && arg > 0 {
            maybe_null = true;
        }
        Ok(Some((s, flags, maybe_null)))
    }

    /// The member sizes the kernel's `__btf_resolve_size` gives: the type
    /// with modifiers skipped, its whole size, and for arrays the
    /// innermost element and the total element count.
    fn resolve_size(&self, id: u32) -> Option<(u32, u64, u32, u64)> {
        let (t, _) = self.skip_mods(id);
        let ty = self.ty(t)?;
        match ty.kind {
            BK::Array { .. } => {
                let mut n = 1u64;
                let mut cur = t;
                for _ in 0..16 {
                    let (c, _) = self.skip_mods(cur);
                    match self.ty(c)?.kind {
                        BK::Array { elem, nelems, .. } => {
                            n = n.checked_mul(nelems as u64)?;
                            cur = elem;
                        }
                        _ => {
                            let (e, _) = self.skip_mods(cur);
                            let es = oxbpf_obj::btfindex::BtfTypes::size_of(self.idx(), e)?;
                            return Some((t, es.checked_mul(n)?, e, n));
                        }
                    }
                }
                None
            }
            _ => {
                let s = oxbpf_obj::btfindex::BtfTypes::size_of(self.idx(), t)?;
                Some((t, s, t, 1))
            }
        }
    }

    /// A read of `size` bytes at `off` of struct `id`: the kernel's
    /// `btf_struct_access` (nested structs entered until a scalar or a
    /// pointer member is found).
    pub fn struct_access(&self, id: u32, off: i64, size: i64) -> Result<(Walk, String), String> {
        let mut t = id;
        let mut off = off;
        let mut untrusted = false;
        for _ in 0..64 {
            match self.walk(t, off, size, &mut untrusted)? {
                (WalkStep::Struct(next), _) => {
                    t = next;
                    off = 0;
                }
                (WalkStep::Done(w), field) => {
                    let w = match w {
                        Walk::Ptr { id, flags, .. } => Walk::Ptr {
                            id,
                            flags,
                            untrusted,
                        },
                        w => w,
                    };
                    return Ok((w, field));
                }
            }
        }
        Err(format!("struct {} is nested too deeply", self.name(id)))
    }

    fn walk(
        &self,
        id: u32,
        off: i64,
        size: i64,
        untrusted: &mut bool,
    ) -> Result<(WalkStep, String), String> {
        let mut t = id;
        let mut off = off;
        'again: for _ in 0..64 {
            let (tid, _) = self.skip_mods(t);
            t = tid;
            let ty = self
                .ty(t)
                .ok_or_else(|| format!("BTF type {t} does not exist"))?;
            let tname = ty.name.clone();
            let (tsize, members, is_union) = match &ty.kind {
                BK::Struct { size, members } => (*size as i64, members.clone(), false),
                BK::Union { size, members } => (*size as i64, members.clone(), true),
                _ => return Err(format!("Type '{tname}' is not a struct")),
            };
            if is_union && members.len() != 1 {
                *untrusted = true;
            }
            if off + size > tsize {
                // A flexible array at the end may be read past the size.
                let flex = members.last().and_then(|m| {
                    let (mt, _) = self.skip_mods(m.type_id);
                    match self.ty(mt)?.kind {
                        BK::Array {
                            elem, nelems: 0, ..
                        } => Some((m.offset as i64 / 8, elem)),
                        _ => None,
                    }
                });
                let beyond = || {
                    format!(
                        "access beyond struct {tname} at off {off} size {size} (the struct is {tsize} bytes)"
                    )
                };
                let Some((moff, elem)) = flex else {
                    return Err(beyond());
                };
                if off < moff {
                    return Err(beyond());
                }
                let (e, _) = self.skip_mods(elem);
                match self.ty(e).map(|x| x.kind.clone()) {
                    Some(BK::Int { .. }) => {
                        return Ok((WalkStep::Done(Walk::Scalar), String::new()));
                    }
                    Some(BK::Struct { size: es, .. } | BK::Union { size: es, .. }) if es > 0 => {
                        off = (off - moff) % es as i64;
                        t = e;
                        continue 'again;
                    }
                    _ => return Err(beyond()),
                }
            }
            for m in &members {
                let moff = m.offset as i64 / 8;
                if off + size <= moff {
                    break;
                }
                if m.bitfield_size != 0 {
                    let end_bit = m.offset as i64 + m.bitfield_size as i64;
                    if off <= moff && (end_bit + 7) / 8 <= off + size {
                        return Ok((WalkStep::Done(Walk::Scalar), m.name.clone()));
                    }
                    continue;
                }
                if off < moff {
                    break;
                }
                let Some((mut mtype, msize, elem, nelems)) = self.resolve_size(m.type_id) else {
                    return Err(format!("field {} doesn't have size", m.name));
                };
                let mtrue_end = moff + msize as i64;
                if off >= mtrue_end {
                    continue;
                }
                let mut moff = moff;
                let mut msize = msize as i64;
                let is_array = self
                    .ty(mtype)
                    .is_some_and(|x| matches!(x.kind, BK::Array { .. }));
                if is_array {
                    if moff == mtrue_end {
                        continue;
                    }
                    msize /= nelems.max(1) as i64;
                    if msize == 0 {
                        continue;
                    }
                    let idx = (off - moff) / msize;
                    moff += idx * msize;
                    mtype = elem;
                }
                let mk = self.ty(mtype).map(|x| x.kind.clone());
                match mk {
                    Some(BK::Struct { .. } | BK::Union { .. }) => {
                        if off == moff {
                            return Ok((WalkStep::Struct(mtype), m.name.clone()));
                        }
                        off -= moff;
                        t = mtype;
                        continue 'again;
                    }
                    Some(BK::Ptr { target }) => {
                        if msize != size || off != moff {
                            return Err(format!(
                                "cannot access ptr member {} with moff {moff} in struct {tname} with off {off} size {size}",
                                m.name
                            ));
                        }
                        let (s, tag) = self.skip_mods(target);
                        let flags = match tag.as_deref() {
                            Some("user") => btf_flag::USER,
                            Some("percpu") => btf_flag::PERCPU,
                            Some("rcu") => btf_flag::RCU,
                            _ => 0,
                        };
                        if self.is_struct(s) {
                            return Ok((
                                WalkStep::Done(Walk::Ptr {
                                    id: s,
                                    flags,
                                    untrusted: false,
                                }),
                                m.name.clone(),
                            ));
                        }
                        return Ok((WalkStep::Done(Walk::PtrUntrusted), m.name.clone()));
                    }
                    _ => {
                        if off + size > mtrue_end && !*untrusted {
                            return Err(format!(
                                "access beyond the end of member {} (mend:{mtrue_end}) in struct {tname} with off {off} size {size}",
                                m.name
                            ));
                        }
                        return Ok((WalkStep::Done(Walk::Scalar), m.name.clone()));
                    }
                }
            }
            return Err(format!("struct {tname} doesn't have field at offset {off}"));
        }
        Err(format!("struct {} is nested too deeply", self.name(id)))
    }

    /// Whether a pointer to struct `id` at `off` is a pointer to struct
    /// `want` (itself, or `want` nested at that offset, as the kernel's
    /// `btf_struct_ids_match`).
    pub fn ids_match(&self, id: u32, off: i64, want: u32) -> bool {
        if off == 0 && id == want {
            return true;
        }
        let mut id = id;
        let mut off = off;
        for _ in 0..32 {
            let mut u = false;
            match self.walk(id, off, 1, &mut u) {
                Ok((WalkStep::Struct(next), _)) => {
                    if next == want {
                        return true;
                    }
                    id = next;
                    off = 0;
                }
                _ => return false,
            }
        }
        false
    }
}

enum WalkStep {
    Struct(u32),
    Done(Walk),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_name_their_targets() {
        let t = BtfTarget::from_section("tp_btf/sched_switch").unwrap();
        assert_eq!(
            (t.kind, t.name.as_str()),
            (TargetKind::RawTp, "sched_switch")
        );
        let t = BtfTarget::from_section("fexit.s/do_unlinkat").unwrap();
        assert_eq!(
            (t.kind, t.name.as_str()),
            (TargetKind::Fexit, "do_unlinkat")
        );
        let t = BtfTarget::from_section("fentry/bpf_testmod:bpf_testmod_test_read").unwrap();
        assert_eq!(t.name, "bpf_testmod_test_read");
        assert_eq!(
            BtfTarget::from_section("lsm/file_open").unwrap().kind,
            TargetKind::Lsm
        );
        assert!(BtfTarget::from_section("raw_tp/sched_switch").is_none());
        assert!(BtfTarget::from_section("tp_btf/").is_none());
        assert!(BtfTarget::from_section("kprobe/x").is_none());
    }
}
