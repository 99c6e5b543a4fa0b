//! Helper prototypes (argument and return types, as the kernel's
//! `bpf_func_proto`s declare them) and context access rules per program type.

use oxbpf_obj::ProgramType;

/// What a helper argument must be, as oxbpf's verifier checks it.
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
    /// Pointer to `value_size` initialized bytes, or NULL (a local
    /// storage's initial value).
    MapValueOrNull,
    /// Pointer to readable memory whose size is the next argument.
    Mem,
    /// Pointer to memory (or NULL) whose size is the next argument.
    MemOrNull,
    /// Pointer to writable memory whose size is the next argument.
    UninitMem,
    /// Pointer to initialized memory the helper also writes (`MEM_WRITE`).
    MemRw,
    /// Pointer to `size` bytes, written by the helper when `write`.
    FixedMem {
        size: u32,
        write: bool,
    },
    /// A constant size for the previous argument (> 0).
    Size,
    /// A constant size, possibly 0.
    SizeOrZero,
    Ctx,
    /// The context, or NULL.
    CtxOrNull,
    /// A subprogram address (callback).
    Func,
    /// A pointer into the stack, or NULL (a callback's context).
    StackOrNull,
    /// A pointer to a bpf_spin_lock inside a map value.
    SpinLock,
    /// Memory returned by `ringbuf_reserve`, released here.
    RingbufMem,
    /// Pointer to a NUL-terminated constant string (read-only map value).
    ConstStr,
    /// Any socket pointer (`ARG_PTR_TO_SOCK_COMMON`).
    SockCommon,
    /// A socket reference to release (`bpf_sk_release`).
    ReleaseSock,
    /// Any socket pointer or NULL (`ARG_PTR_TO_BTF_ID_SOCK_COMMON |
    /// PTR_MAYBE_NULL`).
    SockCommonOrNull,
    /// A `struct bpf_dynptr` on the stack (`ARG_PTR_TO_DYNPTR`):
    /// initialized by the helper (`init`, of the one kind its flags name),
    /// else an initialized one of the kinds named (any when neither),
    /// released by it when `release`.
    Dynptr {
        init: bool,
        release: bool,
        local: bool,
        ringbuf: bool,
    },
    /// A per-CPU kernel variable's address (`ARG_PTR_TO_PERCPU_BTF_ID`).
    PercpuBtf,
    /// A typed kernel pointer to struct `strukt` (`ARG_PTR_TO_BTF_ID`),
    /// or NULL when `or_null`.
    BtfId {
        strukt: &'static str,
        or_null: bool,
    },
}

/// What a helper returns, as oxbpf's verifier models it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Integer,
    Void,
    /// `PTR_TO_MAP_VALUE_OR_NULL` of the map argument (a map pointer for
    /// maps of maps).
    MapValueOrNull,
    /// `PTR_TO_MEM_OR_NULL` of the size given by constant argument `n`.
    MemOrNullSizeArg(usize),
    /// `bpf_per_cpu_ptr`/`bpf_this_cpu_ptr`: the first argument's per-CPU
    /// variable on one CPU (a typed pointer for a struct, read-only memory
    /// otherwise), or NULL when `null`.
    PercpuOfArg {
        null: bool,
    },
    /// `bpf_dynptr_data`: memory of the dynptr (its third argument's
    /// constant size), or NULL.
    DynptrMemOrNull,
    /// A socket or NULL: a new reference when `acquires`, else a view of
    /// the socket argument that shares its reference (`sk_fullsock`,
    /// `tcp_sock`).
    SockOrNull {
        kind: crate::state::SockKind,
        acquires: bool,
    },
    /// A typed kernel pointer to struct `strukt` (`RET_PTR_TO_BTF_ID`),
    /// possibly NULL; a cast of the socket argument (`bpf_skc_to_*`)
    /// shares its reference.
    Btf {
        strukt: &'static str,
        or_null: bool,
        trusted: bool,
    },
}

/// The struct a helper's `ARG_PTR_TO_BTF_ID` argument must point to (the
/// proto's `arg_btf_id`), by helper id and argument index (from 0).
fn btf_arg_struct(id: u32, arg: usize) -> Option<&'static str> {
    Some(match (id, arg) {
        (111, 0) => "sk_buff",
        (121 | 188, 0) => "xdp_buff",
        (116, 0) => "tcp_sock",
        (126 | 127 | 150, 0) => "seq_file",
        (141 | 175 | 180, 0) | (156 | 157, 1) | (191, 3) => "task_struct",
        (145 | 146, 1) | (161, 0) => "inode",
        (147, 0) => "path",
        (159, 0) => "linux_binprm",
        (162 | 193, 0) => "file",
        (107 | 108, 1) => "sock",
        (210 | 211, 1) => "cgroup",
        _ => return None,
    })
}

/// The struct a helper's `RET_PTR_TO_BTF_ID*` result points to.
fn btf_ret_struct(id: u32) -> Option<&'static str> {
    Some(match id {
        136 => "tcp6_sock",
        137 => "tcp_sock",
        138 => "tcp_timewait_sock",
        139 => "tcp_request_sock",
        140 => "udp6_sock",
        158 => "task_struct",
        162 => "socket",
        175 => "pt_regs",
        178 => "unix_sock",
        196 => "mptcp_sock",
        _ => return None,
    })
}

/// A helper's prototype, from the kernel's (the ABI crate's table).
#[derive(Clone, Debug)]
pub struct Proto {
    pub name: &'static str,
    pub args: Vec<Arg>,
    pub ret: Ret,
    /// Moves or resizes the packet: every packet pointer becomes invalid.
    pub changes_packet: bool,
    pub gpl_only: bool,
}

/// Why a helper call is refused before its arguments are looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a helper id of the kernel.
    Unknown,
    /// The program type's `get_func_proto` does not hand it out.
    NotAllowed { name: String },
    /// It needs a capability the (unprivileged) program does not have.
    NeedsCap { name: String, cap: &'static str },
    /// It needs a kernel configuration option the reference kernel lacks,
    /// or is refused by its lockdown mode.
    NotBuilt { name: String, what: String },
    /// Only sleepable programs may call it.
    Sleepable { name: String },
    /// oxbpf's verifier does not model one of its argument or return types.
    Unsupported { name: String, what: String },
}

impl Refusal {
    pub fn message(&self, id: i32) -> String {
        match self {
            Refusal::Unknown => format!("invalid func unknown#{id}"),
            Refusal::NotAllowed { name } => {
                format!("program of this type cannot use helper {name}#{id}")
            }
            Refusal::NeedsCap { name, cap } => {
                format!("{name}#{id} needs {cap}: load the program as root (privileged)")
            }
            Refusal::NotBuilt { name, what } => format!(
                "program of this type cannot use helper {name}#{id}: it needs {what}, which the reference kernel does not have"
            ),
            Refusal::Sleepable { name } => format!(
                "helper call might sleep in a non-sleepable prog: {name}#{id} is for sleepable programs only"
            ),
            Refusal::Unsupported { name, what } => {
                format!("{name}#{id} is not supported by oxbpf's verifier yet: {what}")
            }
        }
    }
}

/// Socket lookups: their result is a new reference (the kernel's
/// `is_acquire_function`).
fn acquires_socket(id: u32) -> bool {
    use oxbpf_abi::helper as h;
    matches!(id, h::SK_LOOKUP_TCP | h::SK_LOOKUP_UDP | h::SKC_LOOKUP_TCP)
}

/// Socket views of their argument (the kernel's `is_ptr_cast_function`).
fn views_socket(id: u32) -> bool {
    use oxbpf_abi::helper as h;
    matches!(id, h::SK_FULLSOCK | h::TCP_SOCK)
}

/// Kernel conditions of availability that the reference kernel fails:
/// its lockdown mode (integrity) refuses writing user memory.
fn refused_by_reference(note: &str) -> Option<String> {
    note.contains("lockdown(LOCKDOWN_BPF_WRITE_USER)")
        .then(|| "a kernel without lockdown (LOCKDOWN_BPF_WRITE_USER)".to_string())
}

/// The prototype of helper `id` for a program of type `t`, from the
/// kernel's table: the proto variant that type's `get_func_proto`
/// returns, or why the call cannot be made. `privileged` programs have
/// every capability. Programs of type `Unspec` (raw bytecode) may call
/// every helper with its generic prototype.
pub fn proto_for(id: i32, t: ProgramType, privileged: bool) -> Result<Proto, Refusal> {
    use oxbpf_abi::helpers::{self as ah, ArgBase as A, Cap, RetBase as R, flag};
    let uid = u32::try_from(id).map_err(|_| Refusal::Unknown)?;
    let name = oxbpf_abi::helpers::helper_name(uid).ok_or(Refusal::Unknown)?;
    let p = if t == ProgramType::Unspec {
        // No program type: only what every type gets from the kernel's
        // `bpf_base_func_proto` (map, ring buffer, time, loop helpers...),
        // taken as the helpers a socket filter, a kprobe and an XDP
        // program all have.
        let base = [
            ProgramType::SocketFilter,
            ProgramType::Kprobe,
            ProgramType::Xdp,
        ]
        .iter()
        .all(|&t| ah::proto_for(t, uid).is_some());
        if !base {
            return Err(Refusal::NotAllowed { name });
        }
        ah::proto(uid).ok_or(Refusal::Unknown)?
    } else {
        let (p, a) =
            ah::proto_for(t, uid).ok_or_else(|| Refusal::NotAllowed { name: name.clone() })?;
        if a.cap > Cap::None && !privileged {
            return Err(Refusal::NeedsCap {
                name,
                cap: match a.cap {
                    Cap::Bpf => "CAP_BPF",
                    Cap::Perfmon => "CAP_BPF and CAP_PERFMON",
                    _ => "CAP_SYS_ADMIN",
                },
            });
        }
        if let Some(c) = a.configs.iter().find(|c| !ah::REFERENCE_CONFIG.contains(c)) {
            return Err(Refusal::NotBuilt {
                name,
                what: (*c).to_string(),
            });
        }
        if let Some(what) = refused_by_reference(a.note) {
            return Err(Refusal::NotBuilt { name, what });
        }
        // Where the kernel hands sleepable programs another proto, a
        // non-sleepable program gets the one the note names for it.
        let p = a
            .note
            .split("; ")
            .find_map(|c| {
                c.trim_start_matches("variant: ")
                    .strip_suffix(" if !prog->sleepable")
            })
            .and_then(|v| ah::protos_of(uid).iter().find(|x| x.variant == v))
            .unwrap_or(p);
        if a.sleepable_only || p.might_sleep {
            return Err(Refusal::Sleepable { name });
        }
        p
    };
    let unsupported = |what: String| Refusal::Unsupported {
        name: name.clone(),
        what,
    };
    let mut args = Vec::new();
    for (i, a) in p.args.iter().enumerate() {
        let maybe_null = a.has(flag::PTR_MAYBE_NULL);
        let arg = match a.base {
            A::None => break,
            A::Anything | A::Scalar => Arg::Anything,
            A::ConstMapPtr => Arg::Map,
            A::PtrToMapKey => Arg::MapKey,
            A::PtrToMapValue if !maybe_null && a.has(flag::MEM_UNINIT) => Arg::UninitMapValue,
            A::PtrToMapValue if !maybe_null => Arg::MapValue,
            A::PtrToMapValue => Arg::MapValueOrNull,
            A::PtrToMem if a.has(flag::MEM_FIXED_SIZE) && !maybe_null => Arg::FixedMem {
                size: a.size,
                write: a.has(flag::MEM_WRITE),
            },
            A::PtrToMem if a.has(flag::MEM_UNINIT) && !maybe_null => Arg::UninitMem,
            A::PtrToMem if maybe_null && !a.has(flag::MEM_WRITE) => Arg::MemOrNull,
            A::PtrToMem if a.has(flag::MEM_WRITE) && !maybe_null => Arg::MemRw,
            A::PtrToMem if !maybe_null => Arg::Mem,
            A::ConstSize => Arg::Size,
            A::ConstSizeOrZero | A::ConstAllocSizeOrZero => Arg::SizeOrZero,
            A::PtrToCtx if maybe_null => Arg::CtxOrNull,
            A::PtrToCtx => Arg::Ctx,
            A::PtrToFunc => Arg::Func,
            A::PtrToStack if maybe_null => Arg::StackOrNull,
            A::PtrToSpinLock => Arg::SpinLock,
            A::PtrToRingbufMem if a.has(flag::OBJ_RELEASE) => Arg::RingbufMem,
            A::PtrToConstStr => Arg::ConstStr,
            A::PtrToPercpuBtfId => Arg::PercpuBtf,
            A::PtrToDynptr => Arg::Dynptr {
                init: a.has(flag::MEM_UNINIT),
                release: a.has(flag::OBJ_RELEASE),
                local: a.has(flag::DYNPTR_TYPE_LOCAL),
                ringbuf: a.has(flag::DYNPTR_TYPE_RINGBUF),
            },
            A::PtrToSockCommon => Arg::SockCommon,
            A::PtrToBtfIdSockCommon if a.has(flag::OBJ_RELEASE) => Arg::ReleaseSock,
            // bpf_sk_assign's socket: any socket pointer, not NULL, its
            // reference (if any) kept by the caller.
            A::PtrToBtfIdSockCommon if !maybe_null => Arg::SockCommon,
            A::PtrToBtfIdSockCommon => Arg::SockCommonOrNull,
            A::PtrToBtfId => match btf_arg_struct(uid, i) {
                Some(strukt) => Arg::BtfId {
                    strukt,
                    or_null: maybe_null,
                },
                None => {
                    return Err(unsupported(format!(
                        "argument {} is {}",
                        i + 1,
                        p.kernel_args[i]
                    )));
                }
            },
            _ => {
                return Err(unsupported(format!(
                    "argument {} is {}",
                    i + 1,
                    p.kernel_args[i]
                )));
            }
        };
        args.push(arg);
    }
    let null = p.ret.has(flag::PTR_MAYBE_NULL);
    let sock = |kind| {
        if acquires_socket(uid) || views_socket(uid) {
            Some(Ret::SockOrNull {
                kind,
                acquires: acquires_socket(uid),
            })
        } else {
            None
        }
    };
    use crate::state::SockKind as S;
    let ret = match p.ret.base {
        R::Integer => Some(Ret::Integer),
        R::Void => Some(Ret::Void),
        R::PtrToMapValue if null => Some(Ret::MapValueOrNull),
        R::PtrToRingbufMem if null => Some(Ret::MemOrNullSizeArg(1)),
        R::PtrToDynptrMem if null => Some(Ret::DynptrMemOrNull),
        R::PtrToMemOrBtfId => Some(Ret::PercpuOfArg { null }),
        R::PtrToSocket if null => sock(S::Full),
        R::PtrToSockCommon if null => sock(S::Common),
        R::PtrToTcpSock if null => sock(S::Tcp),
        R::PtrToBtfId | R::PtrToBtfIdTrusted => btf_ret_struct(uid).map(|strukt| Ret::Btf {
            strukt,
            or_null: null,
            trusted: p.ret.base == R::PtrToBtfIdTrusted,
        }),
        _ => None,
    }
    .ok_or_else(|| unsupported(format!("it returns {}", p.kernel_ret)))?;
    Ok(Proto {
        name: p.name,
        args,
        ret,
        // A tail call changes packet data only from a subprogram (see the
        // call), so the table's flag is not taken for it.
        changes_packet: p.changes_pkt_data && uid != oxbpf_abi::helper::TAIL_CALL,
        gpl_only: p.gpl_only,
    })
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
    use oxbpf_abi::ctx::{sk_buff as s, xdp_md as x};
    let o = |c: u32| c as i64;
    match t {
        Xdp => match off {
            _ if off == o(x::DATA) => Some(Field::Packet),
            _ if off == o(x::DATA_END) => Some(Field::PacketEnd),
            _ if off == o(x::DATA_META) => Some(Field::PacketMeta),
            _ if [x::INGRESS_IFINDEX, x::RX_QUEUE_INDEX, x::EGRESS_IFINDEX]
                .iter()
                .any(|&f| off == o(f)) =>
            {
                sc(4, false, false)
            }
            _ => None,
        },
        SocketFilter | SchedCls | SchedAct | CgroupSkb | LwtIn | LwtOut | LwtXmit | SkSkb
        | LwtSeg6local => {
            let direct = !matches!(t, SocketFilter | CgroupSkb);
            let tc = matches!(t, SchedCls | SchedAct);
            let field = |f: u32| off == o(f);
            match off {
                _ if field(s::DATA) && direct => Some(Field::Packet),
                _ if field(s::DATA_END) && direct => Some(Field::PacketEnd),
                _ if field(s::DATA_META) && direct && tc => Some(Field::PacketMeta),
                // cb[5]
                _ if off >= o(s::CB) && off < o(s::CB) + 20 => sc(4, true, true),
                _ if field(s::MARK) || field(s::PRIORITY) => {
                    sc(4, true, !matches!(t, SocketFilter))
                }
                _ if field(s::TC_INDEX) || field(s::TC_CLASSID) || field(s::QUEUE_MAPPING) => {
                    sc(4, true, tc)
                }
                // Packet pointers are not readable without direct access.
                _ if field(s::DATA) || field(s::DATA_END) || field(s::DATA_META) => None,
                // The other u32 fields up to `flow_keys` (read-only).
                _ if off < o(s::FLOW_KEYS) && off % 4 == 0 => sc(4, true, false),
                // tstamp is writable by tc (tc_cls_act_is_valid_access)
                // and cgroup_skb (cg_skb_is_valid_access, with CAP_BPF).
                _ if field(s::TSTAMP) => sc(8, false, tc || matches!(t, CgroupSkb)),
                _ if field(s::HWTSTAMP) => sc(8, false, false),
                // Both halves of the `sk` pointer are off limits as numbers.
                _ if off >= o(s::SK) && off < o(s::SK) + 8 => None,
                _ if off >= o(s::WIRE_LEN) && off < o(s::HWTSTAMP) && off % 4 == 0 => {
                    sc(4, true, false)
                }
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

/// An access to `struct bpf_sock_addr` (a `cgroup_sock_addr` program's
/// context), as the kernel's `sock_addr_is_valid_access` decides it:
/// `Some(true)` for the `sk` pointer (PTR_TO_SOCKET), `Some(false)` for a
/// scalar, `None` when refused. `attach` is the section's attach point
/// (`connect4`…); the address fields of the other family, and the message
/// source outside sendmsg, are refused for it (unchecked when unknown).
/// The caller has checked that `off` is aligned to `size`.
pub fn sock_addr_access(off: i64, size: i64, write: bool, attach: Option<&str>) -> Option<bool> {
    // struct bpf_sock_addr (include/uapi/linux/bpf.h), 72 bytes.
    const USER_IP4: i64 = 4;
    const USER_IP6: (i64, i64) = (8, 24);
    const USER_PORT: i64 = 24;
    const MSG_SRC_IP4: i64 = 40;
    const MSG_SRC_IP6: (i64, i64) = (44, 60);
    const SK: i64 = 64;
    if !(0..72).contains(&off) {
        return None;
    }
    let family = |v4: bool| {
        attach.is_none_or(|a| {
            let n = if v4 { '4' } else { '6' };
            [
                "bind",
                "connect",
                "getpeername",
                "getsockname",
                "sendmsg",
                "recvmsg",
            ]
            .iter()
            .any(|k| {
                a.strip_prefix(k)
                    .is_some_and(|r| r.len() == 1 && r.starts_with(n))
            })
        })
    };
    let in_range = |(a, b): (i64, i64)| off >= a && off < b;
    let allowed = if (USER_IP4..USER_IP4 + 4).contains(&off) {
        family(true)
    } else if in_range(USER_IP6) {
        family(false)
    } else if (MSG_SRC_IP4..MSG_SRC_IP4 + 4).contains(&off) {
        attach.is_none_or(|a| a == "sendmsg4")
    } else if in_range(MSG_SRC_IP6) {
        attach.is_none_or(|a| a == "sendmsg6")
    } else {
        true
    };
    if !allowed {
        return None;
    }
    // bpf_ctx_wide_access_ok: an aligned 8-byte access within the array.
    let wide = |(a, b): (i64, i64)| size == 8 && off >= a && off + 8 <= b && off % 8 == 0;
    let address = (USER_IP4..USER_IP4 + 4).contains(&off)
        || in_range(USER_IP6)
        || (MSG_SRC_IP4..MSG_SRC_IP4 + 4).contains(&off)
        || in_range(MSG_SRC_IP6)
        || (USER_PORT..USER_PORT + 4).contains(&off);
    if address {
        if wide(USER_IP6) || wide(MSG_SRC_IP6) {
            return Some(false);
        }
        // Reads may be narrow (1, 2 or 4 bytes), writes are whole u32s.
        let ok = if write { size == 4 } else { size <= 4 };
        return ok.then_some(false);
    }
    if off == SK {
        return (!write && size == 8).then_some(true);
    }
    // The padding before `sk` and the parts of the pointer.
    if off >= MSG_SRC_IP6.1 {
        return None;
    }
    // user_family, family, type, protocol: u32 reads only.
    (!write && size == 4).then_some(false)
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
