//! Memory regions a program may touch, and checked access to them.
//!
//! Programs see real host addresses, as in the kernel: `r10` is the address
//! of the top of a real stack buffer and `r1` the address of the input.
//! Every access is checked against the regions registered here before the
//! host memory is touched. This module is one of the few places with
//! `unsafe`: the raw reads and writes after a successful check.
//!
//! Invariant (greppable: REGION-LIVE): every [`Region`] in a [`MemoryMap<'a>`]
//! was created from a Rust borrow that lives for `'a`, so its bytes stay
//! valid and exclusively ours (for writable regions) while the map exists.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What a region holds; used in fault messages and by helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    Stack,
    /// Raw input memory (`r1` in the raw program type).
    Input,
    Context,
    Packet,
    MapValue,
    ReadOnly,
    /// A reserved ring buffer record (between `bpf_ringbuf_reserve` and
    /// its submit or discard).
    RingbufRecord,
    Other,
}

impl fmt::Display for RegionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegionKind::Stack => "stack",
            RegionKind::Input => "input memory",
            RegionKind::Context => "context",
            RegionKind::Packet => "packet",
            RegionKind::MapValue => "map value",
            RegionKind::ReadOnly => "read-only data",
            RegionKind::RingbufRecord => "ring buffer record",
            RegionKind::Other => "host memory",
        })
    }
}

/// One contiguous range of host memory the program may access.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub writable: bool,
    pub kind: RegionKind,
    /// Memory the program may not write but the host may (a context given
    /// mutably but exposed read-only).
    pub host_writable: bool,
}

impl Region {
    #[inline(always)]
    fn contains(&self, addr: u64, size: u64) -> bool {
        let rel = addr.wrapping_sub(self.start);
        rel < self.len && size <= self.len - rel
    }
}

/// Why an access was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessFault {
    pub addr: u64,
    pub size: u64,
    pub write: bool,
    /// The region the address falls in or is nearest to, with the distance.
    pub nearest: Option<(RegionKind, u64, u64)>,
}

impl fmt::Display for AccessFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.write { "write" } else { "read" };
        write!(f, "{verb} of {} bytes at {:#x}", self.size, self.addr)?;
        match self.nearest {
            Some((RegionKind::RingbufRecord, start, len))
                if self.addr >= start && self.addr < start + len =>
            {
                write!(
                    f,
                    " is in ring buffer memory [{start:#x}, {:#x}) outside every reserved record (a submitted or discarded record may not be accessed)",
                    start + len
                )
            }
            Some((kind, start, len)) => {
                let end = start + len;
                if self.addr >= start && self.addr < end {
                    if self.write && self.addr + self.size <= end {
                        write!(f, " into read-only {kind} [{start:#x}, {end:#x})")
                    } else {
                        write!(
                            f,
                            " runs {} bytes past the end of {kind} [{start:#x}, {end:#x})",
                            (self.addr + self.size).saturating_sub(end)
                        )
                    }
                } else if self.addr < start {
                    write!(
                        f,
                        " is {} bytes before {kind} [{start:#x}, {end:#x})",
                        start - self.addr
                    )
                } else {
                    write!(
                        f,
                        " is {} bytes after the end of {kind} [{start:#x}, {end:#x})",
                        self.addr - end
                    )
                }
            }
            None => write!(f, " is outside every region"),
        }
    }
}

/// The set of regions for one execution.
pub struct MemoryMap<'a> {
    /// Slot 0 is reserved for the stack (checked first), which an engine
    /// adds when the run starts; until then it is empty and hidden. Inline
    /// for a raw run (stack and input, and one more): no allocation, and a
    /// small value to move; object runs with more regions spill to the heap.
    regions: smallvec::SmallVec<[Region; 3]>,
    has_stack: bool,
    /// Memory the program may not touch as a whole, parts of which become
    /// regions for a while: ring buffers, whose reserved records are
    /// accessible only until they are submitted or discarded.
    containers: Vec<(u64, u64)>,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl Default for MemoryMap<'_> {
    fn default() -> Self {
        Self::new()
    }
}

/// The stack slot before a stack is added: contains no address.
const NO_STACK: Region = Region {
    start: 0,
    len: 0,
    writable: false,
    kind: RegionKind::Stack,
    host_writable: false,
};

impl<'a> MemoryMap<'a> {
    pub fn new() -> Self {
        let mut regions = smallvec::SmallVec::new();
        regions.push(NO_STACK);
        MemoryMap {
            regions,
            has_stack: false,
            containers: Vec::new(),
            _borrow: PhantomData,
        }
    }

    /// Adds a writable region; returns its start address.
    pub fn add_mut(&mut self, kind: RegionKind, mem: &'a mut [u8]) -> u64 {
        let start = mem.as_mut_ptr() as u64;
        self.regions.push(Region {
            start,
            len: mem.len() as u64,
            writable: true,
            kind,
            host_writable: true,
        });
        start
    }

    /// Adds memory the program may only read but helpers may update (a
    /// context whose packet pointers move); returns its start address.
    pub fn add_mut_readonly(&mut self, kind: RegionKind, mem: &'a mut [u8]) -> u64 {
        let start = mem.as_mut_ptr() as u64;
        self.regions.push(Region {
            start,
            len: mem.len() as u64,
            writable: false,
            kind,
            host_writable: true,
        });
        start
    }

    /// Adds a read-only region; returns its start address.
    pub fn add_ro(&mut self, kind: RegionKind, mem: &'a [u8]) -> u64 {
        let start = mem.as_ptr() as u64;
        self.regions.push(Region {
            start,
            len: mem.len() as u64,
            writable: false,
            kind,
            host_writable: false,
        });
        start
    }

    /// Adds an [`Arena`](crate::arena::Arena) (map values, ring buffers);
    /// the borrow keeps it alive for the run. Returns its start address.
    pub fn add_arena(
        &mut self,
        kind: RegionKind,
        arena: &'a crate::arena::Arena,
        writable: bool,
    ) -> u64 {
        let start = arena.addr(0);
        if !arena.is_empty() {
            self.regions.push(Region {
                start,
                len: arena.len() as u64,
                writable,
                kind,
                host_writable: true,
            });
        }
        start
    }

    /// Registers an arena (a ring buffer's data) that is not accessible
    /// itself but whose parts [`MemoryMap::open_window`] may expose; the
    /// borrow keeps it alive for the run (REGION-LIVE).
    pub fn add_container(&mut self, arena: &'a crate::arena::Arena) {
        if !arena.is_empty() {
            self.containers.push((arena.addr(0), arena.len() as u64));
        }
    }

    /// Makes `[start, start + len)` of a container a writable region of
    /// `kind` (a reserved ring buffer record). False if the range is not
    /// inside a container.
    pub fn open_window(&mut self, kind: RegionKind, start: u64, len: u64) -> bool {
        let inside = self.containers.iter().any(|&(s, l)| {
            let rel = start.wrapping_sub(s);
            rel < l && len <= l - rel
        });
        if inside && len > 0 {
            self.regions.push(Region {
                start,
                len,
                writable: true,
                kind,
                host_writable: true,
            });
        }
        inside
    }

    /// Removes the window of `kind` that starts at `start` (a record being
    /// submitted or discarded): later accesses fault. False if none.
    pub fn close_window(&mut self, kind: RegionKind, start: u64) -> bool {
        let skip = usize::from(!self.has_stack);
        match self
            .regions
            .iter()
            .skip(skip)
            .position(|r| r.kind == kind && r.start == start)
        {
            Some(i) => {
                self.regions.remove(i + skip);
                true
            }
            None => false,
        }
    }

    /// Adds the stack buffer as the first region (checked first), exposing
    /// only its last `visible` bytes (the current frame); returns the
    /// address of its end.
    pub(crate) fn add_stack_front(&mut self, mem: &'a mut [u8], visible: usize) -> u64 {
        let start = mem.as_mut_ptr() as u64;
        let len = mem.len() as u64;
        let visible = (visible as u64).min(len);
        // Into the reserved slot: no region moves (a raw run's whole map
        // is built in a few stores).
        self.regions[0] = Region {
            start: start + len - visible,
            len: visible,
            writable: true,
            kind: RegionKind::Stack,
            host_writable: true,
        };
        self.has_stack = true;
        start + len
    }

    /// Writes bytes on the host's behalf (helpers updating a read-only
    /// context, for instance): the range must lie in a region, writable or not.
    pub fn write_bytes_host(&self, addr: u64, data: &[u8]) -> Result<(), AccessFault> {
        if data.is_empty() {
            return Ok(());
        }
        // Read-only regions created by `add_ro` come from shared borrows and
        // must never be written; only arenas and `add_mut` memory may be.
        let len = data.len() as u64;
        let ok = self
            .regions
            .iter()
            .any(|r| r.contains(addr, len) && (r.writable || r.host_writable));
        if !ok {
            return Err(self.fault(addr, len, true));
        }
        // SAFETY: the range is inside a region created from exclusively
        // borrowed (`add_mut`) or UnsafeCell (arena) memory, live for the
        // run (REGION-LIVE), so writing it is sound.
        unsafe { std::ptr::copy(data.as_ptr(), addr as *mut u8, data.len()) };
        Ok(())
    }

    /// Sets the bounds of the first region of `kind` (the packet, when a
    /// helper moves its head or tail). The caller keeps the new range inside
    /// the memory the region was created from.
    pub(crate) fn set_region(&mut self, kind: RegionKind, start: u64, len: u64) {
        let skip = usize::from(!self.has_stack);
        if let Some(r) = self.regions[skip..].iter_mut().find(|r| r.kind == kind) {
            r.start = start;
            r.len = len;
        }
    }

    /// Moves the start of the first region (the stack, in the interpreter)
    /// down by `grow` bytes, or up when `grow` is negative, keeping its end.
    /// The new range must stay inside the memory it was created from; the
    /// interpreter only moves it within its own stack buffer.
    pub(crate) fn resize_front(&mut self, grow: i64) {
        if let Some(r) = self.regions.first_mut() {
            r.start = r.start.wrapping_sub(grow as u64);
            r.len = r.len.wrapping_add(grow as u64);
        }
    }

    /// Sets the bounds of the first region (the stack, in the JIT, whose
    /// generated code tracks the current frames itself). The range must stay
    /// inside the memory the region was created from.
    pub(crate) fn set_front(&mut self, start: u64, len: u64) {
        if let Some(r) = self.regions.first_mut() {
            r.start = start;
            r.len = len;
        }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions[usize::from(!self.has_stack)..]
    }

    /// Finds the region that holds `[addr, addr + size)` with the needed access.
    #[inline(always)]
    pub fn check(&self, addr: u64, size: u64, write: bool) -> Result<(), AccessFault> {
        for r in &self.regions {
            if r.contains(addr, size) && (r.writable || !write) {
                return Ok(());
            }
        }
        Err(self.fault(addr, size, write))
    }

    #[cold]
    fn fault(&self, addr: u64, size: u64, write: bool) -> AccessFault {
        let distance = |r: &Region| {
            if addr < r.start {
                r.start - addr
            } else {
                addr.saturating_sub(r.start + r.len)
            }
        };
        // Inside a ring buffer but in no reserved record: name the ring
        // buffer (a record that was submitted or discarded is gone).
        let in_ring = self.containers.iter().find(|&&(s, l)| {
            let rel = addr.wrapping_sub(s);
            rel < l
        });
        let nearest = match in_ring {
            Some(&(s, l)) => Some((RegionKind::RingbufRecord, s, l)),
            None => self
                .regions()
                .iter()
                .min_by_key(|r| distance(r))
                .map(|r| (r.kind, r.start, r.len)),
        };
        AccessFault {
            addr,
            size,
            write,
            nearest,
        }
    }

    /// Reads `size` (1, 2, 4 or 8) bytes, zero-extended.
    #[inline(always)]
    pub fn load(&self, addr: u64, size: u64) -> Result<u64, AccessFault> {
        self.check(addr, size, false)?;
        // SAFETY: `check` proved [addr, addr+size) lies inside a region, and
        // REGION-LIVE guarantees that memory is valid for reads. Unaligned
        // reads are allowed by `read_unaligned`.
        unsafe {
            Ok(match size {
                1 => (addr as *const u8).read() as u64,
                2 => (addr as *const u16).read_unaligned() as u64,
                4 => (addr as *const u32).read_unaligned() as u64,
                _ => (addr as *const u64).read_unaligned(),
            })
        }
    }

    /// Writes the low `size` (1, 2, 4 or 8) bytes of `value`.
    #[inline(always)]
    pub fn store(&self, addr: u64, size: u64, value: u64) -> Result<(), AccessFault> {
        self.check(addr, size, true)?;
        // SAFETY: `check` proved [addr, addr+size) lies inside a writable
        // region, which REGION-LIVE guarantees is valid, exclusively borrowed
        // memory. Unaligned writes are allowed by `write_unaligned`.
        unsafe {
            match size {
                1 => (addr as *mut u8).write(value as u8),
                2 => (addr as *mut u16).write_unaligned(value as u16),
                4 => (addr as *mut u32).write_unaligned(value as u32),
                _ => (addr as *mut u64).write_unaligned(value),
            }
        }
        Ok(())
    }

    /// Atomic read-modify-write of 4 or 8 bytes. `f` maps the old value to
    /// the new one (or `None` to leave memory unchanged); returns the old value.
    /// Aligned accesses use real atomic instructions, so map memory shared
    /// between threads stays consistent; a misaligned access (which the
    /// verifier would reject) falls back to a plain read-modify-write.
    pub fn atomic_rmw(
        &self,
        addr: u64,
        size: u64,
        f: impl Fn(u64) -> Option<u64>,
    ) -> Result<u64, AccessFault> {
        self.check(addr, size, true)?;
        let old = if size == 8 && addr.is_multiple_of(8) {
            // SAFETY: checked, writable, live (REGION-LIVE) and 8-byte aligned.
            let a = unsafe { AtomicU64::from_ptr(addr as *mut u64) };
            match a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, &f) {
                Ok(v) | Err(v) => v,
            }
        } else if size == 4 && addr.is_multiple_of(4) {
            // SAFETY: checked, writable, live (REGION-LIVE) and 4-byte aligned.
            let a = unsafe { AtomicU32::from_ptr(addr as *mut u32) };
            match a.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                f(v as u64).map(|n| n as u32)
            }) {
                Ok(v) | Err(v) => v as u64,
            }
        } else {
            let old = self.load(addr, size)?;
            if let Some(new) = f(old) {
                self.store(addr, size, new)?;
            }
            old
        };
        Ok(old)
    }

    /// Copies bytes out of program-visible memory (for helpers).
    pub fn read_bytes(&self, addr: u64, len: u64) -> Result<Vec<u8>, AccessFault> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.check(addr, len, false)?;
        // SAFETY: checked readable and live (REGION-LIVE) for `len` bytes.
        let s = unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) };
        Ok(s.to_vec())
    }

    /// Copies bytes into program-visible writable memory (for helpers).
    pub fn write_bytes(&self, addr: u64, data: &[u8]) -> Result<(), AccessFault> {
        if data.is_empty() {
            return Ok(());
        }
        self.check(addr, data.len() as u64, true)?;
        // SAFETY: checked writable and live (REGION-LIVE) for `data.len()`
        // bytes; `data` is a separate Rust borrow so the ranges cannot overlap
        // a region we hand out mutably elsewhere during this call.
        unsafe { std::ptr::copy(data.as_ptr(), addr as *mut u8, data.len()) };
        Ok(())
    }
}

thread_local! {
    /// The thread's spare stack, and the offset below which it is zero
    /// (apart: a pair would be read back as one 16-byte value right after
    /// its halves were written, stalling store forwarding).
    static SPARE_STACK: std::cell::Cell<Option<Box<[u8]>>> = const { std::cell::Cell::new(None) };
    static SPARE_DIRTY_FROM: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A stack buffer for one run, reused by the next run on the same thread:
/// no allocation per run, and back-to-back runs (interpreter and JIT in a
/// differential test, say) see the same stack addresses. Every run starts
/// with a zeroed stack; an engine that knows which part a run could have
/// written (the `dirty_from` cell given to [`PooledStack::take`]) saves
/// zeroing the rest. One spare per thread: a nested run (a run inside a
/// helper) allocates its own.
pub(crate) struct PooledStack<'d> {
    buf: Box<[u8]>,
    /// Offset below which the run left the buffer all zeros; a cell apart
    /// from the buffer, so the engine can set it while the buffer is lent
    /// to the run's memory map. Starts at 0 (everything may be written).
    dirty_from: &'d std::cell::Cell<usize>,
}

impl<'d> PooledStack<'d> {
    pub(crate) fn take(len: usize, dirty_from: &'d std::cell::Cell<usize>) -> PooledStack<'d> {
        dirty_from.set(0);
        match SPARE_STACK.with(|s| s.take()) {
            Some(mut buf) if buf.len() == len => {
                let clean = SPARE_DIRTY_FROM.with(|d| d.get());
                if clean < len {
                    buf[clean..].fill(0);
                }
                PooledStack { buf, dirty_from }
            }
            _ => PooledStack {
                buf: vec![0; len].into_boxed_slice(),
                dirty_from,
            },
        }
    }

    pub(crate) fn bytes(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for PooledStack<'_> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        SPARE_DIRTY_FROM.with(|d| d.set(self.dirty_from.get()));
        // `try_with`: nothing to keep while the thread is exiting.
        let _ = SPARE_STACK.try_with(|s| s.set(Some(buf)));
    }
}
