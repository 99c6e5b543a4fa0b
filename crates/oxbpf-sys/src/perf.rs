//! Perf events (`perf_event_open(2)`) as attachment points for programs:
//! tracepoints, software events, and the tracefs lookups they need.
//!
//! Attribute layout: `struct perf_event_attr` in
//! include/uapi/linux/perf_event.h, `PERF_ATTR_SIZE_VER8` (136 bytes). The
//! bit-field word after `read_format` is one `u64` here (`flags`), with the
//! bits named below.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::{Link, Prog, SysError};

/// `perf_event_attr.type`.
pub mod kind {
    pub const HARDWARE: u32 = 0;
    pub const SOFTWARE: u32 = 1;
    pub const TRACEPOINT: u32 = 2;
    pub const BREAKPOINT: u32 = 5;
}

/// `perf_event_attr.bp_type` bits (include/uapi/linux/hw_breakpoint.h).
pub mod breakpoint {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    pub const EXECUTE: u32 = 4;
}

/// Software events (`perf_event_attr.config` with `kind::SOFTWARE`), by
/// the names `perf list` uses.
pub const SOFTWARE_EVENTS: &[(&str, u64)] = &[
    ("cpu-clock", 0),
    ("task-clock", 1),
    ("page-faults", 2),
    ("context-switches", 3),
    ("cpu-migrations", 4),
    ("minor-faults", 5),
    ("major-faults", 6),
    ("alignment-faults", 7),
    ("emulation-faults", 8),
    ("dummy", 9),
    ("bpf-output", 10),
    ("cgroup-switches", 11),
];

/// Bits of the flags word.
const FLAG_DISABLED: u64 = 1 << 0;
const FLAG_INHERIT: u64 = 1 << 1;
const FLAG_EXCLUDE_KERNEL: u64 = 1 << 5;
const FLAG_FREQ: u64 = 1 << 10;

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `_IO('$', 0)`.
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
/// `_IO('$', 1)`.
const PERF_EVENT_IOC_DISABLE: libc::c_ulong = 0x2401;

#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period_or_freq: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    _reserved_2: u16,
    aux_sample_size: u32,
    _reserved_3: u32,
    sig_data: u64,
    config3: u64,
}

const _: () = assert!(std::mem::size_of::<PerfEventAttr>() == 136);

/// How often a sampling event fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Every `n` events (for clocks: nanoseconds).
    Period(u64),
    /// About `hz` times a second (the kernel adjusts the period).
    Frequency(u64),
}

/// An open perf event; closed (and its program detached) on drop.
#[derive(Debug)]
pub struct PerfEvent {
    pub fd: OwnedFd,
}

fn open(attr: &mut PerfEventAttr, pid: i32, cpu: i32, what: &str) -> Result<PerfEvent, SysError> {
    attr.size = std::mem::size_of::<PerfEventAttr>() as u32;
    // SAFETY: `attr` is a live, fully initialised perf_event_attr of the
    // size it declares; the kernel only reads it. No group fd is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr as *mut PerfEventAttr,
            pid as libc::c_long,
            cpu as libc::c_long,
            -1 as libc::c_long,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(SysError {
            command: "perf_event_open",
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
            log: Some(what.to_string()),
        });
    }
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(r as RawFd) };
    Ok(PerfEvent { fd })
}

impl PerfEvent {
    /// The tracepoint with tracefs id `id`, for a BPF program: every
    /// process (`pid` -1) on CPU 0, as libbpf opens it — a program attached
    /// to a tracepoint event runs on every CPU that hits it.
    pub fn tracepoint(id: u64, what: &str) -> Result<PerfEvent, SysError> {
        let mut attr = PerfEventAttr {
            kind: kind::TRACEPOINT,
            config: id,
            sample_period_or_freq: 1,
            wakeup_events: 1,
            ..Default::default()
        };
        open(&mut attr, -1, 0, what)
    }

    /// A uprobe (or uretprobe) at file offset `offset` of `path`, through
    /// the `uprobe` PMU (/sys/bus/event_source/devices/uprobe): for every
    /// process (`pid` -1, opened on CPU 0 as libbpf does) or one process.
    /// `ref_ctr_offset` is a USDT semaphore's file offset (0: none), which
    /// the kernel increments while the probe is attached.
    pub fn uprobe(
        path: &Path,
        offset: u64,
        ret: bool,
        ref_ctr_offset: u64,
        pid: i32,
    ) -> Result<PerfEvent, SysError> {
        let what = format!(
            "{} {}+{offset:#x}",
            if ret { "uretprobe" } else { "uprobe" },
            path.display()
        );
        let target = path.as_os_str().as_encoded_bytes();
        probe_event("uprobe", &what, target, offset, ret, ref_ctr_offset, pid)
    }

    /// A kprobe (or kretprobe) on kernel function `func` (+`offset`),
    /// through the `kprobe` PMU, for every process. (This machine's kernel
    /// has no kprobes: the caller checks for the PMU first.)
    pub fn kprobe(func: &str, offset: u64, ret: bool) -> Result<PerfEvent, SysError> {
        let what = format!(
            "{} {func}+{offset:#x}",
            if ret { "kretprobe" } else { "kprobe" }
        );
        probe_event("kprobe", &what, func.as_bytes(), offset, ret, 0, -1)
    }

    /// A `bpf-output` event on `cpu` (every process): the target of
    /// `bpf_perf_event_output` through a perf event array, delivering each
    /// record as a raw sample and waking the reader on every one.
    pub fn bpf_output(cpu: i32) -> Result<PerfEvent, SysError> {
        const PERF_SAMPLE_RAW: u64 = 1 << 10;
        let mut attr = PerfEventAttr {
            kind: kind::SOFTWARE,
            config: 10,
            sample_period_or_freq: 1,
            sample_type: PERF_SAMPLE_RAW,
            wakeup_events: 1,
            ..Default::default()
        };
        open(&mut attr, -1, cpu, "bpf-output event")
    }

    /// A software event (`config` from [`SOFTWARE_EVENTS`]) sampled on
    /// `cpu` for every process, or for `pid` alone on every CPU when `cpu`
    /// is -1.
    pub fn software(
        config: u64,
        sampling: Sampling,
        pid: i32,
        cpu: i32,
    ) -> Result<PerfEvent, SysError> {
        let (value, freq) = match sampling {
            Sampling::Period(n) => (n.max(1), 0),
            Sampling::Frequency(hz) => (hz.max(1), FLAG_FREQ),
        };
        let mut attr = PerfEventAttr {
            kind: kind::SOFTWARE,
            config,
            sample_period_or_freq: value,
            flags: FLAG_DISABLED | freq,
            ..Default::default()
        };
        open(&mut attr, pid, cpu, "software event")
    }

    /// A hardware breakpoint (watchpoint) on the `len` bytes at `addr`,
    /// firing on the accesses in `bp_type` ([`breakpoint`] bits): in
    /// thread `pid` on every CPU and in the threads it creates from then
    /// on (`cpu` -1) — the thread's own accesses, not the kernel's on its
    /// behalf (such as zeroing `.bss` at exec) — or on `cpu` for every
    /// process (`pid` -1; kernel addresses).
    pub fn breakpoint(
        addr: u64,
        len: u64,
        bp_type: u32,
        pid: i32,
        cpu: i32,
    ) -> Result<PerfEvent, SysError> {
        let mut attr = PerfEventAttr {
            kind: kind::BREAKPOINT,
            sample_period_or_freq: 1,
            flags: FLAG_DISABLED
                | if pid >= 0 {
                    FLAG_INHERIT | FLAG_EXCLUDE_KERNEL
                } else {
                    0
                },
            bp_type,
            config1: addr,
            config2: len,
            ..Default::default()
        };
        open(
            &mut attr,
            pid,
            cpu,
            &format!("breakpoint on {len} bytes at {addr:#x}"),
        )
    }

    /// Runs `prog` on every firing, through a BPF link (`BPF_PERF_EVENT`),
    /// and enables the event. Dropping the link detaches the program.
    pub fn attach(&self, prog: &Prog) -> Result<Link, SysError> {
        let link = Link::create(
            prog,
            self.fd.as_raw_fd(),
            oxbpf_abi::attach_type::PERF_EVENT,
            0,
        )?;
        self.ioctl(PERF_EVENT_IOC_ENABLE, "PERF_EVENT_IOC_ENABLE")?;
        Ok(link)
    }

    /// [`PerfEvent::attach`] with a BPF cookie for the program.
    pub fn attach_with_cookie(&self, prog: &Prog, cookie: u64) -> Result<Link, SysError> {
        let link = Link::perf_event_with_cookie(prog, self.fd.as_raw_fd(), cookie)?;
        self.ioctl(PERF_EVENT_IOC_ENABLE, "PERF_EVENT_IOC_ENABLE")?;
        Ok(link)
    }

    /// Stops the event (it stays open).
    pub fn disable(&self) -> Result<(), SysError> {
        self.ioctl(PERF_EVENT_IOC_DISABLE, "PERF_EVENT_IOC_DISABLE")
    }

    fn ioctl(&self, request: libc::c_ulong, name: &'static str) -> Result<(), SysError> {
        // SAFETY: a perf event fd we own; these requests take no argument.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), request, 0) };
        if r < 0 {
            return Err(SysError {
                command: name,
                errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
                log: None,
            });
        }
        Ok(())
    }
}

/// An event of the `pmu` probe PMU (`kprobe`, `uprobe`): `target` (a
/// function name or a file path) in config1, `offset` in config2, the
/// return-probe and semaphore bits where the PMU's format files put them.
fn probe_event(
    pmu: &str,
    what: &str,
    target: &[u8],
    offset: u64,
    ret: bool,
    ref_ctr_offset: u64,
    pid: i32,
) -> Result<PerfEvent, SysError> {
    let sysfs = Path::new("/sys/bus/event_source/devices").join(pmu);
    let kind = read_number(&sysfs.join("type")).ok_or_else(|| SysError {
        command: "perf_event_open",
        errno: libc::ENOENT,
        log: Some(format!(
            "{what}: this kernel has no {pmu} PMU ({}/type)",
            sysfs.display()
        )),
    })?;
    let mut config = 0u64;
    if ret {
        config |= 1 << format_bit(&sysfs.join("format/retprobe")).unwrap_or(0);
    }
    if ref_ctr_offset != 0 {
        config |= ref_ctr_offset << format_bit(&sysfs.join("format/ref_ctr_offset")).unwrap_or(32);
    }
    let c_target = std::ffi::CString::new(target).map_err(|_| SysError {
        command: "perf_event_open",
        errno: libc::EINVAL,
        log: Some(what.to_string()),
    })?;
    let mut attr = PerfEventAttr {
        kind: kind as u32,
        config,
        sample_period_or_freq: 1,
        wakeup_events: 1,
        config1: c_target.as_ptr() as u64,
        config2: offset,
        ..Default::default()
    };
    // `c_target` outlives the call.
    open(&mut attr, pid, if pid < 0 { 0 } else { -1 }, what)
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The first bit of a PMU format file (`config:0`, `config:32-63`).
fn format_bit(path: &Path) -> Option<u32> {
    let s = std::fs::read_to_string(path).ok()?;
    let bits = s.trim().strip_prefix("config:")?;
    bits.split('-').next()?.parse().ok()
}

/// Where tracefs is mounted: from /proc/mounts (`tracefs`, or `debugfs`
/// with its `tracing` directory), `None` when neither is.
pub fn tracefs_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    let mut debugfs = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(dir), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let dir = unescape_mount_path(dir);
        match fstype {
            "tracefs" if Path::new(&dir).join("events").is_dir() => {
                return Some(PathBuf::from(dir));
            }
            "debugfs" => debugfs = Some(Path::new(&dir).join("tracing")),
            _ => {}
        }
    }
    debugfs.filter(|d| d.join("events").is_dir())
}

/// /proc/mounts writes spaces, tabs, newlines and backslashes in paths as
/// octal escapes (`\040`).
pub(crate) fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a tracepoint cannot be found.
#[derive(Debug, thiserror::Error)]
pub enum TracepointError {
    #[error("tracefs is not mounted (mount it: mount -t tracefs nodev /sys/kernel/tracing)")]
    NoTracefs,
    #[error("tracepoint {category}:{name} does not exist (no {path})")]
    Missing {
        category: String,
        name: String,
        path: String,
    },
    #[error("tracepoint {category}:{name}: cannot read its id: {error}")]
    Unreadable {
        category: String,
        name: String,
        error: String,
    },
}

/// The id of tracepoint `category:name` (tracefs `events/CAT/NAME/id`).
pub fn tracepoint_id(category: &str, name: &str) -> Result<u64, TracepointError> {
    let root = tracefs_root().ok_or(TracepointError::NoTracefs)?;
    // Names come from section names: no path tricks.
    let plain = |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..";
    let path = root.join("events").join(category).join(name).join("id");
    if !plain(category) || !plain(name) || !path.is_file() {
        return Err(TracepointError::Missing {
            category: category.into(),
            name: name.into(),
            path: path.display().to_string(),
        });
    }
    std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|s| s.trim().parse::<u64>().map_err(|e| e.to_string()))
        .map_err(|error| TracepointError::Unreadable {
            category: category.into(),
            name: name.into(),
            error,
        })
}

/// Every tracepoint of `category` whose name matches `pattern` (`*` any
/// run of characters), sorted.
pub fn tracepoints_matching(category: &str, pattern: &str) -> Result<Vec<String>, TracepointError> {
    let root = tracefs_root().ok_or(TracepointError::NoTracefs)?;
    let dir = root.join("events").join(category);
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|_| TracepointError::Missing {
            category: category.into(),
            name: pattern.into(),
            path: dir.display().to_string(),
        })?
        .flatten()
        .filter(|e| e.path().join("id").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| glob_match(pattern, n))
        .collect();
    out.sort();
    Ok(out)
}

/// Shell-style matching with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A raw tracepoint attachment (`BPF_RAW_TRACEPOINT_OPEN`): `name` is the
/// tracepoint (`sched_switch`), or `None` for a `tp_btf` program whose
/// target the kernel took from its attach BTF id at load time. The fd is a
/// BPF link; dropping it detaches.
pub fn raw_tracepoint_open(prog: &Prog, name: Option<&str>) -> Result<Link, SysError> {
    #[repr(C)]
    #[derive(Default)]
    struct A {
        name: u64,
        prog_fd: u32,
        _pad: u32,
    }
    let c = name
        .map(|n| {
            std::ffi::CString::new(n).map_err(|_| SysError {
                command: "BPF_RAW_TRACEPOINT_OPEN",
                errno: libc::EINVAL,
                log: None,
            })
        })
        .transpose()?;
    let mut a = A {
        name: c.as_ref().map_or(0, |c| c.as_ptr() as u64),
        prog_fd: prog.fd.as_raw_fd() as u32,
        _pad: 0,
    };
    crate::sys(
        oxbpf_abi::cmd::RAW_TRACEPOINT_OPEN,
        "BPF_RAW_TRACEPOINT_OPEN",
        &mut a,
    )
    .map(|fd| Link {
        fd: crate::fd_of(fd),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("sys_enter_*", "sys_enter_read"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("sys_enter_*", "sys_exit_read"));
        assert!(glob_match("*read*", "sys_enter_pread64"));
        assert!(!glob_match("read", "reads"));
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mount_path(r"/x\\"), r"/x\\");
        assert_eq!(
            unescape_mount_path("/sys/kernel/tracing"),
            "/sys/kernel/tracing"
        );
    }
}

/// The last close of a perf event waits for the kernel: a tracepoint's
/// perf event waits two RCU grace periods, a uprobe's its own
/// synchronization — tens of milliseconds each on a busy machine. A
/// process that is done (its output written, its programs detached) can
/// leave those closes to a helper: [`close_perf_events_later`] forks a
/// child holding copies of this process's perf event descriptors (and
/// nothing else); once this process has closed its own and dropped the
/// [`Handoff`] (or exited, however it exits), the child exits and the
/// kernel finishes the closes there. Nothing is left behind: the child
/// holds no other descriptor and lives only until those closes are done.
#[derive(Debug)]
pub struct Handoff {
    /// The pipe's write end: the child waits for its end of file.
    _wake: OwnedFd,
}

/// See [`Handoff`]. Errors: the descriptors could not be listed, or no
/// child could be made (the caller then closes the events itself).
pub fn close_perf_events_later() -> Result<Handoff, SysError> {
    let err = |command: &'static str| SysError {
        command,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        log: None,
    };
    // Decided before the fork: after it, the child may only make
    // async-signal-safe calls (close, read, _exit).
    let mut others: Vec<RawFd> = Vec::new();
    for e in std::fs::read_dir("/proc/self/fd").map_err(|_| err("read_dir /proc/self/fd"))? {
        let Some(fd) = e
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        else {
            continue;
        };
        let perf = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .is_ok_and(|t| t.as_os_str() == "anon_inode:[perf_event]");
        if !perf {
            others.push(fd);
        }
    }
    let mut ends = [0 as libc::c_int; 2];
    // SAFETY: `ends` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(err("pipe2"));
    }
    // SAFETY: pipe2 just returned these; nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    // Two forks: the helper is a grandchild, reparented to init when its
    // parent (which exits at once) is reaped here, so that a long-running
    // caller is left no zombie.
    // SAFETY: the children run only async-signal-safe calls (fork, close,
    // read, _exit) on data prepared before the fork, so the other threads
    // this process may have (whose locks the children inherit held) are
    // no concern.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(err("fork"));
    }
    if pid == 0 {
        let r = read.as_raw_fd();
        // SAFETY: as above; the middle process forks and exits at once,
        // the helper closes descriptors of its own, reads one byte into a
        // stack buffer and exits without running any of the parent's
        // destructors or atexit handlers.
        unsafe {
            if libc::fork() != 0 {
                libc::_exit(0);
            }
            for &fd in &others {
                if fd != r {
                    libc::close(fd);
                }
            }
            libc::close(write.as_raw_fd());
            let mut b = 0u8;
            loop {
                let n = libc::read(r, (&mut b as *mut u8).cast(), 1);
                if n < 0 && *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            libc::_exit(0);
        }
    }
    drop(read);
    let mut status = 0;
    // SAFETY: waits for the middle child made above (it exits at once).
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    {}
    Ok(Handoff { _wake: write })
}
