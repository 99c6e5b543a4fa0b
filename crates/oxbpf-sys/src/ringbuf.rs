//! Consuming a `BPF_MAP_TYPE_RINGBUF` from user space, as the kernel lays
//! it out (kernel/bpf/ringbuf.c, Documentation/bpf/ringbuf.rst):
//!
//! - page 0 (mapped read-write): the consumer position, which we advance;
//! - page 1 (read-only): the producer position, then the data area of
//!   `max_entries` bytes mapped twice in a row, so a record that wraps is
//!   still contiguous;
//! - each record: a 32-bit length word (bit 31 `BUSY` while the producer
//!   writes it, bit 30 `DISCARD` when discarded), a 32-bit page offset,
//!   then the data, the whole padded to 8 bytes.
//!
//! Positions only grow; offsets into the data are taken modulo its size.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::{Map, SysError};

const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;
const HEADER: u64 = 8;

/// A mapping we own; unmapped on drop.
struct Mapping {
    addr: *mut libc::c_void,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are exactly what a successful mmap returned,
        // and nothing borrows the mapping past its owner's lifetime.
        unsafe {
            libc::munmap(self.addr, self.len);
        }
    }
}

fn map_region(fd: RawFd, len: usize, offset: usize, write: bool) -> Result<Mapping, SysError> {
    let prot = if write {
        libc::PROT_READ | libc::PROT_WRITE
    } else {
        libc::PROT_READ
    };
    // SAFETY: a fresh shared mapping of a ring buffer map fd at an offset
    // the kernel defines; the kernel validates length and protection.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(SysError {
            command: "mmap(ringbuf)",
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            log: None,
        });
    }
    Ok(Mapping { addr, len })
}

/// An epoll instance watching `fd` for input.
fn epoll_for(fd: RawFd) -> Result<std::os::fd::OwnedFd, SysError> {
    use std::os::fd::FromRawFd;
    let err = |what| SysError {
        command: what,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        log: None,
    };
    // SAFETY: epoll_create1 has no preconditions; a non-negative result is
    // a new fd we own.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(err("epoll_create1"));
    }
    // SAFETY: `ep` was just returned to us and is owned by nothing else.
    let ep = unsafe { std::os::fd::OwnedFd::from_raw_fd(ep) };
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: 0,
    };
    // SAFETY: valid epoll and map fds and an event to copy from.
    if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
        return Err(err("epoll_ctl(ringbuf)"));
    }
    Ok(ep)
}

/// A ring buffer's consumer side. It borrows nothing: it keeps its own
/// duplicate of the map's fd, so it may outlive the [`Map`] it came from.
pub struct RingBuf {
    /// Our duplicate of the map's fd: the map stays alive while we are.
    _fd: std::os::fd::OwnedFd,
    /// An epoll instance with the map registered once (waiting costs no
    /// registration per call, as with libbpf's `ring_buffer__poll`).
    epoll: std::os::fd::OwnedFd,
    consumer: Mapping,
    producer: Mapping,
    /// The data area's size (`max_entries`, a power of two).
    size: u64,
    /// Start of the data area (one page into the producer mapping).
    data: *const u8,
}

// SAFETY: the mappings are plain shared memory; every access goes through
// atomics or reads of bytes the producer has committed.
unsafe impl Send for RingBuf {}

impl std::fmt::Debug for RingBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingBuf").field("size", &self.size).finish()
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

impl RingBuf {
    /// Maps the ring buffer `map` (a `BPF_MAP_TYPE_RINGBUF`).
    pub fn new(map: &Map) -> Result<RingBuf, SysError> {
        let size = map.spec.max_entries as u64;
        let page = page_size();
        let fd = map.fd.try_clone().map_err(|e| SysError {
            command: "dup(ringbuf)",
            errno: e.raw_os_error().unwrap_or(0),
            log: None,
        })?;
        let epoll = epoll_for(fd.as_raw_fd())?;
        let consumer = map_region(fd.as_raw_fd(), page, 0, true)?;
        let producer = map_region(fd.as_raw_fd(), page + 2 * size as usize, page, false)?;
        // SAFETY: the producer mapping is page + 2 * size bytes long.
        let data = unsafe { (producer.addr as *const u8).add(page) };
        Ok(RingBuf {
            _fd: fd,
            epoll,
            consumer,
            producer,
            size,
            data,
        })
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page starts with the 8-byte-aligned u64
        // consumer position; the mapping lives as long as `self`.
        unsafe { &*(self.consumer.addr as *const AtomicU64) }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as above, for the producer page (read-only: loads only).
        unsafe { &*(self.producer.addr as *const AtomicU64) }
    }

    fn data(&self) -> *const u8 {
        self.data
    }

    /// Calls `f` with every committed record (discarded ones are skipped)
    /// and frees their space; returns how many it passed on.
    ///
    /// The work is bounded: records committed after the call has caught up
    /// once are left for the next call, so a producer as fast as `f` (a
    /// consumer whose own output is traced) cannot keep it here forever.
    pub fn consume(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        let mut cons = self.consumer_pos().load(Ordering::Acquire);
        let mut prod = self.producer_pos().load(Ordering::Acquire);
        let mut looked_again = false;
        loop {
            if cons >= prod {
                if looked_again {
                    break;
                }
                // Caught up: look again once before returning.
                looked_again = true;
                prod = self.producer_pos().load(Ordering::Acquire);
                if cons >= prod {
                    break;
                }
            }
            let off = (cons & (self.size - 1)) as usize;
            // SAFETY: `off` is inside the data area and 8-byte aligned
            // (positions advance by multiples of 8); the header word is
            // written by the kernel with release semantics.
            let hdr =
                unsafe { &*(self.data().add(off) as *const AtomicU32) }.load(Ordering::Acquire);
            if hdr & BUSY != 0 {
                break;
            }
            let len = (hdr & !(BUSY | DISCARD)) as u64;
            if len > self.size {
                // Cannot happen with a kernel-written ring; stop rather than
                // read past the double mapping.
                break;
            }
            if hdr & DISCARD == 0 {
                // SAFETY: the record (header + len bytes, len ≤ size) lies
                // within the twice-mapped data area starting at `off` <
                // size; committed records are not written again until we
                // advance the consumer position past them.
                let rec = unsafe {
                    std::slice::from_raw_parts(self.data().add(off + HEADER as usize), len as usize)
                };
                f(rec);
                n += 1;
            }
            cons += (len + HEADER + 7) & !7;
            self.consumer_pos().store(cons, Ordering::Release);
        }
        n
    }

    /// Waits until a record may be ready or `timeout` passes (epoll on the
    /// map fd: the kernel wakes consumers on commit unless the producer
    /// asked for no wake-up). Returns whether data is pending.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.pending() > 0 {
            return true;
        }
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: room for one event, valid for the duration of the call.
        unsafe {
            libc::epoll_wait(self.epoll.as_raw_fd(), &mut ev, 1, ms);
        }
        self.pending() > 0
    }

    /// Bytes between the consumer and producer positions.
    pub fn pending(&self) -> u64 {
        let prod = self.producer_pos().load(Ordering::Acquire);
        prod.saturating_sub(self.consumer_pos().load(Ordering::Acquire))
    }
}
