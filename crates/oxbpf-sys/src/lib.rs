//! # oxbpf-sys: the kernel as an engine
//!
//! The only oxbpf crate that makes `bpf(2)` calls. Every kernel object is an
//! [`OwnedFd`] inside a Rust value, so it is closed when the value drops, on
//! every path, error paths included. Errors name the command and errno and
//! keep the verifier log when there is one.
//!
//! Attribute structs follow `union bpf_attr` in include/uapi/linux/bpf.h;
//! each is passed with its own size, and the kernel treats the fields past
//! it as zero. Invariant (greppable: NO-IMPLICIT-PADDING): no attribute
//! struct has implicit padding; the kernel rejects non-zero bytes after
//! the last field it knows, and Rust leaves padding uninitialised.

use oxbpf_abi::{cmd, map_type};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

pub mod info;
pub mod kconfig;
pub mod net;
pub mod object;
pub mod perf;
pub mod perfbuf;
pub mod ringbuf;
pub mod vmlinux;

/// A failed `bpf()` call.
#[derive(Debug, thiserror::Error)]
#[error("bpf({command}): {} (errno {errno}){}", std::io::Error::from_raw_os_error(*errno), log.as_ref().map(|l| format!("\n{l}")).unwrap_or_default())]
pub struct SysError {
    pub command: &'static str,
    pub errno: i32,
    /// The verifier log, for program loads.
    pub log: Option<String>,
}

type R<T> = Result<T, SysError>;

fn sys<T>(cmd: u32, name: &'static str, attr: &mut T) -> R<i64> {
    // SAFETY: `attr` is a live, properly sized repr(C) attribute struct for
    // this command; the kernel reads (and for some commands writes) at most
    // size_of::<T>() bytes of it. Pointers inside it refer to buffers that
    // outlive the call (callers keep them borrowed).
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_long,
        )
    };
    if r < 0 {
        Err(SysError {
            command: name,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            log: None,
        })
    } else {
        Ok(r as i64)
    }
}

fn fd_of(r: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// Whether `bpf()` is usable here (root or CAP_BPF, kernel support).
pub fn available() -> Result<(), SysError> {
    Map::create(&MapSpec {
        map_type: oxbpf_abi::map_type::ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        ..MapSpec::default()
    })
    .map(|_| ())
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
}

/// What to create: the object loader's map spec.
pub use oxbpf_obj::MapSpec;

fn obj_name(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (i, b) in name
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.')
        .take(15)
        .enumerate()
    {
        n[i] = b;
    }
    n
}

/// A kernel map; closed on drop.
#[derive(Debug)]
pub struct Map {
    pub fd: OwnedFd,
    pub spec: MapSpec,
}

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

impl Map {
    pub fn create(spec: &MapSpec) -> R<Map> {
        Self::create_with_inner(spec, None)
    }

    /// Creates a map; maps of maps take a template inner map.
    pub fn create_with_inner(spec: &MapSpec, inner: Option<&Map>) -> R<Map> {
        Self::create_with(spec, inner, None)
    }

    /// Creates a map with its key and value types from the BTF object
    /// `btf` (the spec's type ids), as libbpf does so that the kernel
    /// finds special fields such as `struct bpf_spin_lock`; a kernel that
    /// refuses the BTF gets the map without it.
    pub fn create_with(spec: &MapSpec, inner: Option<&Map>, btf: Option<RawFd>) -> R<Map> {
        let mut a = MapCreateAttr {
            map_type: spec.map_type,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries,
            map_flags: spec.flags,
            inner_map_fd: inner.map(|m| m.fd.as_raw_fd() as u32).unwrap_or(0),
            map_name: obj_name(&spec.name),
            map_extra: spec.map_extra,
            ..Default::default()
        };
        let btf = btf.filter(|_| spec.btf_value_type_id != 0);
        if let Some(fd) = btf {
            a.btf_fd = fd as u32;
            a.btf_key_type_id = spec.btf_key_type_id;
            a.btf_value_type_id = spec.btf_value_type_id;
        }
        let fd = match sys(cmd::MAP_CREATE, "BPF_MAP_CREATE", &mut a) {
            // As libbpf: a kernel that refuses the map's BTF gets the map
            // without it.
            Err(_) if btf.is_some() => {
                a.btf_fd = 0;
                a.btf_key_type_id = 0;
                a.btf_value_type_id = 0;
                sys(cmd::MAP_CREATE, "BPF_MAP_CREATE", &mut a)?
            }
            r => r?,
        };
        Ok(Map {
            fd: fd_of(fd),
            spec: spec.clone(),
        })
    }

    fn elem(
        &self,
        cmd: u32,
        name: &'static str,
        key: *const u8,
        value: *mut u8,
        flags: u64,
    ) -> R<()> {
        let mut a = ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: key as u64,
            value: value as u64,
            flags,
            ..Default::default()
        };
        sys(cmd, name, &mut a).map(|_| ())
    }

    /// Value size as the syscall returns it (per-CPU maps: all CPUs).
    pub fn value_len(&self) -> usize {
        let per_cpu = matches!(
            self.spec.map_type,
            map_type::PERCPU_HASH | map_type::PERCPU_ARRAY | map_type::LRU_PERCPU_HASH
        );
        if per_cpu {
            (self.spec.value_size as usize).div_ceil(8) * 8 * possible_cpus()
        } else {
            self.spec.value_size as usize
        }
    }

    pub fn lookup(&self, key: &[u8]) -> R<Option<Vec<u8>>> {
        self.check_key(key, "BPF_MAP_LOOKUP_ELEM")?;
        let mut v = vec![0u8; self.value_len()];
        match self.elem(
            cmd::MAP_LOOKUP_ELEM,
            "BPF_MAP_LOOKUP_ELEM",
            key.as_ptr(),
            v.as_mut_ptr(),
            0,
        ) {
            Ok(()) => Ok(Some(v)),
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> R<()> {
        self.check_key(key, "BPF_MAP_UPDATE_ELEM")?;
        if value.len() < self.value_len() {
            return Err(SysError {
                command: "BPF_MAP_UPDATE_ELEM",
                errno: libc::EINVAL,
                log: None,
            });
        }
        self.elem(
            cmd::MAP_UPDATE_ELEM,
            "BPF_MAP_UPDATE_ELEM",
            key.as_ptr(),
            value.as_ptr() as *mut u8,
            flags,
        )
    }

    pub fn delete(&self, key: &[u8]) -> R<()> {
        self.check_key(key, "BPF_MAP_DELETE_ELEM")?;
        self.elem(
            cmd::MAP_DELETE_ELEM,
            "BPF_MAP_DELETE_ELEM",
            key.as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    }

    pub fn next_key(&self, key: Option<&[u8]>) -> R<Option<Vec<u8>>> {
        if let Some(k) = key {
            self.check_key(k, "BPF_MAP_GET_NEXT_KEY")?;
        }
        let mut next = vec![0u8; self.spec.key_size as usize];
        let kp = key.map(|k| k.as_ptr()).unwrap_or(std::ptr::null());
        match self.elem(
            cmd::MAP_GET_NEXT_KEY,
            "BPF_MAP_GET_NEXT_KEY",
            kp,
            next.as_mut_ptr(),
            0,
        ) {
            Ok(()) => Ok(Some(next)),
            Err(e) if e.errno == libc::ENOENT => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All entries (bounded by max_entries).
    pub fn entries(&self) -> R<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        while let Some(k) = self.next_key(key.as_deref())? {
            if let Some(v) = self.lookup(&k)? {
                out.push((k.clone(), v));
            }
            if out.len() > self.spec.max_entries as usize {
                break;
            }
            key = Some(k);
        }
        Ok(out)
    }

    fn check_key(&self, key: &[u8], command: &'static str) -> R<()> {
        if key.len() != self.spec.key_size as usize {
            return Err(SysError {
                command,
                errno: libc::EINVAL,
                log: None,
            });
        }
        Ok(())
    }

    /// Pins the map at `path` on a bpffs mount.
    pub fn pin(&self, path: &str) -> R<Pin> {
        pin_fd(self.fd.as_raw_fd(), path)
    }
}

/// Whether a map of type `t` can be listed key by key from user space
/// (`BPF_MAP_GET_NEXT_KEY` + lookup): not ring buffers, perf event arrays,
/// program arrays, queues, stacks, bloom filters, struct_ops or arenas.
pub fn map_is_dumpable(t: u32) -> bool {
    use map_type::*;
    !matches!(
        t,
        RINGBUF
            | USER_RINGBUF
            | PERF_EVENT_ARRAY
            | PROG_ARRAY
            | QUEUE
            | STACK
            | BLOOM_FILTER
            | STRUCT_OPS
            | ARENA
    )
}

/// Waits `d` (to the millisecond) with poll(2) on no descriptors rather
/// than nanosleep(2): a tracer's own pauses are then not the sleeps that
/// a sleep-tracing script (naptime) reports, which would feed back into
/// more output and more pauses.
pub fn pause(d: std::time::Duration) {
    let ms = i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: poll with no descriptors (a null array of length 0) only
    // waits; it reads and writes no memory.
    unsafe {
        libc::poll(std::ptr::null_mut(), 0, ms);
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the call to write into.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Number of possible CPUs (per-CPU map value layout).
pub fn possible_cpus() -> usize {
    cpu_list("/sys/devices/system/cpu/possible").map_or(1, |c| c.len().max(1))
}

/// The online CPUs (where sampling events are opened).
pub fn online_cpus() -> Vec<u32> {
    cpu_list("/sys/devices/system/cpu/online").unwrap_or_else(|| vec![0])
}

/// A sysfs CPU list (`0-3,5`).
fn cpu_list(path: &str) -> Option<Vec<u32>> {
    parse_cpu_list(&std::fs::read_to_string(path).ok()?)
}

fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for r in s.trim().split(',').filter(|r| !r.is_empty()) {
        match r.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<u32>().ok()?..=b.parse::<u32>().ok()?),
            None => out.push(r.parse().ok()?),
        }
    }
    Some(out)
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
}

/// What to load.
#[derive(Clone, Debug, Default)]
pub struct ProgSpec<'a> {
    pub name: String,
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub insns: &'a [u8],
    pub license: String,
    pub kern_version: u32,
    pub btf_fd: Option<RawFd>,
    /// Raw `bpf_func_info` records (8 bytes each).
    pub func_info: &'a [u8],
    /// Raw `bpf_line_info` records (16 bytes each).
    pub line_info: &'a [u8],
    /// Raw `bpf_core_relo` records (16 bytes each); the kernel applies
    /// them against its own BTF.
    pub core_relos: &'a [u8],
    /// The kernel BTF id a tracing program attaches by (`tp_btf`, fentry,
    /// lsm), 0 for the others.
    pub attach_btf_id: u32,
}

/// A loaded program; unloaded when dropped (and no link holds it).
#[derive(Debug)]
pub struct Prog {
    pub fd: OwnedFd,
}

/// The last meaningful line of a verifier log: what the kernel objected
/// to (the statistics lines after it are skipped).
pub fn log_summary(log: &str) -> &str {
    log.lines()
        .map(str::trim)
        .rfind(|l| {
            !l.is_empty() && !l.starts_with("processed ") && !l.starts_with("verification time")
        })
        .unwrap_or("")
}

/// The verifier's verdict on a program.
#[derive(Debug)]
pub struct Verdict {
    pub prog: Result<Prog, SysError>,
    /// Time the accepting or rejecting load took (without a log).
    pub time: Duration,
    /// "processed N insns" from the verifier, when known.
    pub insns_processed: Option<u64>,
    /// The verifier log (for rejections; stats for acceptances).
    pub log: String,
}

fn load_once(spec: &ProgSpec<'_>, log_level: u32, log: &mut [u8]) -> R<Prog> {
    let license = CString::new(spec.license.clone()).unwrap_or_default();
    let mut a = ProgLoadAttr {
        prog_type: spec.prog_type,
        insn_cnt: (spec.insns.len() / 8) as u32,
        insns: spec.insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size: if log_level == 0 { 0 } else { log.len() as u32 },
        log_buf: if log_level == 0 {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        kern_version: spec.kern_version,
        prog_name: obj_name(&spec.name),
        expected_attach_type: spec.expected_attach_type,
        prog_btf_fd: spec.btf_fd.unwrap_or(0) as u32,
        attach_btf_id: spec.attach_btf_id,
        ..Default::default()
    };
    if spec.btf_fd.is_some() && !spec.func_info.is_empty() {
        a.func_info_rec_size = 8;
        a.func_info = spec.func_info.as_ptr() as u64;
        a.func_info_cnt = (spec.func_info.len() / 8) as u32;
    }
    if spec.btf_fd.is_some() && !spec.line_info.is_empty() {
        a.line_info_rec_size = 16;
        a.line_info = spec.line_info.as_ptr() as u64;
        a.line_info_cnt = (spec.line_info.len() / 16) as u32;
    }
    if spec.btf_fd.is_some() && !spec.core_relos.is_empty() {
        a.core_relo_rec_size = 16;
        a.core_relos = spec.core_relos.as_ptr() as u64;
        a.core_relo_cnt = (spec.core_relos.len() / 16) as u32;
    }
    let fd = sys(cmd::PROG_LOAD, "BPF_PROG_LOAD", &mut a)?;
    Ok(Prog { fd: fd_of(fd) })
}

fn log_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Parses "processed N insns" from a verifier log.
pub fn insns_processed(log: &str) -> Option<u64> {
    let i = log.find("processed ")?;
    log[i + 10..].split_whitespace().next()?.parse().ok()
}

/// The kernel's statistics line (`processed N insns (limit L)
/// max_states_per_insn M total_states T peak_states P mark_read R`), each
/// count when the log has it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub insns_processed: Option<u64>,
    pub total_states: Option<u64>,
    pub peak_states: Option<u64>,
    pub max_states_per_insn: Option<u64>,
}

/// Parses the last statistics line of a verifier log.
pub fn log_stats(log: &str) -> LogStats {
    let Some(line) = log.lines().rfind(|l| l.starts_with("processed ")) else {
        return LogStats::default();
    };
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    LogStats {
        insns_processed: after("processed"),
        total_states: after("total_states"),
        peak_states: after("peak_states"),
        max_states_per_insn: after("max_states_per_insn"),
    }
}

/// Loads a program: once without a log for the verdict and its time, then
/// again with a log (stats for an accepted program, the full log, grown
/// until it fits, for a rejected one).
pub fn load_program(spec: &ProgSpec<'_>) -> Verdict {
    let start = Instant::now();
    let first = load_once(spec, 0, &mut []);
    let time = start.elapsed();
    match first {
        Ok(prog) => {
            // BPF_LOG_STATS (4): just the statistics line.
            let mut buf = vec![0u8; 4096];
            let log = match load_once(spec, 4, &mut buf) {
                Ok(_second) => log_text(&buf),
                Err(_) => String::new(),
            };
            Verdict {
                prog: Ok(prog),
                time,
                insns_processed: insns_processed(&log),
                log,
            }
        }
        Err(e) => {
            let mut size = 1 << 20;
            let mut log = String::new();
            for _ in 0..5 {
                let mut buf = vec![0u8; size];
                match load_once(spec, 1, &mut buf) {
                    Err(e2) if e2.errno == libc::ENOSPC => size *= 4,
                    _ => {
                        log = log_text(&buf);
                        break;
                    }
                }
            }
            Verdict {
                insns_processed: insns_processed(&log),
                prog: Err(SysError {
                    log: Some(log.clone()),
                    ..e
                }),
                time,
                log,
            }
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit, so the kernel's check that bytes past the last field are
    /// zero never sees uninitialised padding.
    _pad: u32,
}

/// What cmd::PROG_TEST_RUN returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRun {
    pub retval: u32,
    pub data_out: Vec<u8>,
    pub ctx_out: Vec<u8>,
    /// Average duration per run in nanoseconds.
    pub duration_ns: u32,
}

impl Prog {
    /// Runs a raw tracepoint program once, in this thread's context, with
    /// `args` as its arguments (`BPF_PROG_TEST_RUN` of a raw_tp program:
    /// no data, a context of at most 12 u64s). Returns its return value.
    pub fn run_raw_tp(&self, args: &[u64]) -> R<u32> {
        let ctx: Vec<u8> = args.iter().flat_map(|a| a.to_le_bytes()).collect();
        let mut a = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            ctx_size_in: ctx.len() as u32,
            ctx_in: if ctx.is_empty() {
                0
            } else {
                ctx.as_ptr() as u64
            },
            ..Default::default()
        };
        sys(cmd::PROG_TEST_RUN, "BPF_PROG_TEST_RUN", &mut a)?;
        Ok(a.retval)
    }

    /// Runs the program on `data` (and an optional context) in the kernel.
    pub fn test_run(&self, data: &[u8], ctx: Option<&[u8]>, repeat: u32) -> R<TestRun> {
        let mut out = vec![0u8; data.len() + 4096];
        let mut ctx_out = vec![0u8; ctx.map(|c| c.len()).unwrap_or(0)];
        let mut a = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            data_size_in: data.len() as u32,
            data_size_out: out.len() as u32,
            data_in: data.as_ptr() as u64,
            data_out: out.as_mut_ptr() as u64,
            repeat,
            ..Default::default()
        };
        if let Some(c) = ctx {
            a.ctx_size_in = c.len() as u32;
            a.ctx_in = c.as_ptr() as u64;
            a.ctx_size_out = ctx_out.len() as u32;
            a.ctx_out = ctx_out.as_mut_ptr() as u64;
        }
        sys(cmd::PROG_TEST_RUN, "BPF_PROG_TEST_RUN", &mut a)?;
        out.truncate(a.data_size_out as usize);
        ctx_out.truncate(a.ctx_size_out as usize);
        Ok(TestRun {
            retval: a.retval,
            data_out: out,
            ctx_out,
            duration_ns: a.duration,
        })
    }

    pub fn pin(&self, path: &str) -> R<Pin> {
        pin_fd(self.fd.as_raw_fd(), path)
    }
}

#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
    btf_log_true_size: u32,
}

/// Loaded BTF; released on drop.
#[derive(Debug)]
pub struct Btf {
    pub fd: OwnedFd,
}

impl Btf {
    pub fn load(raw: &[u8]) -> R<Btf> {
        let mut a = BtfLoadAttr {
            btf: raw.as_ptr() as u64,
            btf_size: raw.len() as u32,
            ..Default::default()
        };
        match sys(cmd::BTF_LOAD, "BPF_BTF_LOAD", &mut a) {
            Ok(fd) => Ok(Btf { fd: fd_of(fd) }),
            Err(e) => {
                let mut log = vec![0u8; 64 * 1024];
                let mut a = BtfLoadAttr {
                    btf: raw.as_ptr() as u64,
                    btf_size: raw.len() as u32,
                    btf_log_buf: log.as_mut_ptr() as u64,
                    btf_log_size: log.len() as u32,
                    btf_log_level: 1,
                    ..Default::default()
                };
                let _ = sys(cmd::BTF_LOAD, "BPF_BTF_LOAD", &mut a);
                Err(SysError {
                    log: Some(log_text(&log)),
                    ..e
                })
            }
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// A pin in bpffs; removed when dropped unless [`Pin::keep`] is called.
#[derive(Debug)]
pub struct Pin {
    pub path: String,
    keep: bool,
}

impl Pin {
    /// Leaves the pin in place after this value is dropped.
    pub fn keep(mut self) -> String {
        self.keep = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        if !self.keep && !self.path.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn pin_fd(fd: RawFd, path: &str) -> R<Pin> {
    let c = CString::new(path).map_err(|_| SysError {
        command: "BPF_OBJ_PIN",
        errno: libc::EINVAL,
        log: None,
    })?;
    let mut a = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd as u32,
        file_flags: 0,
    };
    sys(cmd::OBJ_PIN, "BPF_OBJ_PIN", &mut a)?;
    Ok(Pin {
        path: path.to_string(),
        keep: false,
    })
}

/// Opens a pinned object.
pub fn obj_get(path: &str) -> R<OwnedFd> {
    let c = CString::new(path).map_err(|_| SysError {
        command: "BPF_OBJ_GET",
        errno: libc::EINVAL,
        log: None,
    })?;
    let mut a = ObjAttr {
        pathname: c.as_ptr() as u64,
        ..Default::default()
    };
    sys(cmd::OBJ_GET, "BPF_OBJ_GET", &mut a).map(fd_of)
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    target_btf_id: u32,
    _pad: u32,
    extra: [u64; 4],
}

/// A link (attachment); detached when dropped.
#[derive(Debug)]
pub struct Link {
    pub fd: OwnedFd,
}

impl Link {
    pub fn create(prog: &Prog, target_fd: RawFd, attach_type: u32, flags: u32) -> R<Link> {
        let mut a = LinkCreateAttr {
            prog_fd: prog.fd.as_raw_fd() as u32,
            target_fd: target_fd as u32,
            attach_type,
            flags,
            ..Default::default()
        };
        sys(cmd::LINK_CREATE, "BPF_LINK_CREATE", &mut a).map(|fd| Link { fd: fd_of(fd) })
    }

    /// Pins the link at `path` (in a bpffs): the attachment then outlives
    /// this process until the pin is removed.
    pub fn pin(&self, path: &str) -> R<Pin> {
        pin_fd(self.fd.as_raw_fd(), path)
    }

    /// A `BPF_PERF_EVENT` link with a BPF cookie (what
    /// `bpf_get_attach_cookie` returns in the program).
    pub fn perf_event_with_cookie(prog: &Prog, perf_fd: RawFd, cookie: u64) -> R<Link> {
        let mut a = LinkCreateAttr {
            prog_fd: prog.fd.as_raw_fd() as u32,
            target_fd: perf_fd as u32,
            attach_type: oxbpf_abi::attach_type::PERF_EVENT,
            flags: 0,
            // link_create.perf_event.bpf_cookie overlays these two words.
            target_btf_id: cookie as u32,
            _pad: (cookie >> 32) as u32,
            ..Default::default()
        };
        sys(cmd::LINK_CREATE, "BPF_LINK_CREATE", &mut a).map(|fd| Link { fd: fd_of(fd) })
    }

    /// A `BPF_TRACE_UPROBE_MULTI` link: one program at every file offset
    /// in `offsets` of `path` (uretprobes when `ret`), for `pid` or every
    /// process (`pid` 0). The program must have been loaded with that
    /// expected attach type (sections `uprobe.multi`, `uretprobe.multi`).
    pub fn uprobe_multi(
        prog: &Prog,
        path: &std::path::Path,
        offsets: &[u64],
        ret: bool,
        pid: u32,
    ) -> R<Link> {
        #[repr(C)]
        #[derive(Default)]
        struct A {
            prog_fd: u32,
            target_fd: u32,
            attach_type: u32,
            flags: u32,
            path: u64,
            offsets: u64,
            ref_ctr_offsets: u64,
            cookies: u64,
            cnt: u32,
            multi_flags: u32,
            pid: u32,
            _pad: u32,
        }
        let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| SysError {
            command: "BPF_LINK_CREATE",
            errno: libc::EINVAL,
            log: None,
        })?;
        let mut a = A {
            prog_fd: prog.fd.as_raw_fd() as u32,
            attach_type: oxbpf_abi::attach_type::TRACE_UPROBE_MULTI,
            path: c_path.as_ptr() as u64,
            offsets: offsets.as_ptr() as u64,
            cnt: offsets.len() as u32,
            // BPF_F_UPROBE_MULTI_RETURN
            multi_flags: u32::from(ret),
            pid,
            ..Default::default()
        };
        sys(cmd::LINK_CREATE, "BPF_LINK_CREATE", &mut a).map(|fd| Link { fd: fd_of(fd) })
    }

    /// A `BPF_TRACE_KPROBE_MULTI` link (fprobe): one program on every
    /// kernel function in `symbols` (their returns when `ret`), or a
    /// `BPF_TRACE_KPROBE_SESSION` link (entry and return) when `session`.
    /// The program must have been loaded with that expected attach type.
    pub fn kprobe_multi(prog: &Prog, symbols: &[String], ret: bool, session: bool) -> R<Link> {
        #[repr(C)]
        #[derive(Default)]
        struct A {
            prog_fd: u32,
            target_fd: u32,
            attach_type: u32,
            flags: u32,
            multi_flags: u32,
            cnt: u32,
            syms: u64,
            addrs: u64,
            cookies: u64,
        }
        let bad = || SysError {
            command: "BPF_LINK_CREATE",
            errno: libc::EINVAL,
            log: None,
        };
        let names: Vec<CString> = symbols
            .iter()
            .map(|s| CString::new(s.as_str()).map_err(|_| bad()))
            .collect::<R<_>>()?;
        let ptrs: Vec<u64> = names.iter().map(|c| c.as_ptr() as u64).collect();
        let mut a = A {
            prog_fd: prog.fd.as_raw_fd() as u32,
            attach_type: if session {
                oxbpf_abi::attach_type::TRACE_KPROBE_SESSION
            } else {
                oxbpf_abi::attach_type::TRACE_KPROBE_MULTI
            },
            // BPF_F_KPROBE_MULTI_RETURN
            multi_flags: u32::from(ret && !session),
            cnt: ptrs.len() as u32,
            syms: ptrs.as_ptr() as u64,
            ..Default::default()
        };
        sys(cmd::LINK_CREATE, "BPF_LINK_CREATE", &mut a).map(|fd| Link { fd: fd_of(fd) })
    }

    pub fn detach(&self) -> R<()> {
        #[repr(C)]
        #[derive(Default)]
        struct A {
            link_fd: u32,
        }
        let mut a = A {
            link_fd: self.fd.as_raw_fd() as u32,
        };
        sys(cmd::LINK_DETACH, "BPF_LINK_DETACH", &mut a).map(|_| ())
    }
}

#[repr(C)]
#[derive(Default)]
struct NextIdAttr {
    start_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn ids(cmd: u32, name: &'static str) -> R<Vec<u32>> {
    let mut out = Vec::new();
    let mut id = 0;
    loop {
        let mut a = NextIdAttr {
            start_id: id,
            ..Default::default()
        };
        match sys(cmd, name, &mut a) {
            Ok(_) => {
                id = a.next_id;
                out.push(id);
            }
            Err(e) if e.errno == libc::ENOENT => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

/// Ids of every program, map and link in the kernel (for leak checks).
pub fn object_ids() -> R<(Vec<u32>, Vec<u32>, Vec<u32>)> {
    Ok((
        ids(cmd::PROG_GET_NEXT_ID, "BPF_PROG_GET_NEXT_ID")?,
        ids(cmd::MAP_GET_NEXT_ID, "BPF_MAP_GET_NEXT_ID")?,
        ids(cmd::LINK_GET_NEXT_ID, "BPF_LINK_GET_NEXT_ID").unwrap_or_default(),
    ))
}

/// Program, map and link ids (as [`object_ids`] gives them).
pub type ObjectIds = (Vec<u32>, Vec<u32>, Vec<u32>);

/// The objects the kernel holds now that it did not hold in `before`,
/// once the kernel has had up to `wait` to free what is going away (it
/// frees programs and maps from RCU callbacks after their last fd
/// closes). Empty lists: nothing was left behind. For leak checks.
pub fn objects_left_since(before: &ObjectIds, wait: std::time::Duration) -> R<ObjectIds> {
    let deadline = Instant::now() + wait;
    loop {
        let now = object_ids()?;
        let fresh = |a: &[u32], b: &[u32]| {
            a.iter()
                .filter(|i| !b.contains(i))
                .copied()
                .collect::<Vec<u32>>()
        };
        let left = (
            fresh(&now.0, &before.0),
            fresh(&now.1, &before.1),
            fresh(&now.2, &before.2),
        );
        if (left.0.is_empty() && left.1.is_empty() && left.2.is_empty())
            || Instant::now() >= deadline
        {
            return Ok(left);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_stats_reads_the_kernels_statistics_line() {
        let log = "0: (b7) r0 = 0\n1: (95) exit\nprocessed 53954 insns (limit 1000000) max_states_per_insn 14 total_states 3163 peak_states 1601 mark_read 0\n";
        assert_eq!(
            log_stats(log),
            LogStats {
                insns_processed: Some(53954),
                total_states: Some(3163),
                peak_states: Some(1601),
                max_states_per_insn: Some(14),
            }
        );
        assert_eq!(log_stats("R1 invalid mem access\n"), LogStats::default());
    }
}
