//! Packet buffers at addresses below 4 GiB.
//!
//! Programs compiled for the kernel read packet pointers from 32-bit
//! context fields (`xdp_md.data`, `__sk_buff.data`); the kernel's verifier
//! rewrites those loads to 64-bit ones. Running unmodified bytecode, oxbpf
//! instead places packets where a 32-bit value is the whole address
//! (`MAP_32BIT`), so the loaded field is a valid pointer.

use std::io;

/// An anonymous mapping below 4 GiB, zero-filled. Dropped buffers go to a
/// small per-thread pool and are reused (zeroed again) by the next buffer
/// of the same size: a packet run then costs no map/unmap system calls.
pub struct LowBuf {
    ptr: *mut u8,
    len: usize,
}

/// A pooled mapping; unmapped when the pool (the thread) goes away.
struct Pooled(LowBuf);

thread_local! {
    static POOL: std::cell::RefCell<Vec<Pooled>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most buffers kept per thread.
const POOL_MAX: usize = 8;

// SAFETY: the buffer is exclusively owned memory; it may move between threads.
unsafe impl Send for LowBuf {}

impl LowBuf {
    /// A zero-filled buffer of `len` bytes.
    pub fn new(len: usize) -> io::Result<LowBuf> {
        let mut b = Self::new_unzeroed(len)?;
        b.as_mut_slice().fill(0);
        Ok(b)
    }

    /// A buffer of `len` bytes whose contents are whatever the pooled
    /// buffer last held (zero when freshly mapped): for callers that
    /// write or clear every byte they use.
    pub fn new_unzeroed(len: usize) -> io::Result<LowBuf> {
        let len = len.max(1);
        let pooled = POOL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                let i = p.iter().position(|b| b.0.len == len)?;
                Some(p.swap_remove(i))
            })
            .ok()
            .flatten();
        if let Some(mut p) = pooled {
            return Ok(LowBuf {
                ptr: std::mem::replace(&mut p.0.ptr, std::ptr::null_mut()),
                len: p.0.len,
            });
        }
        Self::map(len)
    }

    fn map(len: usize) -> io::Result<LowBuf> {
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
        if self.ptr.is_null() {
            return;
        }
        // Hand the mapping to the pool when there is room.
        let me = LowBuf {
            ptr: std::mem::replace(&mut self.ptr, std::ptr::null_mut()),
            len: self.len,
        };
        let rest = POOL
            .try_with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < POOL_MAX {
                    p.push(Pooled(me));
                    None
                } else {
                    Some(me)
                }
            })
            .ok()
            .flatten();
        if let Some(b) = rest {
            b.unmap();
        }
    }
}

impl LowBuf {
    fn unmap(mut self) {
        let ptr = std::mem::replace(&mut self.ptr, std::ptr::null_mut());
        if ptr.is_null() {
            return;
        }
        // SAFETY: `ptr`/`len` describe the mapping created in `map`; the
        // pointer is nulled first, so it is unmapped once.
        unsafe {
            libc::munmap(ptr as *mut libc::c_void, self.len);
        }
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let b = LowBuf {
            ptr: std::mem::replace(&mut self.0.ptr, std::ptr::null_mut()),
            len: self.0.len,
        };
        b.unmap();
    }
}
