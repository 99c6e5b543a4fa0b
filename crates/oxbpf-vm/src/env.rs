//! The world a program runs in: its maps, the programs it may tail-call,
//! the emulated CPU and task, and where its output (trace_printk lines,
//! ring buffer and perf records) goes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::maps::Map;
use crate::program::Program;

/// Value tag of a map handle (what `lddw rX, map` loads): the low 32 bits
/// index [`Env::maps`]. Helpers taking a map check the tag.
pub const MAP_HANDLE_TAG: u64 = 0xf1f1_0000_0000_0000;

/// Something a program produced for the user, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A `bpf_trace_printk` line (without the trailing newline).
    Printk(String),
    /// A record submitted to a ring buffer (map index, bytes).
    Ringbuf { map: usize, data: Vec<u8> },
    /// A `bpf_perf_event_output` record (map index, cpu, bytes).
    Perf { map: usize, cpu: u32, data: Vec<u8> },
}

/// The task `bpf_get_current_*` report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; 16],
}

impl Default for Task {
    fn default() -> Self {
        let mut comm = [0u8; 16];
        comm[..5].copy_from_slice(b"oxbpf");
        Task {
            pid: std::process::id(),
            tgid: std::process::id(),
            uid: 0,
            gid: 0,
            comm,
        }
    }
}

/// Shared state for runs of one object.
pub struct Env {
    pub maps: Vec<Arc<Map>>,
    /// Programs by index; prog-array values are indices here.
    pub programs: Vec<Arc<Program>>,
    /// CPU the program runs on (per-CPU maps, `get_smp_processor_id`).
    pub cpu: u32,
    pub ncpus: u32,
    pub task: Task,
    pub boot: Instant,
    pub output: Mutex<Vec<Output>>,
    /// When set, `bpf_ktime_get_ns` and friends report this fixed time
    /// (reproducible runs; differential tests between engines).
    pub frozen_ns: Option<u64>,
    rng: AtomicU64,
}

impl Env {
    pub fn new(maps: Vec<Arc<Map>>, programs: Vec<Arc<Program>>) -> Env {
        Env {
            ncpus: maps.first().map(|m| m.ncpus).unwrap_or(1),
            maps,
            programs,
            cpu: 0,
            task: Task::default(),
            boot: Instant::now(),
            output: Mutex::new(Vec::new()),
            frozen_ns: None,
            rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
        }
    }

    /// The map a handle value names, if it is one.
    pub fn map(&self, handle: u64) -> Option<(usize, &Arc<Map>)> {
        if handle & 0xffff_ffff_0000_0000 != MAP_HANDLE_TAG {
            return None;
        }
        let i = (handle & 0xffff_ffff) as usize;
        self.maps.get(i).map(|m| (i, m))
    }

    pub fn emit(&self, o: Output) {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(o);
    }

    /// Takes everything emitted so far.
    pub fn take_output(&self) -> Vec<Output> {
        std::mem::take(&mut *self.output.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// xorshift64*, like the kernel's prandom in spirit (not in sequence).
    pub fn prandom(&self) -> u32 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// Nanoseconds since this environment started (monotonic, like
    /// `ktime_get_ns` counts from boot).
    pub fn ktime_ns(&self) -> u64 {
        if let Some(t) = self.frozen_ns {
            return t;
        }
        self.boot.elapsed().as_nanos() as u64
    }
}
