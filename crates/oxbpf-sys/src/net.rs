//! Network and cgroup attachment targets: interfaces by name, cgroup v2
//! directories, packet sockets for socket filters.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::{Prog, SysError};

/// `CGROUP2_SUPER_MAGIC` (include/uapi/linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
/// `SO_ATTACH_BPF` (include/uapi/asm-generic/socket.h).
const SO_ATTACH_BPF: libc::c_int = 50;

/// XDP attach flags (`XDP_FLAGS_*`).
pub mod xdp_flags {
    /// Generic XDP (in the network stack, any driver).
    pub const SKB_MODE: u32 = 1 << 1;
    /// Native XDP (in the driver).
    pub const DRV_MODE: u32 = 1 << 2;
}

/// The index of interface `name` in this network namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated name; the call only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Opens a cgroup v2 directory for attaching, or says why it is not one.
pub fn open_cgroup(path: &Path) -> Result<OwnedFd, String> {
    let dir = std::fs::File::open(path).map_err(|e| format!("cgroup {}: {e}", path.display()))?;
    let mut st: libc::statfs = unsafe_zeroed_statfs();
    // SAFETY: a valid fd and a statfs buffer of the right size.
    let r = unsafe { libc::fstatfs(dir.as_raw_fd(), &mut st) };
    if r != 0 {
        return Err(format!(
            "cgroup {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // f_type's width differs between targets (i64 here, u32 elsewhere).
    #[allow(clippy::unnecessary_cast)]
    let fs_type = st.f_type as i64;
    if fs_type != CGROUP2_SUPER_MAGIC {
        return Err(format!(
            "{} is not in a cgroup v2 hierarchy (the cgroup2 mount is {})",
            path.display(),
            cgroup2_mount().map_or("not found".into(), |m| m.display().to_string())
        ));
    }
    Ok(OwnedFd::from(dir))
}

fn unsafe_zeroed_statfs() -> libc::statfs {
    // SAFETY: statfs is a plain C struct of integers, valid when zeroed.
    unsafe { std::mem::zeroed() }
}

/// Where cgroup v2 is mounted (from /proc/mounts; on a hybrid layout, e.g.
/// /sys/fs/cgroup/unified).
pub fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "cgroup2").then(|| std::path::PathBuf::from(dir))
    })
}

/// The mounted cgroup hierarchies as bpftrace names them: cgroup v2 as
/// `unified` (in mount order), then the v1 ones by their mount
/// directory's name (sorted), each with where it is mounted.
pub fn cgroup_hierarchies() -> Vec<(String, std::path::PathBuf)> {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return Vec::new();
    };
    let (mut v2, mut v1) = (Vec::new(), Vec::new());
    for l in mounts.lines() {
        let mut f = l.split_whitespace();
        let (Some(_), Some(dir), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let dir = std::path::PathBuf::from(crate::perf::unescape_mount_path(dir));
        if !dir.is_dir() {
            continue;
        }
        match fstype {
            "cgroup2" => v2.push(("unified".to_string(), dir)),
            "cgroup" => {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                v1.push((name, dir));
            }
            _ => {}
        }
    }
    v1.sort();
    v2.extend(v1);
    v2
}

/// The path (from the hierarchy's root, `/` for the root itself) of the
/// cgroup directory under `root` whose inode number is `id`.
pub fn cgroup_path_in(root: &std::path::Path, id: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(root).ok()?.ino() == id {
        return Some("/".into());
    }
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if !t.is_dir() {
                continue;
            }
            let p = e.path();
            if e.metadata().is_ok_and(|m| m.ino() == id) {
                let rel = p.strip_prefix(root).ok()?;
                return Some(format!("/{}", rel.display()));
            }
            dirs.push(p);
        }
    }
    None
}

/// A packet socket on interface `ifindex` (every protocol) with `prog`
/// attached as its socket filter (`SO_ATTACH_BPF`). The program runs on
/// every packet the interface sees while the socket is open.
pub fn filtered_packet_socket(prog: &Prog, ifindex: u32) -> Result<OwnedFd, SysError> {
    let err = |what: &'static str| SysError {
        command: what,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        log: None,
    };
    let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(err("socket(AF_PACKET)"));
    }
    // SAFETY: the fd was just created and is owned here.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let pfd = prog.fd.as_raw_fd();
    // SAFETY: a valid socket and a pointer to an int of the size given.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_ATTACH_BPF,
            &pfd as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(err("setsockopt(SO_ATTACH_BPF)"));
    }
    // SAFETY: sockaddr_ll is plain data; zeroed then filled.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: a valid socket and a sockaddr_ll of the size given.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            &addr as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(err("bind(AF_PACKET)"));
    }
    Ok(sock)
}
