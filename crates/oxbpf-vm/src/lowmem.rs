//! Packet buffers at addresses below 4 GiB.
//!
//! Programs compiled for the kernel read packet pointers from 32-bit
//! context fields (`xdp_md.data`, `__sk_buff.data`); the kernel's verifier
//! rewrites those loads to 64-bit ones. Running unmodified bytecode, oxbpf
//! instead places packets where a 32-bit value is the whole address
//! (`MAP_32BIT`), so the loaded field is a valid pointer.

use std::io;

/// An anonymous mapping below 4 GiB, zero-filled, freed on drop.
pub struct LowBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is exclusively owned memory; it may move between threads.
unsafe impl Send for LowBuf {}

impl LowBuf {
    pub fn new(len: usize) -> io::Result<LowBuf> {
        let len = len.max(1);
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(LowBuf {
            ptr: ptr as *mut u8,
            len,
        })
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live mapping of `len` bytes owned by self, and
        // the &mut self borrow makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn addr(&self) -> u64 {
        self.ptr as u64
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for LowBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping created in `new`, unmapped once.
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}
