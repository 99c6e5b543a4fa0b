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

fn last_error(what: &'static str) -> SysError {
    SysError {
        command: what,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        log: None,
    }
}

/// A packet socket that receives nothing until [`bind_packet_socket`]:
/// created with protocol 0, so no packet reaches it before its filter is
/// attached (as libpcap does it).
fn packet_socket() -> Result<OwnedFd, SysError> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_error("socket(AF_PACKET)"));
    }
    // SAFETY: the fd was just created and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a packet socket to interface `ifindex`, `protocol` in host order
/// (`ETH_P_ALL`: every frame; 0: none, for a socket that only sends).
fn bind_packet_socket(sock: &OwnedFd, ifindex: u32, protocol: u16) -> Result<(), SysError> {
    // SAFETY: sockaddr_ll is plain data; zeroed then filled.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol.to_be();
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
        return Err(last_error("bind(AF_PACKET)"));
    }
    Ok(())
}

/// A packet socket on interface `ifindex` (every protocol) with `prog`
/// attached as its socket filter (`SO_ATTACH_BPF`). The program runs on
/// every packet the interface sees while the socket is open.
pub fn filtered_packet_socket(prog: &Prog, ifindex: u32) -> Result<OwnedFd, SysError> {
    let sock = packet_socket()?;
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
        return Err(last_error("setsockopt(SO_ATTACH_BPF)"));
    }
    enable_auxdata(&sock)?;
    bind_packet_socket(&sock, ifindex, libc::ETH_P_ALL as u16)?;
    Ok(sock)
}

/// A packet socket on interface `ifindex` (every protocol) with a classic
/// program attached as its filter (`SO_ATTACH_FILTER`, which the kernel
/// checks and translates to eBPF): the way tcpdump captures. Instructions
/// are `(code, jt, jf, k)`.
pub fn classic_packet_socket(
    filter: &[(u16, u8, u8, u32)],
    ifindex: u32,
) -> Result<OwnedFd, SysError> {
    let sock = packet_socket()?;
    let mut insns: Vec<libc::sock_filter> = filter
        .iter()
        .map(|&(code, jt, jf, k)| libc::sock_filter { code, jt, jf, k })
        .collect();
    let prog = libc::sock_fprog {
        len: u16::try_from(insns.len()).map_err(|_| SysError {
            command: "setsockopt(SO_ATTACH_FILTER)",
            errno: libc::EINVAL,
            log: None,
        })?,
        filter: insns.as_mut_ptr(),
    };
    // SAFETY: a valid socket and a sock_fprog whose filter points at
    // `insns`, alive for the call; the kernel copies the program.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &prog as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(last_error("setsockopt(SO_ATTACH_FILTER)"));
    }
    enable_auxdata(&sock)?;
    bind_packet_socket(&sock, ifindex, libc::ETH_P_ALL as u16)?;
    Ok(sock)
}

/// A packet socket that sends whole frames out of interface `ifindex`
/// ([`send_frame`]) and receives nothing.
pub fn sending_packet_socket(ifindex: u32) -> Result<OwnedFd, SysError> {
    let sock = packet_socket()?;
    bind_packet_socket(&sock, ifindex, 0)?;
    Ok(sock)
}

/// Sends one frame (link header included) on a packet socket.
pub fn send_frame(sock: &OwnedFd, frame: &[u8]) -> Result<(), SysError> {
    // SAFETY: a valid socket; the buffer is read for its length.
    let r = unsafe {
        libc::send(
            sock.as_raw_fd(),
            frame.as_ptr() as *const libc::c_void,
            frame.len(),
            0,
        )
    };
    if r < 0 {
        return Err(last_error("send(AF_PACKET)"));
    }
    Ok(())
}

/// `PACKET_AUXDATA` (include/uapi/linux/if_packet.h): each received frame
/// comes with a `tpacket_auxdata` giving its length and the VLAN tag the
/// kernel took off it.
const PACKET_AUXDATA: libc::c_int = 8;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;

/// `struct tpacket_auxdata`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct TpacketAuxdata {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

fn enable_auxdata(sock: &OwnedFd) -> Result<(), SysError> {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket and a pointer to an int of the size given.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_AUXDATA,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(last_error("setsockopt(PACKET_AUXDATA)"));
    }
    Ok(())
}

/// Sets a socket's receive buffer to `bytes` (past `net.core.rmem_max`
/// when the caller may, `SO_RCVBUFFORCE`).
pub fn set_recv_buffer(sock: &OwnedFd, bytes: usize) -> Result<(), SysError> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket and a pointer to an int of the size given.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return Ok(());
        }
    }
    Err(last_error("setsockopt(SO_RCVBUF)"))
}

/// `PACKET_STATISTICS`: frames the filter passed and frames dropped for
/// want of buffer space since the last call (reading resets them).
pub fn packet_statistics(sock: &OwnedFd) -> Result<(u32, u32), SysError> {
    const PACKET_STATISTICS: libc::c_int = 6;
    let mut st = [0u32; 2];
    let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
    // SAFETY: a valid socket and a `struct tpacket_stats` (two u32s) with
    // its length.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            st.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(last_error("getsockopt(PACKET_STATISTICS)"));
    }
    Ok((st[0], st[1]))
}

/// One frame a packet socket received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What was kept (the filter's return value caps it), as the filter
    /// saw it: Linux takes a frame's outer 802.1Q/802.1ad tag off before
    /// packet sockets see it ([`Frame::vlan`]).
    pub data: Vec<u8>,
    /// The frame's length.
    pub len: usize,
    /// Sent by this host (`PACKET_OUTGOING`) rather than received.
    pub outgoing: bool,
    /// The outer VLAN tag the kernel took off: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
}

impl Frame {
    /// The frame as it was on the wire: the VLAN tag put back after the
    /// MAC addresses (as libpcap does).
    pub fn wire(&self) -> Vec<u8> {
        match self.vlan {
            Some((tpid, tci)) if self.data.len() >= 12 => {
                let mut f = self.data[..12].to_vec();
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&tci.to_be_bytes());
                f.extend_from_slice(&self.data[12..]);
                f
            }
            _ => self.data.clone(),
        }
    }
}

/// The next frame on a packet socket, waiting at most `timeout_ms`
/// (`None`: nothing arrived; an interrupted wait is `None` too, so that
/// the caller can look at its stop flag).
pub fn recv_frame(sock: &OwnedFd, timeout_ms: i32) -> Result<Option<Frame>, SysError> {
    let mut pfd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if r < 0 {
        let e = last_error("poll");
        return if e.errno == libc::EINTR {
            Ok(None)
        } else {
            Err(e)
        };
    }
    if r == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; 1 << 18];
    // SAFETY: sockaddr_ll is plain data, filled by the kernel.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    // Room for one cmsg with a tpacket_auxdata, 8-byte aligned.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed then filled.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut from as *mut _ as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: a valid socket and a msghdr whose buffers (`buf`, `from`,
    // `control`) outlive the call, with their lengths.
    let n = unsafe {
        libc::recvmsg(
            sock.as_raw_fd(),
            &mut msg,
            libc::MSG_TRUNC | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = last_error("recvmsg(AF_PACKET)");
        return if matches!(e.errno, libc::EINTR | libc::EAGAIN) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let mut aux = None;
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of
    // cmsgs; the CMSG_* macros walk them within that length, and the data
    // of a PACKET_AUXDATA cmsg is a tpacket_auxdata (read unaligned).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET
                && (*c).cmsg_type == PACKET_AUXDATA
                && (*c).cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<TpacketAuxdata>() as u32) as usize
            {
                aux = Some(std::ptr::read_unaligned(
                    libc::CMSG_DATA(c) as *const TpacketAuxdata
                ));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let got = n as usize;
    buf.truncate(got.min(buf.len()));
    let vlan = aux
        .filter(|a| a.tp_status & TP_STATUS_VLAN_VALID != 0)
        .map(|a| {
            let tpid = if a.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                a.tp_vlan_tpid
            } else {
                0x8100
            };
            (tpid, a.tp_vlan_tci)
        });
    Ok(Some(Frame {
        data: buf,
        len: aux.map_or(got, |a| a.tp_len as usize),
        outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
        vlan,
    }))
}
