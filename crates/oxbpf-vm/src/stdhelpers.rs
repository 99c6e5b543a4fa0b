//! The kernel's helper functions, by their kernel ids and semantics
//! (include/uapi/linux/bpf.h). Errors are returned as negative errno in
//! `r0`, as the kernel does; a helper only fails the run for misuse the
//! verifier would have rejected (a bad map handle, memory it may not touch).

use crate::env::{Env, MAP_HANDLE_TAG, Output};
use crate::helpers::{HelperContext, HelperError, HelperOutcome, Helpers};
use crate::interpreter::{CtxPointers, PacketState};
use crate::maps::{Map, errno::*, map_type as mt};
use crate::memory::RegionKind;

/// Helper ids (`enum bpf_func_id`): the ABI crate's.
pub use oxbpf_abi::helper as id;

const XDP_REDIRECT: u64 = oxbpf_abi::flags::XDP_REDIRECT;
const TC_ACT_REDIRECT: u64 = 7;

fn neg(e: i32) -> u64 {
    (-(e as i64)) as u64
}

type HResult = Result<HelperOutcome, HelperError>;

fn ret(v: u64) -> HResult {
    Ok(HelperOutcome::Return(v))
}

fn env<'e>(c: &HelperContext<'e, '_>) -> Result<&'e Env, HelperError> {
    c.env
        .ok_or_else(|| HelperError::new("this helper needs maps (run an object, not raw bytecode)"))
}

fn map<'e>(
    c: &HelperContext<'e, '_>,
    handle: u64,
) -> Result<(usize, &'e std::sync::Arc<Map>), HelperError> {
    env(c)?
        .map(handle)
        .ok_or_else(|| HelperError::new(format!("{handle:#x} is not a map")))
}

fn read(c: &HelperContext<'_, '_>, addr: u64, len: u64) -> Result<Vec<u8>, HelperError> {
    c.memory
        .read_bytes(addr, len)
        .map_err(|f| HelperError::new(f.to_string()))
}

fn write(c: &HelperContext<'_, '_>, addr: u64, data: &[u8]) -> Result<(), HelperError> {
    c.memory
        .write_bytes(addr, data)
        .map_err(|f| HelperError::new(f.to_string()))
}

/// Reads a NUL-terminated string of at most `max` bytes (without the NUL).
fn read_cstr(c: &HelperContext<'_, '_>, addr: u64, max: u64) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..max {
        let b = c.memory.load(addr.wrapping_add(i), 1).ok()? as u8;
        if b == 0 {
            return Some(out);
        }
        out.push(b);
    }
    Some(out)
}

/// The standard helpers plus the conformance suite's unwind helper (id 5
/// is `ktime_get_ns` in the kernel; the suite's helper is not registered
/// here: use [`Helpers::conformance`] for raw bytecode).
pub fn standard() -> Helpers {
    let mut h = Helpers::new();
    maps(&mut h);
    memory(&mut h);
    task(&mut h);
    control(&mut h);
    output(&mut h);
    packets(&mut h);
    h
}

/// Map access: lookup, update, delete, and the queue/stack/bloom-filter
/// push, pop and peek.
fn maps(h: &mut Helpers) {
    h.register(id::MAP_LOOKUP_ELEM, |c, a| {
        let (_, m) = map(c, a[0])?;
        let key = read(c, a[1], m.spec.key_size as u64)?;
        let e = env(c)?;
        ret(match m.spec.map_type {
            mt::ARRAY_OF_MAPS | mt::HASH_OF_MAPS => m
                .lookup_id(&key)
                .map(|id| MAP_HANDLE_TAG | id as u64)
                .unwrap_or(0),
            _ => m.lookup_addr(&key, e.cpu).unwrap_or(0),
        })
    });
    h.register(id::MAP_UPDATE_ELEM, |c, a| {
        let (_, m) = map(c, a[0])?;
        let key = read(c, a[1], m.spec.key_size as u64)?;
        let value = read(c, a[2], m.spec.value_size as u64)?;
        let cpu = env(c)?.cpu;
        ret(match m.update(&key, &value, a[3], Some(cpu)) {
            Ok(()) => 0,
            Err(e) => neg(e.errno),
        })
    });
    h.register(id::MAP_DELETE_ELEM, |c, a| {
        let (_, m) = map(c, a[0])?;
        let key = read(c, a[1], m.spec.key_size as u64)?;
        ret(match m.delete(&key) {
            Ok(()) => 0,
            Err(e) => neg(e.errno),
        })
    });
    h.register(id::MAP_PUSH_ELEM, |c, a| {
        let (_, m) = map(c, a[0])?;
        let value = read(c, a[1], m.spec.value_size as u64)?;
        ret(match m.push(&value, a[2]) {
            Ok(()) => 0,
            Err(e) => neg(e.errno),
        })
    });
    for (hid, remove) in [(id::MAP_POP_ELEM, true), (id::MAP_PEEK_ELEM, false)] {
        h.register(hid, move |c, a| {
            let (_, m) = map(c, a[0])?;
            if m.spec.map_type == mt::BLOOM_FILTER && !remove {
                let value = read(c, a[1], m.spec.value_size as u64)?;
                return ret(match m.bloom_contains(&value) {
                    Ok(()) => 0,
                    Err(e) => neg(e.errno),
                });
            }
            ret(match m.pop(remove) {
                Ok(v) => {
                    write(c, a[1], &v)?;
                    0
                }
                Err(e) => neg(e.errno),
            })
        });
    }
}

/// Reading memory: `probe_read*` (and their string forms) and `strncmp`.
fn memory(h: &mut Helpers) {
    // probe_read*: copy from any memory the program may see; otherwise
    // zero the destination and return -EFAULT, as the kernel does.
    for hid in [id::PROBE_READ, id::PROBE_READ_USER, id::PROBE_READ_KERNEL] {
        h.register(hid, |c, a| {
            let (dst, size, src) = (a[0], a[1] as u32 as u64, a[2]);
            match c.memory.read_bytes(src, size) {
                Ok(v) => {
                    write(c, dst, &v)?;
                    ret(0)
                }
                Err(_) => {
                    write(c, dst, &vec![0; size as usize])?;
                    ret(neg(EFAULT))
                }
            }
        });
    }
    for hid in [
        id::PROBE_READ_STR,
        id::PROBE_READ_USER_STR,
        id::PROBE_READ_KERNEL_STR,
    ] {
        h.register(hid, |c, a| {
            let (dst, size, src) = (a[0], a[1] as u32 as u64, a[2]);
            if size == 0 {
                return ret(0);
            }
            match read_cstr(c, src, size - 1) {
                Some(mut s) => {
                    s.push(0);
                    write(c, dst, &s)?;
                    ret(s.len() as u64)
                }
                None => {
                    write(c, dst, &vec![0; size as usize])?;
                    ret(neg(EFAULT))
                }
            }
        });
    }
    h.register(id::STRNCMP, |c, a| {
        let (s1, n, s2) = (a[0], a[1] as u32 as u64, a[2]);
        let x = read(c, s1, n)?;
        for (i, &b1) in x.iter().enumerate() {
            let b2 = c
                .memory
                .load(s2 + i as u64, 1)
                .map_err(|f| HelperError::new(f.to_string()))? as u8;
            if b1 != b2 {
                return ret(((b1 as i64) - (b2 as i64)) as u64);
            }
            if b1 == 0 {
                break;
            }
        }
        ret(0)
    });
}

/// Time, randomness, the CPU and the current task.
fn task(h: &mut Helpers) {
    for hid in [
        id::KTIME_GET_NS,
        id::KTIME_GET_BOOT_NS,
        id::KTIME_GET_COARSE_NS,
    ] {
        h.register(hid, |c, _| ret(c.env.map(|e| e.ktime_ns()).unwrap_or(0)));
    }
    // HZ = 250: one jiffy is 4 ms.
    h.register(id::JIFFIES64, |c, _| {
        ret(c.env.map(|e| e.ktime_ns() / 4_000_000).unwrap_or(0))
    });
    h.register(id::GET_PRANDOM_U32, |c, _| {
        ret(c.env.map(|e| e.prandom() as u64).unwrap_or(4))
    });
    h.register(id::GET_SMP_PROCESSOR_ID, |c, _| {
        ret(c.env.map(|e| e.cpu as u64).unwrap_or(0))
    });
    h.register(id::GET_NUMA_NODE_ID, |_, _| ret(0));
    h.register(id::GET_CURRENT_PID_TGID, |c, _| {
        let t = &env(c)?.task;
        ret((t.tgid as u64) << 32 | t.pid as u64)
    });
    h.register(id::GET_CURRENT_UID_GID, |c, _| {
        let t = &env(c)?.task;
        ret((t.gid as u64) << 32 | t.uid as u64)
    });
    h.register(id::GET_CURRENT_COMM, |c, a| {
        let size = a[1] as u32 as usize;
        if size == 0 {
            return ret(neg(EINVAL));
        }
        let comm = env(c)?.task.comm;
        let mut buf = vec![0u8; size];
        let n = comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(16)
            .min(size - 1);
        buf[..n].copy_from_slice(&comm[..n]);
        write(c, a[0], &buf)?;
        ret(0)
    });
}

/// Control flow and locking: tail calls, `bpf_loop`, `for_each_map_elem`,
/// spin locks, and the socket lookups (which find none in user space).
fn control(h: &mut Helpers) {
    h.register(id::TAIL_CALL, |c, a| {
        let (_, m) = map(c, a[1])?;
        if m.spec.map_type != mt::PROG_ARRAY {
            return Err(HelperError::new("tail_call needs a prog array"));
        }
        match m.lookup_id(&(a[2] as u32).to_le_bytes()) {
            Some(p) => Ok(HelperOutcome::TailCall { program: p }),
            None => ret(neg(ENOENT)),
        }
    });
    h.register(id::LOOP, |_, a| {
        if a[3] != 0 {
            return ret(neg(EINVAL));
        }
        if a[0] > 1 << 23 {
            return ret(neg(E2BIG));
        }
        Ok(HelperOutcome::Loop {
            nr: a[0] as u32 as u64,
            callback: a[1],
            ctx: a[2],
        })
    });
    h.register(id::FOR_EACH_MAP_ELEM, |c, a| {
        let (i, _) = map(c, a[0])?;
        if a[3] != 0 {
            return ret(neg(EINVAL));
        }
        Ok(HelperOutcome::ForEach {
            map: i,
            callback: a[1],
            ctx: a[2],
        })
    });
    h.register(id::SPIN_LOCK, |c, a| {
        // Single-threaded runs never contend; across threads, spin.
        for _ in 0..1_000_000 {
            let old = c
                .memory
                .atomic_rmw(a[0], 4, |v| (v == 0).then_some(1))
                .map_err(|f| HelperError::new(f.to_string()))?;
            if old == 0 {
                return ret(0);
            }
            std::hint::spin_loop();
        }
        Err(HelperError::new(
            "bpf_spin_lock: deadlock (lock never released)",
        ))
    });
    // User space has no sockets: every lookup finds none (NULL), as in a
    // network namespace without listeners; so there is never one to
    // release or view.
    for hid in [id::SK_LOOKUP_TCP, id::SK_LOOKUP_UDP, id::SKC_LOOKUP_TCP] {
        h.register(hid, |_, _| ret(0));
    }
    for hid in [id::SK_FULLSOCK, id::TCP_SOCK, id::SK_RELEASE] {
        h.register(hid, |_, a| {
            Err(HelperError::new(format!(
                "{:#x} is not a socket (user space has no sockets)",
                a[0]
            )))
        });
    }
    h.register(id::SPIN_UNLOCK, |c, a| {
        c.memory
            .atomic_rmw(a[0], 4, |_| Some(0))
            .map_err(|f| HelperError::new(f.to_string()))?;
        ret(0)
    });
    h.register(id::SKB_LOAD_BYTES, |c, a| {
        let pkt = packet(c)?;
        let (off, to, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64);
        if off + len > pkt.len() {
            write(c, to, &vec![0; len as usize])?;
            return ret(neg(EFAULT));
        }
        let bytes = read(c, pkt.data + off, len)?;
        write(c, to, &bytes)?;
        ret(0)
    });
    // The packet is always linear here: pulling up to its length succeeds
    // and changes nothing (beyond it the kernel fails with -ENOMEM).
    h.register(id::SKB_PULL_DATA, |c, a| {
        let pkt = packet(c)?;
        let len = a[1] as u32 as u64;
        ret(if len > pkt.len() { neg(ENOMEM) } else { 0 })
    });
    h.register(id::SKB_STORE_BYTES, |c, a| {
        let pkt = packet(c)?;
        let (off, from, len) = (a[1] as u32 as u64, a[2], a[3] as u32 as u64);
        if off + len > pkt.len() {
            return ret(neg(EFAULT));
        }
        let bytes = read(c, from, len)?;
        write(c, pkt.data + off, &bytes)?;
        ret(0)
    });
}

/// Output: `trace_printk`, `snprintf`, ring buffers and perf event output.
fn output(h: &mut Helpers) {
    h.register(id::TRACE_PRINTK, |c, a| {
        let fmt = read_cstr(c, a[0], a[1].min(1024))
            .ok_or_else(|| HelperError::new("bad format string"))?;
        let line = format_printf(c, &fmt, &[a[2], a[3], a[4]]);
        let n = line.len() as u64;
        if let Some(e) = c.env {
            e.emit(Output::Printk(line.trim_end_matches('\n').to_string()));
        }
        ret(n)
    });
    h.register(id::SNPRINTF, |c, a| {
        let (dst, size, fmt, data, data_len) =
            (a[0], a[1] as u32 as u64, a[2], a[3], a[4] as u32 as u64);
        if data_len % 8 != 0 || data_len > 12 * 8 {
            return ret(neg(EINVAL));
        }
        let args: Vec<u64> = read(c, data, data_len)?
            .chunks(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
            .collect();
        let fmt = read_cstr(c, fmt, 1024).ok_or_else(|| HelperError::new("bad format string"))?;
        let s = format_printf(c, &fmt, &args);
        if size > 0 {
            let mut out: Vec<u8> = s
                .as_bytes()
                .iter()
                .copied()
                .take(size as usize - 1)
                .collect();
            out.push(0);
            write(c, dst, &out)?;
        }
        ret(s.len() as u64 + 1)
    });
    h.register(id::RINGBUF_OUTPUT, |c, a| {
        let (_, m) = map(c, a[0])?;
        let data = read(c, a[1], a[2])?;
        match m.ringbuf_reserve(a[2]) {
            Some(addr) => {
                c.memory.open_window(RegionKind::RingbufRecord, addr, a[2]);
                let written = write(c, addr, &data);
                c.memory.close_window(RegionKind::RingbufRecord, addr);
                written?;
                m.ringbuf_commit(addr, true);
                ret(0)
            }
            None => ret(neg(EBUSY)),
        }
    });
    // A reserved record is a region of its own until it is submitted or
    // discarded; after that any access through a kept pointer faults.
    h.register(id::RINGBUF_RESERVE, |c, a| {
        let (_, m) = map(c, a[0])?;
        if a[2] != 0 {
            return ret(0);
        }
        match m.ringbuf_reserve(a[1]) {
            Some(addr) => {
                if !c.memory.open_window(RegionKind::RingbufRecord, addr, a[1]) {
                    return Err(HelperError::new(
                        "the ring buffer is not mapped into this run",
                    ));
                }
                ret(addr)
            }
            None => ret(0),
        }
    });
    for (hid, submit) in [(id::RINGBUF_SUBMIT, true), (id::RINGBUF_DISCARD, false)] {
        h.register(hid, move |c, a| {
            let e = env(c)?;
            let open = c.memory.close_window(RegionKind::RingbufRecord, a[0]);
            if !open || !e.maps.iter().any(|m| m.ringbuf_commit(a[0], submit)) {
                return Err(HelperError::new(format!(
                    "{:#x} is not a reserved ring buffer record (already submitted or discarded, or never reserved)",
                    a[0]
                )));
            }
            ret(0)
        });
    }
    h.register(id::RINGBUF_QUERY, |c, a| {
        let (_, m) = map(c, a[0])?;
        ret(match a[1] {
            0 => m.ringbuf_pending(),
            1 => m.spec.max_entries as u64,
            _ => 0,
        })
    });
    h.register(id::PERF_EVENT_OUTPUT, |c, a| {
        let (_, m) = map(c, a[1])?;
        let e = env(c)?;
        let idx = a[2] & 0xffff_ffff;
        let cpu = if idx == 0xffff_ffff {
            e.cpu
        } else {
            idx as u32
        };
        let data = read(c, a[3], a[4])?;
        ret(match m.perf_output(cpu, data) {
            Ok(()) => 0,
            Err(e) => neg(e.errno),
        })
    });
}

/// Packets: checksums, skb loads and stores, redirects and XDP head, tail
/// and meta adjustment.
fn packets(h: &mut Helpers) {
    h.register(id::CSUM_DIFF, |c, a| {
        let (from, from_size, to, to_size, seed) =
            (a[0], a[1] as u32 as u64, a[2], a[3] as u32 as u64, a[4]);
        if from_size % 4 != 0 || to_size % 4 != 0 || from_size + to_size > 512 {
            return ret(neg(EINVAL));
        }
        let mut acc = seed as u32 as u64;
        for w in read(c, from, from_size)?.chunks(4) {
            acc += !u32::from_le_bytes(w.try_into().unwrap_or([0; 4])) as u64;
        }
        for w in read(c, to, to_size)?.chunks(4) {
            acc += u32::from_le_bytes(w.try_into().unwrap_or([0; 4])) as u64;
        }
        while acc >> 32 != 0 {
            acc = (acc & 0xffff_ffff) + (acc >> 32);
        }
        ret(acc)
    });
    h.register(id::L3_CSUM_REPLACE, |c, a| csum_replace(c, a, false));
    h.register(id::L4_CSUM_REPLACE, |c, a| csum_replace(c, a, true));
    h.register(id::REDIRECT, |c, a| {
        let p = c
            .packet
            .as_mut()
            .ok_or_else(|| HelperError::new("redirect needs a packet"))?;
        if a[1] & !1 != 0 {
            return ret(0);
        }
        p.redirect = Some(a[0] as u32);
        ret(match p.ctx {
            CtxPointers::Xdp(_) => XDP_REDIRECT,
            _ => TC_ACT_REDIRECT,
        })
    });
    h.register(id::REDIRECT_MAP, |c, a| {
        let (_, m) = map(c, a[0])?;
        let key = (a[1] as u32).to_le_bytes();
        let fallback = a[2] & 3;
        let target = m.lookup(&key).ok().filter(|v| v.iter().any(|&b| b != 0));
        let p = c
            .packet
            .as_mut()
            .ok_or_else(|| HelperError::new("redirect_map needs a packet"))?;
        match target {
            Some(v) => {
                p.redirect = Some(u32::from_le_bytes(
                    v.get(..4).and_then(|s| s.try_into().ok()).unwrap_or([0; 4]),
                ));
                ret(XDP_REDIRECT)
            }
            None => ret(fallback),
        }
    });
    h.register(id::XDP_ADJUST_HEAD, |c, a| {
        adjust(c, a[1] as i32 as i64, Adjust::Head)
    });
    h.register(id::XDP_ADJUST_TAIL, |c, a| {
        adjust(c, a[1] as i32 as i64, Adjust::Tail)
    });
    h.register(id::XDP_ADJUST_META, |c, a| {
        adjust(c, a[1] as i32 as i64, Adjust::Meta)
    });
}

fn packet(c: &HelperContext<'_, '_>) -> Result<PacketState, HelperError> {
    c.packet
        .ok_or_else(|| HelperError::new("this helper needs a packet program"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Adjust {
    Head,
    Tail,
    Meta,
}

const ETH_HLEN: u64 = 14;

/// `xdp_adjust_head/tail/meta`: move a packet bound within its buffer, as
/// the kernel allows, and update the context's pointers.
fn adjust(c: &mut HelperContext<'_, '_>, delta: i64, what: Adjust) -> HResult {
    let Some(mut p) = *c.packet else {
        return Err(HelperError::new("xdp_adjust_* needs an XDP packet"));
    };
    let add = |x: u64| x.wrapping_add(delta as u64);
    match what {
        Adjust::Head => {
            let data = add(p.data);
            // The meta area moves with data; it must stay inside the buffer.
            let meta_len = p.data - p.meta;
            if data < p.buf_start + meta_len || data + ETH_HLEN > p.data_end {
                return ret(neg(EINVAL));
            }
            p.data = data;
            p.meta = data - meta_len;
        }
        Adjust::Tail => {
            let end = add(p.data_end);
            if end > p.buf_end || end < p.data + ETH_HLEN {
                return ret(neg(EINVAL));
            }
            // Growing exposes zeroed bytes, as the kernel clears them (the
            // packet region first takes them in).
            if end > p.data_end {
                c.memory
                    .set_region(RegionKind::Packet, p.meta, end - p.meta);
                let zeros = vec![0u8; (end - p.data_end) as usize];
                c.memory
                    .write_bytes_host(p.data_end, &zeros)
                    .map_err(|f| HelperError::new(f.to_string()))?;
            }
            p.data_end = end;
        }
        Adjust::Meta => {
            let meta = add(p.meta);
            if meta < p.buf_start || meta > p.data || p.data - meta > 32 || (p.data - meta) % 4 != 0
            {
                return ret(neg(EINVAL));
            }
            p.meta = meta;
        }
    }
    c.memory
        .set_region(RegionKind::Packet, p.meta, p.data_end - p.meta);
    write_ctx_pointers(c, &p)?;
    *c.packet = Some(p);
    ret(0)
}

/// Updates the packet pointers kept in the context (32-bit fields: packet
/// buffers live below 4 GiB, see `lowmem`).
pub(crate) fn write_ctx_pointers(
    c: &HelperContext<'_, '_>,
    p: &PacketState,
) -> Result<(), HelperError> {
    let w = |addr: u64, v: u64| {
        c.memory
            .write_bytes_host(addr, &(v as u32).to_le_bytes())
            .map_err(|f| HelperError::new(f.to_string()))
    };
    match p.ctx {
        CtxPointers::None => {}
        CtxPointers::Xdp(base) => {
            use oxbpf_abi::ctx::xdp_md as x;
            w(base + x::DATA as u64, p.data)?;
            w(base + x::DATA_END as u64, p.data_end)?;
            w(base + x::DATA_META as u64, p.meta)?;
        }
        CtxPointers::Skb(base) => {
            use oxbpf_abi::ctx::sk_buff as s;
            w(base + s::LEN as u64, p.len())?;
            w(base + s::DATA as u64, p.data)?;
            w(base + s::DATA_END as u64, p.data_end)?;
            w(base + s::DATA_META as u64, p.meta)?;
        }
    }
    Ok(())
}

/// Ones' complement add of 16-bit values (RFC 1071).
fn csum_add16(sum: u32, v: u32) -> u32 {
    let s = sum + v;
    (s & 0xffff) + (s >> 16)
}

fn fold(mut s: u64) -> u16 {
    // Fold 64 -> 16 bits with end-around carry.
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// `l3/l4_csum_replace(skb, offset, from, to, flags)`: incremental update
/// of the 16-bit checksum at `offset` (RFC 1624), `flags & 0xf` being the
/// size of the changed field (2 or 4), or 0 when `to` is a `csum_diff`.
fn csum_replace(c: &mut HelperContext<'_, '_>, a: [u64; 5], l4: bool) -> HResult {
    use oxbpf_abi::flags::{BPF_F_MARK_ENFORCE, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR};
    let p = packet(c)?;
    let (off, from, to, flags) = (a[1] as u32 as u64, a[2], a[3], a[4]);
    let allowed = 0xf
        | if l4 {
            BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE
        } else {
            0
        };
    if flags & !allowed != 0 || off + 2 > p.len() {
        return ret(neg(EINVAL));
    }
    let at = p.data + off;
    // Ones' complement sums do not depend on byte order as long as one
    // order is used throughout, so everything here is in host (memory)
    // order: the field, `from`/`to` as the program loaded them, and
    // `csum_diff` results.
    let old = c
        .memory
        .load(at, 2)
        .map_err(|f| HelperError::new(f.to_string()))? as u16;
    if l4 && flags & BPF_F_MARK_MANGLED_0 != 0 && old == 0 {
        return ret(0);
    }
    // ~HC' = ~HC + ~m + m'
    let mut sum = (!old) as u32;
    match flags & 0xf {
        0 => {
            sum = csum_add16(sum, fold(to as u32 as u64) as u32);
            let f = fold(from as u32 as u64);
            if f != 0 {
                sum = csum_add16(sum, (!f) as u32);
            }
        }
        2 => {
            sum = csum_add16(sum, (!(from as u16)) as u32);
            sum = csum_add16(sum, to as u16 as u32);
        }
        4 => {
            let (f, t) = (from as u32, to as u32);
            for (x, y) in [(f & 0xffff, t & 0xffff), (f >> 16, t >> 16)] {
                sum = csum_add16(sum, (!(x as u16)) as u32);
                sum = csum_add16(sum, y);
            }
        }
        _ => return ret(neg(EINVAL)),
    }
    let mut new = !(fold(sum as u64));
    if l4 && flags & BPF_F_MARK_MANGLED_0 != 0 && new == 0 {
        new = 0xffff;
    }
    c.memory
        .write_bytes(at, &new.to_le_bytes())
        .map_err(|f| HelperError::new(f.to_string()))?;
    ret(0)
}

/// printf as trace_printk and bpf_snprintf implement it: flags, width,
/// precision, length modifiers and d i u x X o c s p %.
pub fn format_printf(c: &HelperContext<'_, '_>, fmt: &[u8], args: &[u64]) -> String {
    let mut out = String::new();
    let mut ai = 0;
    let mut i = 0;
    let mut next_arg = || {
        let v = args.get(ai).copied().unwrap_or(0);
        ai += 1;
        v
    };
    while i < fmt.len() {
        let ch = fmt[i];
        if ch != b'%' {
            out.push(ch as char);
            i += 1;
            continue;
        }
        i += 1;
        let mut left = false;
        let mut zero = false;
        let mut plus = false;
        let mut space = false;
        let mut alt = false;
        while i < fmt.len() {
            match fmt[i] {
                b'-' => left = true,
                b'0' => zero = true,
                b'+' => plus = true,
                b' ' => space = true,
                b'#' => alt = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        while i < fmt.len() && fmt[i].is_ascii_digit() {
            width = width * 10 + (fmt[i] - b'0') as usize;
            i += 1;
        }
        let mut precision: Option<usize> = None;
        if i < fmt.len() && fmt[i] == b'.' {
            i += 1;
            let mut p = 0;
            while i < fmt.len() && fmt[i].is_ascii_digit() {
                p = p * 10 + (fmt[i] - b'0') as usize;
                i += 1;
            }
            precision = Some(p);
        }
        let mut bits = 32;
        while i < fmt.len() && matches!(fmt[i], b'l' | b'h' | b'z') {
            bits = match fmt[i] {
                b'l' | b'z' => 64,
                _ => bits.min(if bits == 16 { 8 } else { 16 }),
            };
            i += 1;
        }
        let Some(&conv) = fmt.get(i) else { break };
        i += 1;
        let body = match conv {
            b'%' => {
                out.push('%');
                continue;
            }
            b'd' | b'i' => {
                let v = next_arg();
                let v = match bits {
                    64 => v as i64,
                    16 => v as i16 as i64,
                    8 => v as i8 as i64,
                    _ => v as i32 as i64,
                };
                let sign = if v < 0 {
                    "-"
                } else if plus {
                    "+"
                } else if space {
                    " "
                } else {
                    ""
                };
                format!("{sign}{}", v.unsigned_abs())
            }
            b'u' | b'x' | b'X' | b'o' => {
                let v = next_arg();
                let v = match bits {
                    64 => v,
                    16 => v as u16 as u64,
                    8 => v as u8 as u64,
                    _ => v as u32 as u64,
                };
                match conv {
                    b'u' => v.to_string(),
                    b'x' => format!("{}{v:x}", if alt && v != 0 { "0x" } else { "" }),
                    b'X' => format!("{}{v:X}", if alt && v != 0 { "0X" } else { "" }),
                    _ => format!("{}{v:o}", if alt { "0" } else { "" }),
                }
            }
            b'p' => {
                // %pK, %px, %pI4 ...: print the pointer value in hex.
                while i < fmt.len() && fmt[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                format!("0x{:x}", next_arg())
            }
            b'c' => ((next_arg() as u8) as char).to_string(),
            b's' => {
                let addr = next_arg();
                let max = precision.unwrap_or(1024) as u64;
                match read_cstr(c, addr, max) {
                    Some(s) => String::from_utf8_lossy(&s).into_owned(),
                    None => "(fault)".into(),
                }
            }
            other => {
                out.push('%');
                out.push(other as char);
                continue;
            }
        };
        let pad = width.saturating_sub(body.chars().count());
        if left {
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', pad));
        } else if zero && conv != b's' {
            let (sign, digits) = body.split_at(if body.starts_with(['-', '+', ' ']) {
                1
            } else {
                0
            });
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', pad));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&body);
        }
    }
    out
}
