//! Fixed, shared memory for map values and ring buffers.
//!
//! A program holds raw pointers into map values (what `map_lookup_elem`
//! returns) and writes through them, as in the kernel; the host reads and
//! writes the same bytes through the map API. An [`Arena`] is one
//! allocation that never moves or shrinks while it exists, so such
//! pointers stay valid; every byte sits in an `UnsafeCell`, which makes
//! writes through shared references legal.
//!
//! Concurrency: as in the kernel, two programs (or a program and the host)
//! writing the same value at the same time race; use the atomic
//! instructions or `bpf_spin_lock` for shared counters. The map's own
//! bookkeeping (which slot holds which key) is protected by locks.

use std::cell::UnsafeCell;

/// 8-byte aligned, zero-initialised, fixed-size shared memory.
pub struct Arena {
    words: Box<[UnsafeCell<u64>]>,
    len: usize,
}

// SAFETY: all access to the bytes goes through raw pointers or the copy
// methods below; the memory itself is plain bytes with no invariants, and
// the data-race caveat above is the documented (kernel-equivalent) contract.
unsafe impl Sync for Arena {}
// SAFETY: the arena owns its allocation; moving it between threads is fine.
unsafe impl Send for Arena {}

impl Arena {
    /// An arena of `len` bytes (rounded up to a multiple of 8 internally).
    pub fn new(len: usize) -> Arena {
        let words = len.div_ceil(8).max(1);
        Arena {
            words: (0..words).map(|_| UnsafeCell::new(0)).collect(),
            len,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of byte `off` (programs see real addresses).
    pub fn addr(&self, off: usize) -> u64 {
        self.base() as u64 + off as u64
    }

    fn base(&self) -> *mut u8 {
        // UnsafeCell<u64> has the layout of u64; the slice is contiguous.
        UnsafeCell::raw_get(self.words.as_ptr()) as *mut u8
    }

    /// Copies `out.len()` bytes starting at `off`.
    pub fn read(&self, off: usize, out: &mut [u8]) {
        assert!(off + out.len() <= self.len, "arena read out of bounds");
        // SAFETY: the range is inside the allocation (checked above), and
        // UnsafeCell permits reading through a shared reference.
        unsafe { std::ptr::copy(self.base().add(off), out.as_mut_ptr(), out.len()) }
    }

    /// Copies `data` to `off`.
    pub fn write(&self, off: usize, data: &[u8]) {
        assert!(off + data.len() <= self.len, "arena write out of bounds");
        // SAFETY: in bounds (checked above); UnsafeCell permits the write
        // through a shared reference; `data` is a separate borrow.
        unsafe { std::ptr::copy(data.as_ptr(), self.base().add(off), data.len()) }
    }

    /// Fills `len` bytes at `off` with zero.
    pub fn zero(&self, off: usize, len: usize) {
        assert!(off + len <= self.len, "arena zero out of bounds");
        // SAFETY: in bounds (checked above); UnsafeCell permits the write.
        unsafe { std::ptr::write_bytes(self.base().add(off), 0, len) }
    }

    pub fn to_vec(&self, off: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.read(off, &mut v);
        v
    }
}
