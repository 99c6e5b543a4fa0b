//! Helper prototypes (argument and return types, as the kernel's
//! `bpf_func_proto`s declare them) and context access rules per program type.

use oxbpf_obj::ProgramType;

/// What a helper argument must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    Anything,
    /// `CONST_PTR_TO_MAP`.
    Map,
    /// Pointer to `key_size` initialized bytes of the previous map arg.
    MapKey,
    /// Pointer to `value_size` initialized bytes.
    MapValue,
    /// Pointer to `value_size` writable bytes.
    UninitMapValue,
    /// Pointer to readable memory whose size is the next argument.
    Mem,
    /// Pointer to memory (or NULL) whose size is the next argument.
    MemOrNull,
    /// Pointer to writable memory whose size is the next argument.
    UninitMem,
    /// A constant size for the previous argument (> 0).
    Size,
    /// A constant size, possibly 0.
    SizeOrZero,
    Ctx,
    /// A subprogram address (callback).
    Func,
    /// A pointer to a bpf_spin_lock inside a map value.
    SpinLock,
    /// Memory returned by `ringbuf_reserve`.
    RingbufMem,
    /// Pointer to a NUL-terminated constant string (read-only map value).
    ConstStr,
    /// Any socket pointer (`ARG_PTR_TO_SOCK_COMMON`).
    SockCommon,
    /// A socket reference to release (`bpf_sk_release`).
    ReleaseSock,
}

/// What a helper returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Integer,
    Void,
    /// `PTR_TO_MAP_VALUE_OR_NULL` of the map argument (a map pointer for
    /// maps of maps).
    MapValueOrNull,
    /// `PTR_TO_MEM_OR_NULL` of the size given by constant argument `n`.
    MemOrNullSizeArg(usize),
    /// A socket or NULL: a new reference when `acquires`, else a view of
    /// the socket argument that shares its reference (`sk_fullsock`,
    /// `tcp_sock`).
    SockOrNull {
        kind: crate::state::SockKind,
        acquires: bool,
    },
}

/// A helper's prototype.
#[derive(Clone, Copy, Debug)]
pub struct Proto {
    pub name: &'static str,
    pub args: &'static [Arg],
    pub ret: Ret,
    /// Moves or resizes the packet: every packet pointer becomes invalid.
    pub changes_packet: bool,
    /// Needs a packet program (XDP or skb).
    pub packet_only: bool,
    pub gpl_only: bool,
}

const fn p(name: &'static str, args: &'static [Arg], ret: Ret) -> Proto {
    Proto {
        name,
        args,
        ret,
        changes_packet: false,
        packet_only: false,
        gpl_only: false,
    }
}

const fn pkt(mut x: Proto, changes: bool) -> Proto {
    x.packet_only = true;
    x.changes_packet = changes;
    x
}

const fn gpl(mut x: Proto) -> Proto {
    x.gpl_only = true;
    x
}

use Arg::*;

/// The prototype of helper `id`, if oxbpf knows it.
pub fn proto(id: i32) -> Option<Proto> {
    Some(match id {
        1 => p("map_lookup_elem", &[Map, MapKey], Ret::MapValueOrNull),
        2 => p(
            "map_update_elem",
            &[Map, MapKey, MapValue, Anything],
            Ret::Integer,
        ),
        3 => p("map_delete_elem", &[Map, MapKey], Ret::Integer),
        4 => gpl(p("probe_read", &[UninitMem, Size, Anything], Ret::Integer)),
        5 => p("ktime_get_ns", &[], Ret::Integer),
        // Only the format and its size are declared; r3..r5 are read only
        // when the format uses them.
        6 => gpl(p("trace_printk", &[Mem, Size], Ret::Integer)),
        7 => p("get_prandom_u32", &[], Ret::Integer),
        8 => p("get_smp_processor_id", &[], Ret::Integer),
        9 => pkt(
            p(
                "skb_store_bytes",
                &[Ctx, Anything, Mem, Size, Anything],
                Ret::Integer,
            ),
            true,
        ),
        10 => pkt(
            p(
                "l3_csum_replace",
                &[Ctx, Anything, Anything, Anything, Anything],
                Ret::Integer,
            ),
            true,
        ),
        11 => pkt(
            p(
                "l4_csum_replace",
                &[Ctx, Anything, Anything, Anything, Anything],
                Ret::Integer,
            ),
            true,
        ),
        12 => p("tail_call", &[Ctx, Map, Anything], Ret::Void),
        14 => gpl(p("get_current_pid_tgid", &[], Ret::Integer)),
        15 => gpl(p("get_current_uid_gid", &[], Ret::Integer)),
        16 => gpl(p("get_current_comm", &[UninitMem, Size], Ret::Integer)),
        22 => gpl(p("perf_event_read", &[Map, Anything], Ret::Integer)),
        23 => pkt(p("redirect", &[Anything, Anything], Ret::Integer), false),
        27 => gpl(p("get_stackid", &[Ctx, Map, Anything], Ret::Integer)),
        25 => gpl(p(
            "perf_event_output",
            &[Ctx, Map, Anything, Mem, SizeOrZero],
            Ret::Integer,
        )),
        26 => pkt(
            p(
                "skb_load_bytes",
                &[Ctx, Anything, UninitMem, Size],
                Ret::Integer,
            ),
            false,
        ),
        37 => p("current_task_under_cgroup", &[Map, Anything], Ret::Integer),
        55 => gpl(p(
            "perf_event_read_value",
            &[Map, Anything, UninitMem, Size],
            Ret::Integer,
        )),
        56 => gpl(p(
            "perf_prog_read_value",
            &[Ctx, UninitMem, Size],
            Ret::Integer,
        )),
        59 => p("sock_ops_cb_flags_set", &[Ctx, Anything], Ret::Integer),
        49 => p(
            "setsockopt",
            &[Ctx, Anything, Anything, Mem, Size],
            Ret::Integer,
        ),
        57 => p(
            "getsockopt",
            &[Ctx, Anything, Anything, UninitMem, Size],
            Ret::Integer,
        ),
        69 => pkt(
            p(
                "fib_lookup",
                &[Ctx, UninitMem, Size, Anything],
                Ret::Integer,
            ),
            false,
        ),
        28 => p(
            "csum_diff",
            &[MemOrNull, SizeOrZero, MemOrNull, SizeOrZero, Anything],
            Ret::Integer,
        ),
        42 => p("get_numa_node_id", &[], Ret::Integer),
        44 => pkt(p("xdp_adjust_head", &[Ctx, Anything], Ret::Integer), true),
        45 => gpl(p(
            "probe_read_str",
            &[UninitMem, Size, Anything],
            Ret::Integer,
        )),
        51 => p("redirect_map", &[Map, Anything, Anything], Ret::Integer),
        17 => p("get_cgroup_classid", &[Ctx], Ret::Integer),
        18 => pkt(
            p("skb_vlan_push", &[Ctx, Anything, Anything], Ret::Integer),
            true,
        ),
        19 => pkt(p("skb_vlan_pop", &[Ctx], Ret::Integer), true),
        24 => p("get_route_realm", &[Ctx], Ret::Integer),
        31 => pkt(
            p("skb_change_proto", &[Ctx, Anything, Anything], Ret::Integer),
            true,
        ),
        32 => p("skb_change_type", &[Ctx, Anything], Ret::Integer),
        34 => p("get_hash_recalc", &[Ctx], Ret::Integer),
        35 => gpl(p("get_current_task", &[], Ret::Integer)),
        36 => gpl(p("probe_write_user", &[Anything, Mem, Size], Ret::Integer)),
        38 => pkt(
            p("skb_change_tail", &[Ctx, Anything, Anything], Ret::Integer),
            true,
        ),
        39 => pkt(p("skb_pull_data", &[Ctx, Anything], Ret::Integer), true),
        40 => p("csum_update", &[Ctx, Anything], Ret::Integer),
        41 => p("set_hash_invalid", &[Ctx], Ret::Void),
        43 => pkt(
            p("skb_change_head", &[Ctx, Anything, Anything], Ret::Integer),
            true,
        ),
        46 => p("get_socket_cookie", &[Ctx], Ret::Integer),
        47 => p("get_socket_uid", &[Ctx], Ret::Integer),
        48 => p("set_hash", &[Ctx, Anything], Ret::Integer),
        50 => pkt(
            p(
                "skb_adjust_room",
                &[Ctx, Anything, Anything, Anything],
                Ret::Integer,
            ),
            true,
        ),
        58 => gpl(p("override_return", &[Ctx, Anything], Ret::Integer)),
        61 => p("msg_apply_bytes", &[Ctx, Anything], Ret::Integer),
        62 => p("msg_cork_bytes", &[Ctx, Anything], Ret::Integer),
        67 => gpl(p(
            "get_stack",
            &[Ctx, UninitMem, SizeOrZero, Anything],
            Ret::Integer,
        )),
        68 => p(
            "skb_load_bytes_relative",
            &[Ctx, Anything, UninitMem, Size, Anything],
            Ret::Integer,
        ),
        79 => p("skb_cgroup_id", &[Ctx], Ret::Integer),
        80 => p("get_current_cgroup_id", &[], Ret::Integer),
        83 => p("skb_ancestor_cgroup_id", &[Ctx, Anything], Ret::Integer),
        97 => p("skb_ecn_set_ce", &[Ctx], Ret::Integer),
        109 => gpl(p("send_signal", &[Anything], Ret::Integer)),
        117 => gpl(p("send_signal_thread", &[Anything], Ret::Integer)),
        123 => p("get_current_ancestor_cgroup_id", &[Anything], Ret::Integer),
        52 => p(
            "sk_redirect_map",
            &[Ctx, Map, Anything, Anything],
            Ret::Integer,
        ),
        53 => p(
            "sock_map_update",
            &[Ctx, Map, MapKey, Anything],
            Ret::Integer,
        ),
        60 => p(
            "msg_redirect_map",
            &[Ctx, Map, Anything, Anything],
            Ret::Integer,
        ),
        70 => p(
            "sock_hash_update",
            &[Ctx, Map, MapKey, Anything],
            Ret::Integer,
        ),
        71 => p(
            "msg_redirect_hash",
            &[Ctx, Map, MapKey, Anything],
            Ret::Integer,
        ),
        72 => p(
            "sk_redirect_hash",
            &[Ctx, Map, MapKey, Anything],
            Ret::Integer,
        ),
        54 => pkt(p("xdp_adjust_meta", &[Ctx, Anything], Ret::Integer), true),
        65 => pkt(p("xdp_adjust_tail", &[Ctx, Anything], Ret::Integer), true),
        87 => p("map_push_elem", &[Map, MapValue, Anything], Ret::Integer),
        88 => p("map_pop_elem", &[Map, UninitMapValue], Ret::Integer),
        89 => p("map_peek_elem", &[Map, UninitMapValue], Ret::Integer),
        93 => p("spin_lock", &[SpinLock], Ret::Void),
        94 => p("spin_unlock", &[SpinLock], Ret::Void),
        112 => gpl(p(
            "probe_read_user",
            &[UninitMem, Size, Anything],
            Ret::Integer,
        )),
        113 => gpl(p(
            "probe_read_kernel",
            &[UninitMem, Size, Anything],
            Ret::Integer,
        )),
        114 => gpl(p(
            "probe_read_user_str",
            &[UninitMem, Size, Anything],
            Ret::Integer,
        )),
        115 => gpl(p(
            "probe_read_kernel_str",
            &[UninitMem, Size, Anything],
            Ret::Integer,
        )),
        118 => p("jiffies64", &[], Ret::Integer),
        125 => p("ktime_get_boot_ns", &[], Ret::Integer),
        130 => p(
            "ringbuf_output",
            &[Map, Mem, SizeOrZero, Anything],
            Ret::Integer,
        ),
        131 => p(
            "ringbuf_reserve",
            &[Map, Anything, Anything],
            Ret::MemOrNullSizeArg(1),
        ),
        132 => p("ringbuf_submit", &[RingbufMem, Anything], Ret::Void),
        133 => p("ringbuf_discard", &[RingbufMem, Anything], Ret::Void),
        134 => p("ringbuf_query", &[Map, Anything], Ret::Integer),
        160 => p("ktime_get_coarse_ns", &[], Ret::Integer),
        164 => p(
            "for_each_map_elem",
            &[Map, Func, Anything, Anything],
            Ret::Integer,
        ),
        165 => p(
            "snprintf",
            &[UninitMem, Size, ConstStr, MemOrNull, SizeOrZero],
            Ret::Integer,
        ),
        181 => p("loop", &[Anything, Func, Anything, Anything], Ret::Integer),
        182 => p("strncmp", &[Mem, Size, ConstStr], Ret::Integer),
        // Socket lookups take a `struct bpf_sock_tuple` and its size and
        // return a referenced socket or NULL.
        84 | 85 | 99 => p(
            match id {
                84 => "sk_lookup_tcp",
                85 => "sk_lookup_udp",
                _ => "skc_lookup_tcp",
            },
            &[Ctx, Mem, Size, Anything, Anything],
            Ret::SockOrNull {
                kind: if id == 99 {
                    crate::state::SockKind::Common
                } else {
                    crate::state::SockKind::Full
                },
                acquires: true,
            },
        ),
        86 => p("sk_release", &[ReleaseSock], Ret::Integer),
        95 => p(
            "sk_fullsock",
            &[SockCommon],
            Ret::SockOrNull {
                kind: crate::state::SockKind::Full,
                acquires: false,
            },
        ),
        96 => p(
            "tcp_sock",
            &[SockCommon],
            Ret::SockOrNull {
                kind: crate::state::SockKind::Tcp,
                acquires: false,
            },
        ),
        _ => return None,
    })
}

/// Whether program type `t` may call helper `id` (the kernel's per-type
/// `get_func_proto` tables, for the helpers that are restricted).
pub fn allowed(id: i32, t: ProgramType) -> bool {
    use ProgramType::*;
    let tc = matches!(t, SchedCls | SchedAct);
    match id {
        // Packet writes and redirects: tc (and lwt xmit, sk_skb); XDP redirects.
        9..=11 => tc || matches!(t, LwtXmit | SkSkb | LwtSeg6local),
        23 => tc || matches!(t, Xdp | LwtXmit),
        26 => {
            tc || matches!(
                t,
                SocketFilter
                    | CgroupSkb
                    | SkSkb
                    | LwtIn
                    | LwtOut
                    | LwtXmit
                    | LwtSeg6local
                    | SkReuseport
                    | FlowDissector
            )
        }
        44 | 54 | 65 => t == Xdp,
        51 => t == Xdp,
        69 => tc || t == Xdp,
        59 | 53 | 70 => t == SockOps,
        // skb helpers of tc (and, where the kernel allows, sk_skb/lwt).
        17 | 24 | 34 | 79 | 83 => tc || matches!(t, LwtIn | LwtOut | LwtXmit | CgroupSkb),
        18 | 19 | 31 | 32 | 40 | 41 | 48 | 50 | 97 => tc || (id == 50 && t == SkSkb),
        38 | 39 | 43 => tc || matches!(t, SkSkb | LwtXmit),
        46 | 47 | 68 => tc || matches!(t, SocketFilter | CgroupSkb | SkSkb),
        61 | 62 => t == SkMsg,
        // Writing user memory and overriding return values depend on kernel
        // configuration (lockdown, CONFIG_BPF_KPROBE_OVERRIDE); the reference
        // kernel refuses them, and so does oxbpf.
        36 | 58 => false,
        // Socket lookups and release: tc, XDP, socket-address hooks, sk_skb.
        84 | 85 | 86 | 99 => tc || matches!(t, Xdp | CgroupSockAddr | SkSkb),
        // Socket views: tc and cgroup skb programs (and sock_ops for tcp_sock).
        95 => tc || t == CgroupSkb,
        96 => tc || matches!(t, CgroupSkb | SockOps),
        35 | 67 | 109 | 117 => matches!(
            t,
            Kprobe | Tracepoint | RawTracepoint | RawTracepointWritable | PerfEvent | Tracing
        ),
        52 | 72 => t == SkSkb,
        60 | 71 => t == SkMsg,
        49 | 57 => matches!(t, SockOps | CgroupSockopt | CgroupSockAddr),
        56 => t == PerfEvent,
        27 | 22 | 55 => matches!(
            t,
            Kprobe | Tracepoint | RawTracepoint | RawTracepointWritable | PerfEvent | Tracing
        ),
        _ => true,
    }
}

/// A context field a program may access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A scalar field of this size; narrower loads are allowed when `narrow`.
    Scalar {
        size: u32,
        narrow: bool,
        writable: bool,
    },
    /// A packet pointer field (loads give a pointer of this kind).
    Packet,
    PacketEnd,
    PacketMeta,
}

/// Size of the context of program type `t`.
pub fn ctx_size(t: ProgramType) -> u32 {
    t.ctx_size()
}

/// The field at `off` of `t`'s context, if any.
pub fn ctx_field(t: ProgramType, off: i64) -> Option<Field> {
    use ProgramType::*;
    let sc = |size, narrow, writable| {
        Some(Field::Scalar {
            size,
            narrow,
            writable,
        })
    };
    match t {
        Xdp => match off {
            0 => Some(Field::Packet),
            4 => Some(Field::PacketEnd),
            8 => Some(Field::PacketMeta),
            12 | 16 | 20 => sc(4, false, false),
            _ => None,
        },
        SocketFilter | SchedCls | SchedAct | CgroupSkb | LwtIn | LwtOut | LwtXmit | SkSkb
        | LwtSeg6local => {
            let direct = !matches!(t, SocketFilter | CgroupSkb);
            match off {
                76 if direct => Some(Field::Packet),
                80 if direct => Some(Field::PacketEnd),
                140 if direct && matches!(t, SchedCls | SchedAct) => Some(Field::PacketMeta),
                // cb[5]
                48..=67 => sc(4, true, true),
                // mark, priority, tc_index, tc_classid, queue_mapping
                8 | 32 => sc(4, true, !matches!(t, SocketFilter)),
                44 | 72 => sc(4, true, matches!(t, SchedCls | SchedAct)),
                12 => sc(4, true, matches!(t, SchedCls | SchedAct)),
                // packet pointers are not readable without direct access
                76 | 80 | 140 => None,
                // other u32 fields up to 144 (read-only)
                0..=143 if off % 4 == 0 => sc(4, true, false),
                152 | 184 => sc(8, false, false),
                160..=183 if off % 4 == 0 && off != 168 => sc(4, true, false),
                _ => None,
            }
        }
        SockOps => match off {
            // op, then reply / replylong[4] (writable), then read-only fields.
            0 => sc(4, true, false),
            4..=19 if off % 4 == 0 => sc(4, true, true),
            20..=199 if off % 4 == 0 => sc(4, true, false),
            _ => None,
        },
        _ => {
            if off >= 0 && off < ctx_size(t) as i64 {
                sc(8, true, false)
            } else {
                None
            }
        }
    }
}

/// Whether a read of `size` bytes at `off` of socket view `k` is allowed
/// (the kernel's `bpf_sock_is_valid_access`, `bpf_sock_common_is_valid_access`
/// and `bpf_tcp_sock_is_valid_access`; all read-only).
pub fn sock_field_ok(k: crate::state::SockKind, off: i64, size: i64) -> bool {
    use crate::state::SockKind;
    if size <= 0 || off < 0 || off % size != 0 {
        return false;
    }
    match k {
        SockKind::Tcp => {
            // struct bpf_tcp_sock: u32 fields, bytes_received and
            // bytes_acked (u64) at 80 and 88; 112 bytes.
            off < 112
                && if off == 80 || off == 88 {
                    size == 8
                } else {
                    size == 4
                }
        }
        SockKind::Common if (8..24).contains(&off) => false,
        _ => {
            // struct bpf_sock, 80 bytes.
            if off >= 80 {
                return false;
            }
            match off {
                // state, family, type, protocol, src_port,
                // rx_queue_mapping, src_ip4, src_ip6, dst_ip4, dst_ip6:
                // narrow loads of a u32 field allowed.
                4..=15 | 24..=47 | 52..=79 => size <= 4 && (off % 4) + size <= 4,
                // dst_port: a u32 read, or u16/u8 within its 2 bytes.
                48..=49 => size == 4 || (off % 4) + size <= 2,
                50..=51 => false,
                // bound_dev_if, mark, priority: u32 reads only.
                _ => size == 4 && off % 4 == 0,
            }
        }
    }
}
