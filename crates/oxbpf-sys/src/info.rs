//! What the kernel holds: programs, maps, links and BTF objects by id
//! (`BPF_*_GET_FD_BY_ID`) and their descriptions (`BPF_OBJ_GET_INFO_BY_FD`),
//! as `bpftool prog/map/link list` shows them.
//!
//! The info structs (`struct bpf_prog_info`, `bpf_map_info`,
//! `bpf_link_info`, `bpf_btf_info` in include/uapi/linux/bpf.h) are read
//! as byte buffers at their documented offsets, so no Rust struct layout
//! stands between us and the kernel's.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use oxbpf_abi::cmd;

use crate::{Map, MapSpec, R, SysError, fd_of, sys};

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

fn name_at(b: &[u8], o: usize) -> String {
    let n = &b[o..o + 16];
    let end = n.iter().position(|&c| c == 0).unwrap_or(16);
    String::from_utf8_lossy(&n[..end]).into_owned()
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `buf`; returns the length the kernel
/// filled.
fn info_by_fd(fd: RawFd, buf: &mut [u8]) -> R<usize> {
    #[repr(C)]
    struct A {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut a = A {
        bpf_fd: fd as u32,
        info_len: buf.len() as u32,
        info: buf.as_mut_ptr() as u64,
    };
    sys(cmd::OBJ_GET_INFO_BY_FD, "BPF_OBJ_GET_INFO_BY_FD", &mut a)?;
    Ok(a.info_len as usize)
}

fn fd_by_id(command: u32, name: &'static str, id: u32) -> R<OwnedFd> {
    #[repr(C)]
    struct A {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut a = A {
        id,
        next_id: 0,
        open_flags: 0,
    };
    sys(command, name, &mut a).map(fd_of)
}

/// A program in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgInfo {
    pub id: u32,
    pub prog_type: u32,
    pub name: String,
    /// The program's tag (a hash of its instructions), as hex.
    pub tag: String,
    pub gpl_compatible: bool,
    /// Nanoseconds since boot when it was loaded.
    pub load_time: u64,
    pub created_by_uid: u32,
    pub bytes_xlated: u32,
    pub bytes_jited: u32,
    pub map_ids: Vec<u32>,
    pub btf_id: u32,
    /// With `kernel.bpf_stats_enabled`: total run time and runs.
    pub run_time_ns: u64,
    pub run_cnt: u64,
    pub verified_insns: u32,
}

/// A map in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapInfo {
    pub id: u32,
    pub map_type: u32,
    pub name: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
}

/// A link in the kernel, with what it attaches to where the kernel says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub id: u32,
    pub link_type: u32,
    pub prog_id: u32,
    /// Attach type (cgroup, tracing, tcx, netkit links).
    pub attach_type: Option<u32>,
    /// Interface (XDP, tcx links).
    pub ifindex: Option<u32>,
    /// Cgroup id (cgroup links).
    pub cgroup_id: Option<u64>,
    /// Tracepoint name (raw tracepoint links).
    pub tp_name: Option<String>,
}

/// Opens program `id`.
pub fn prog_fd(id: u32) -> R<OwnedFd> {
    fd_by_id(cmd::PROG_GET_FD_BY_ID, "BPF_PROG_GET_FD_BY_ID", id)
}

/// Opens map `id`.
pub fn map_fd(id: u32) -> R<OwnedFd> {
    fd_by_id(cmd::MAP_GET_FD_BY_ID, "BPF_MAP_GET_FD_BY_ID", id)
}

/// Opens link `id`.
pub fn link_fd(id: u32) -> R<OwnedFd> {
    fd_by_id(cmd::LINK_GET_FD_BY_ID, "BPF_LINK_GET_FD_BY_ID", id)
}

/// Describes the program behind `fd`.
pub fn prog_info(fd: &OwnedFd) -> R<ProgInfo> {
    let mut b = vec![0u8; 232];
    info_by_fd(fd.as_raw_fd(), &mut b)?;
    let nr_maps = u32_at(&b, 52);
    // A second call with a buffer for the map ids.
    let mut map_ids = vec![0u32; nr_maps as usize];
    if nr_maps > 0 {
        let mut b2 = vec![0u8; 232];
        b2[52..56].copy_from_slice(&nr_maps.to_le_bytes());
        b2[56..64].copy_from_slice(&(map_ids.as_mut_ptr() as u64).to_le_bytes());
        info_by_fd(fd.as_raw_fd(), &mut b2)?;
        map_ids.truncate(u32_at(&b2, 52).min(nr_maps) as usize);
    }
    Ok(ProgInfo {
        prog_type: u32_at(&b, 0),
        id: u32_at(&b, 4),
        tag: b[8..16].iter().map(|x| format!("{x:02x}")).collect(),
        bytes_jited: u32_at(&b, 16),
        bytes_xlated: u32_at(&b, 20),
        load_time: u64_at(&b, 40),
        created_by_uid: u32_at(&b, 48),
        map_ids,
        name: name_at(&b, 64),
        gpl_compatible: u32_at(&b, 84) & 1 != 0,
        btf_id: u32_at(&b, 128),
        run_time_ns: u64_at(&b, 192),
        run_cnt: u64_at(&b, 200),
        verified_insns: u32_at(&b, 216),
    })
}

/// Describes the map behind `fd`.
pub fn map_info(fd: &OwnedFd) -> R<MapInfo> {
    let mut b = vec![0u8; 88];
    info_by_fd(fd.as_raw_fd(), &mut b)?;
    Ok(MapInfo {
        map_type: u32_at(&b, 0),
        id: u32_at(&b, 4),
        key_size: u32_at(&b, 8),
        value_size: u32_at(&b, 12),
        max_entries: u32_at(&b, 16),
        flags: u32_at(&b, 20),
        name: name_at(&b, 24),
        btf_id: u32_at(&b, 64),
        btf_key_type_id: u32_at(&b, 68),
        btf_value_type_id: u32_at(&b, 72),
    })
}

/// Describes the link behind `fd`.
pub fn link_info(fd: &OwnedFd) -> R<LinkInfo> {
    use oxbpf_abi::link_type as lt;
    let mut b = vec![0u8; 64];
    info_by_fd(fd.as_raw_fd(), &mut b)?;
    let link_type = u32_at(&b, 0);
    let mut info = LinkInfo {
        link_type,
        id: u32_at(&b, 4),
        prog_id: u32_at(&b, 8),
        attach_type: None,
        ifindex: None,
        cgroup_id: None,
        tp_name: None,
    };
    match link_type {
        lt::RAW_TRACEPOINT => {
            let mut name = vec![0u8; 256];
            let mut b2 = vec![0u8; 64];
            b2[16..24].copy_from_slice(&(name.as_mut_ptr() as u64).to_le_bytes());
            b2[24..28].copy_from_slice(&(name.len() as u32).to_le_bytes());
            if info_by_fd(fd.as_raw_fd(), &mut b2).is_ok() {
                let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
                info.tp_name = Some(String::from_utf8_lossy(&name[..end]).into_owned());
            }
        }
        lt::TRACING => info.attach_type = Some(u32_at(&b, 16)),
        lt::CGROUP => {
            info.cgroup_id = Some(u64_at(&b, 16));
            info.attach_type = Some(u32_at(&b, 24));
        }
        lt::XDP => info.ifindex = Some(u32_at(&b, 16)),
        lt::TCX | lt::NETKIT => {
            info.ifindex = Some(u32_at(&b, 16));
            info.attach_type = Some(u32_at(&b, 20));
        }
        _ => {}
    }
    Ok(info)
}

/// `BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)`: the kernel counts every
/// program's `run_time_ns` and `run_cnt` (as `kernel.bpf_stats_enabled=1`
/// does) for as long as the returned descriptor is open.
pub fn enable_run_time_stats() -> R<OwnedFd> {
    #[repr(C)]
    struct A {
        stats_type: u32,
    }
    let mut a = A { stats_type: 0 };
    sys(cmd::ENABLE_STATS, "BPF_ENABLE_STATS", &mut a).map(fd_of)
}

/// Every program in the kernel (those that vanish while listed are
/// skipped).
pub fn programs() -> R<Vec<ProgInfo>> {
    let (ids, _, _) = crate::object_ids()?;
    Ok(ids
        .into_iter()
        .filter_map(|id| prog_fd(id).and_then(|fd| prog_info(&fd)).ok())
        .collect())
}

/// Every map in the kernel.
pub fn maps() -> R<Vec<MapInfo>> {
    let (_, ids, _) = crate::object_ids()?;
    Ok(ids
        .into_iter()
        .filter_map(|id| map_fd(id).and_then(|fd| map_info(&fd)).ok())
        .collect())
}

/// Every link in the kernel.
pub fn links() -> R<Vec<LinkInfo>> {
    let (_, _, ids) = crate::object_ids()?;
    Ok(ids
        .into_iter()
        .filter_map(|id| link_fd(id).and_then(|fd| link_info(&fd)).ok())
        .collect())
}

/// Map `id`, opened for lookups and updates.
pub fn open_map(id: u32) -> R<(Map, MapInfo)> {
    let fd = map_fd(id)?;
    let info = map_info(&fd)?;
    let spec = MapSpec {
        name: info.name.clone(),
        map_type: info.map_type,
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        flags: info.flags,
        ..Default::default()
    };
    Ok((Map { fd, spec }, info))
}

/// The raw BTF of BTF object `id` (a map's or program's `btf_id`).
pub fn btf_data(id: u32) -> R<Vec<u8>> {
    let fd = fd_by_id(cmd::BTF_GET_FD_BY_ID, "BPF_BTF_GET_FD_BY_ID", id)?;
    // struct bpf_btf_info { __aligned_u64 btf; __u32 btf_size; __u32 id; ... }
    let mut b = vec![0u8; 40];
    info_by_fd(fd.as_raw_fd(), &mut b)?;
    let size = u32_at(&b, 8) as usize;
    let mut data = vec![0u8; size];
    let mut b2 = vec![0u8; 40];
    b2[0..8].copy_from_slice(&(data.as_mut_ptr() as u64).to_le_bytes());
    b2[8..12].copy_from_slice(&(size as u32).to_le_bytes());
    info_by_fd(fd.as_raw_fd(), &mut b2)?;
    Ok(data)
}

/// Detaches link `id` (`BPF_LINK_DETACH`): the program stops running
/// there, whoever holds the link.
pub fn detach_link(id: u32) -> R<()> {
    let fd = link_fd(id)?;
    crate::Link { fd }.detach()
}

/// A "no such object" error for id lookups, for callers that name it.
pub fn is_missing(e: &SysError) -> bool {
    e.errno == libc::ENOENT
}
