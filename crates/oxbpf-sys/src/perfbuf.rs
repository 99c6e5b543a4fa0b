//! Consuming a `BPF_MAP_TYPE_PERF_EVENT_ARRAY` (what `bpf_perf_event_output`
//! writes): one `bpf-output` software perf event per CPU, each with its own
//! mmap'ed ring, stored in the map at its CPU's index — as libbpf's
//! `perf_buffer__new` does.
//!
//! Ring layout (include/uapi/linux/perf_event.h): a metadata page
//! (`struct perf_event_mmap_page`: `data_head` at byte 1024, which the
//! kernel advances, `data_tail` at 1032, which we advance, `data_offset`
//! and `data_size` at 1040 and 1048), then `data_size` bytes of records.
//! Each record starts with `struct perf_event_header` (u32 type, u16 misc,
//! u16 size); `PERF_RECORD_SAMPLE` (9) carries `u32 size` and the raw
//! bytes, `PERF_RECORD_LOST` (2) `u64 id, u64 lost`. Records may wrap.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Map, SysError};

const RECORD_LOST: u32 = 2;
const RECORD_SAMPLE: u32 = 9;
const HEAD: usize = 1024;
const TAIL: usize = 1032;
const DATA_OFFSET: usize = 1040;
const DATA_SIZE: usize = 1048;

/// One CPU's ring.
struct Ring {
    cpu: u32,
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are what mmap returned for this ring.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len);
        }
    }
}

/// A perf buffer: a ring per CPU, read in CPU order.
pub struct PerfBuffer {
    rings: Vec<Ring>,
    /// Samples the kernel reported lost (rings full), since creation.
    pub lost: u64,
}

// SAFETY: the rings are shared memory accessed through atomics and
// copies; the fds are owned.
unsafe impl Send for PerfBuffer {}

impl std::fmt::Debug for PerfBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfBuffer")
            .field("cpus", &self.rings.len())
            .field("lost", &self.lost)
            .finish()
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

impl PerfBuffer {
    /// Opens a `bpf-output` event on every CPU in `cpus` with a ring of
    /// `pages` data pages (a power of two), maps it, and stores it in the
    /// perf event array `map` at the CPU's index.
    pub fn new(map: &Map, cpus: &[u32], pages: usize) -> Result<PerfBuffer, SysError> {
        let pages = pages.max(1).next_power_of_two();
        let page = page_size();
        let mut rings = Vec::new();
        for &cpu in cpus {
            if cpu >= map.spec.max_entries {
                continue;
            }
            let event = crate::perf::PerfEvent::bpf_output(cpu as i32)?;
            let len = page * (pages + 1);
            // SAFETY: a fresh shared read-write mapping of a perf event fd
            // (metadata page + data pages), as perf_event_open(2) defines.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    event.fd.as_raw_fd(),
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return Err(SysError {
                    command: "mmap(perf buffer)",
                    errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                    log: None,
                });
            }
            let fd = event.fd;
            let ring = Ring {
                cpu,
                fd,
                base: base as *mut u8,
                len,
            };
            map.update(
                &cpu.to_le_bytes(),
                &(ring.fd.as_raw_fd() as u32).to_le_bytes(),
                0,
            )?;
            // SAFETY: a perf event fd we own; ENABLE takes no argument.
            unsafe {
                libc::ioctl(ring.fd.as_raw_fd(), 0x2400, 0);
            }
            rings.push(ring);
        }
        Ok(PerfBuffer { rings, lost: 0 })
    }

    /// Waits up to `timeout` for any ring to have data.
    pub fn wait(&self, timeout: Duration) {
        let mut fds: Vec<libc::pollfd> = self
            .rings
            .iter()
            .map(|r| libc::pollfd {
                fd: r.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: a valid array of pollfds for the duration of the call.
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
        }
    }

    /// Calls `f(cpu, data)` for every sample waiting, CPU by CPU, counts
    /// lost-sample records into [`PerfBuffer::lost`], and frees the space;
    /// returns the number of samples.
    pub fn consume(&mut self, mut f: impl FnMut(u32, &[u8])) -> usize {
        let mut n = 0;
        let mut lost = 0;
        for r in &self.rings {
            // SAFETY: the metadata page is the first page of the mapping;
            // the fields are naturally aligned u64s.
            let meta = |off: usize| unsafe { &*(r.base.add(off) as *const AtomicU64) };
            let data_off = meta(DATA_OFFSET).load(Ordering::Relaxed) as usize;
            let size = meta(DATA_SIZE).load(Ordering::Relaxed) as usize;
            if size == 0 || data_off + size > r.len {
                continue;
            }
            let head = meta(HEAD).load(Ordering::Acquire);
            let mut tail = meta(TAIL).load(Ordering::Relaxed);
            // Copies `len` bytes at ring position `pos`, across the wrap.
            let read = |pos: u64, len: usize| -> Vec<u8> {
                let mut out = vec![0u8; len];
                for (i, b) in out.iter_mut().enumerate() {
                    let at = data_off + ((pos as usize + i) % size);
                    // SAFETY: `at` lies in the data area of the mapping.
                    *b = unsafe { *r.base.add(at) };
                }
                out
            };
            while tail < head {
                let hdr = read(tail, 8);
                let kind = u32::from_le_bytes(hdr[0..4].try_into().unwrap_or([0; 4]));
                let rec_size = u16::from_le_bytes(hdr[6..8].try_into().unwrap_or([0; 2])) as u64;
                if rec_size < 8 || tail + rec_size > head {
                    break;
                }
                match kind {
                    RECORD_SAMPLE => {
                        let body = read(tail + 8, rec_size as usize - 8);
                        let len = u32::from_le_bytes(
                            body.get(0..4)
                                .and_then(|b| b.try_into().ok())
                                .unwrap_or([0; 4]),
                        ) as usize;
                        if let Some(data) = body.get(4..4 + len) {
                            f(r.cpu, data);
                            n += 1;
                        }
                    }
                    RECORD_LOST => {
                        let body = read(tail + 8, 16);
                        lost += u64::from_le_bytes(body[8..16].try_into().unwrap_or([0; 8]));
                    }
                    _ => {}
                }
                tail += rec_size;
            }
            meta(TAIL).store(tail, Ordering::Release);
        }
        self.lost += lost;
        n
    }
}
