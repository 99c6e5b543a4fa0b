//! Loading an [`oxbpf_obj::Object`] into the kernel: maps created (inner
//! maps first, ring buffer and perf array sizes made valid, global data
//! filled), map references patched to fds, program BTF with func/line info
//! and CO-RE relocations (which the kernel applies against its own BTF)
//! handed over, and `expected_attach_type` set from the section name.
//!
//! Everything created is owned by the returned [`KernelObject`] and closed
//! when it drops; a failure half way closes what was already created.

use oxbpf_abi::map_type;
use std::os::fd::{AsRawFd, RawFd};

use oxbpf_obj::{Object, ProgramDef, ProgramType, RawInsn};

use crate::{Btf, Map, MapSpec, SysError, Verdict, load_program};

const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_PSEUDO_MAP_VALUE: u8 = 2;
const BPF_PSEUDO_MAP_IDX: u8 = 5;
const BPF_PSEUDO_MAP_IDX_VALUE: u8 = 6;
const BPF_PSEUDO_BTF_ID: u8 = 3;

/// A map that could not be created, and why.
#[derive(Debug)]
pub struct MapFailure {
    pub name: String,
    pub error: SysError,
}

/// One program and what the kernel's verifier said.
#[derive(Debug)]
pub struct KernelProgram {
    pub def: ProgramDef,
    pub kind: ProgramType,
    pub verdict: Verdict,
}

/// An object in the kernel.
#[derive(Debug)]
pub struct KernelObject {
    /// By map index; None where creation failed (see `map_failures`).
    pub maps: Vec<Option<Map>>,
    pub map_names: Vec<String>,
    pub map_failures: Vec<MapFailure>,
    pub btf: Option<Btf>,
    /// Why the object's BTF was not used, if it was not.
    pub btf_error: Option<SysError>,
    pub programs: Vec<KernelProgram>,
    /// Maps pinned by name (`LIBBPF_PIN_BY_NAME`): reused from the pin
    /// root, or created and pinned there by this load.
    pub pinned: Vec<PinnedMap>,
}

/// A map of the object pinned by name.
#[derive(Debug)]
pub struct PinnedMap {
    pub name: String,
    pub path: String,
    /// The pin was there before and its map is the one in use.
    pub reused: bool,
    /// A pin this load made: removed when the object is dropped unless
    /// [`KernelObject::keep_pins`] kept it.
    pin: Option<crate::Pin>,
}

impl KernelObject {
    /// Leaves the pins this load made in place (libbpf keeps pinned-by-name
    /// maps pinned after a successful load); returns their paths.
    pub fn keep_pins(&mut self) -> Vec<String> {
        self.pinned
            .iter_mut()
            .filter_map(|p| p.pin.take().map(crate::Pin::keep))
            .collect()
    }
}

/// How an object is loaded.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoadOptions<'a> {
    /// The type for every program, whatever its section says.
    pub override_type: Option<ProgramType>,
    /// Where maps marked `LIBBPF_PIN_BY_NAME` are pinned and found
    /// (libbpf's `pin_root_path`, /sys/fs/bpf by default); `None` leaves
    /// them unpinned.
    pub pin_root: Option<&'a std::path::Path>,
}

/// `pinning` value of a BTF map definition that pins it by name.
pub const LIBBPF_PIN_BY_NAME: u32 = 1;

/// Map types whose key and value the kernel accepts BTF for (libbpf
/// leaves it off the others: fd arrays, queues, ring buffers...).
fn map_takes_btf(t: u32) -> bool {
    use map_type::*;
    matches!(
        t,
        HASH | ARRAY
            | PERCPU_HASH
            | PERCPU_ARRAY
            | LRU_HASH
            | LRU_PERCPU_HASH
            | LPM_TRIE
            | CGROUP_STORAGE
            | PERCPU_CGROUP_STORAGE
            | SK_STORAGE
            | INODE_STORAGE
            | TASK_STORAGE
            | CGRP_STORAGE
    )
}

fn is_map_of_maps(t: u32) -> bool {
    matches!(t, map_type::ARRAY_OF_MAPS | map_type::HASH_OF_MAPS)
}

/// `expected_attach_type` for section names whose type needs one.
pub fn expected_attach_type(section: &str) -> u32 {
    use oxbpf_abi::attach_type as a;
    const TABLE: &[(&str, u32)] = &[
        ("cgroup_skb/ingress", a::CGROUP_INET_INGRESS),
        ("cgroup/skb/ingress", a::CGROUP_INET_INGRESS),
        ("cgroup_skb/egress", a::CGROUP_INET_EGRESS),
        ("cgroup/skb/egress", a::CGROUP_INET_EGRESS),
        ("cgroup/sock_create", a::CGROUP_INET_SOCK_CREATE),
        ("cgroup/sock", a::CGROUP_INET_SOCK_CREATE),
        ("cgroup/sock_release", a::CGROUP_INET_SOCK_RELEASE),
        ("cgroup/connect_unix", a::CGROUP_UNIX_CONNECT),
        ("cgroup/sendmsg_unix", a::CGROUP_UNIX_SENDMSG),
        ("cgroup/recvmsg_unix", a::CGROUP_UNIX_RECVMSG),
        ("cgroup/getpeername_unix", a::CGROUP_UNIX_GETPEERNAME),
        ("cgroup/getsockname_unix", a::CGROUP_UNIX_GETSOCKNAME),
        ("sk_skb/stream_parser", a::SK_SKB_STREAM_PARSER),
        ("sk_skb/stream_verdict", a::SK_SKB_STREAM_VERDICT),
        ("sk_skb/verdict", a::SK_SKB_VERDICT),
        ("cgroup/dev", a::CGROUP_DEVICE),
        ("sk_msg", a::SK_MSG_VERDICT),
        ("cgroup/bind4", a::CGROUP_INET4_BIND),
        ("cgroup/bind6", a::CGROUP_INET6_BIND),
        ("cgroup/connect4", a::CGROUP_INET4_CONNECT),
        ("cgroup/connect6", a::CGROUP_INET6_CONNECT),
        ("cgroup/post_bind4", a::CGROUP_INET4_POST_BIND),
        ("cgroup/post_bind6", a::CGROUP_INET6_POST_BIND),
        ("cgroup/sendmsg4", a::CGROUP_UDP4_SENDMSG),
        ("cgroup/sendmsg6", a::CGROUP_UDP6_SENDMSG),
        ("lirc_mode2", a::LIRC_MODE2),
        ("flow_dissector", a::FLOW_DISSECTOR),
        ("cgroup/sysctl", a::CGROUP_SYSCTL),
        ("cgroup/recvmsg4", a::CGROUP_UDP4_RECVMSG),
        ("cgroup/recvmsg6", a::CGROUP_UDP6_RECVMSG),
        ("cgroup/getsockopt", a::CGROUP_GETSOCKOPT),
        ("cgroup/setsockopt", a::CGROUP_SETSOCKOPT),
        ("tp_btf", a::TRACE_RAW_TP),
        ("uprobe.multi", a::TRACE_UPROBE_MULTI),
        ("uretprobe.multi", a::TRACE_UPROBE_MULTI),
        ("uprobe.multi.s", a::TRACE_UPROBE_MULTI),
        ("uretprobe.multi.s", a::TRACE_UPROBE_MULTI),
        ("kprobe.multi", a::TRACE_KPROBE_MULTI),
        ("kprobe.session", a::TRACE_KPROBE_SESSION),
        ("kretprobe.multi", a::TRACE_KPROBE_MULTI),
        ("fentry", a::TRACE_FENTRY),
        ("fexit", a::TRACE_FEXIT),
        ("fmod_ret", a::MODIFY_RETURN),
        ("lsm", a::LSM_MAC),
        ("iter", a::TRACE_ITER),
        ("cgroup/getpeername4", a::CGROUP_INET4_GETPEERNAME),
        ("cgroup/getpeername6", a::CGROUP_INET6_GETPEERNAME),
        ("cgroup/getsockname4", a::CGROUP_INET4_GETSOCKNAME),
        ("cgroup/getsockname6", a::CGROUP_INET6_GETSOCKNAME),
        ("sk_lookup", a::SK_LOOKUP),
    ];
    TABLE
        .iter()
        .find(|(p, _)| section == *p || section.starts_with(&format!("{p}/")))
        .map(|(_, t)| *t)
        .unwrap_or(0)
}

/// Loads every map and program. Programs the verifier rejects are kept with
/// their verdict; map creation failures are recorded and make the programs
/// that use those maps fail with a clear message.
pub fn load_object(obj: &Object, override_type: Option<ProgramType>) -> KernelObject {
    load_object_with(
        obj,
        &LoadOptions {
            override_type,
            pin_root: None,
        },
    )
}

/// The pinned map at `path` when it matches `spec` (type, sizes, entries,
/// flags, as libbpf checks before reusing it).
fn reuse_pinned(path: &str, spec: &MapSpec) -> Result<Map, SysError> {
    let fd = crate::obj_get(path)?;
    let info = crate::info::map_info(&fd)?;
    let mismatch = [
        ("type", info.map_type, spec.map_type),
        ("key size", info.key_size, spec.key_size),
        ("value size", info.value_size, spec.value_size),
        ("max_entries", info.max_entries, spec.max_entries),
        ("flags", info.flags, spec.flags),
    ]
    .into_iter()
    .find(|(_, there, here)| there != here);
    if let Some((what, there, here)) = mismatch {
        return Err(SysError {
            command: "BPF_OBJ_GET",
            errno: libc::EINVAL,
            log: Some(format!(
                "the map pinned at {path} does not match this definition: {what} {there} there, {here} here (remove the pin to start afresh)"
            )),
        });
    }
    Ok(Map {
        fd,
        spec: spec.clone(),
    })
}

/// Loads every map and program as [`load_object`] does, with pinning.
pub fn load_object_with(obj: &Object, opts: &LoadOptions<'_>) -> KernelObject {
    let override_type = opts.override_type;
    let mut pinned = Vec::new();
    let ncpus = crate::possible_cpus() as u32;
    let mut maps: Vec<Option<Map>> = Vec::new();
    let mut failures = Vec::new();
    // BTF first: maps with typed values are created with it.
    let (btf, btf_error) = match obj.btf_for_kernel() {
        Some(b) => match Btf::load(&b) {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(e)),
        },
        None => (None, None),
    };
    for (i, d) in obj.maps.iter().enumerate() {
        let spec = d.spec().normalized(ncpus);
        let pin_path = opts
            .pin_root
            .filter(|_| {
                d.pinning == LIBBPF_PIN_BY_NAME
                    && matches!(
                        d.origin,
                        oxbpf_obj::MapOrigin::Btf | oxbpf_obj::MapOrigin::BtfAt { .. }
                    )
            })
            .map(|root| root.join(&d.name).to_string_lossy().into_owned());
        if let Some(path) = pin_path
            .as_ref()
            .filter(|p| std::path::Path::new(p).exists())
        {
            match reuse_pinned(path, &spec) {
                Ok(m) => {
                    pinned.push(PinnedMap {
                        name: d.name.clone(),
                        path: path.clone(),
                        reused: true,
                        pin: None,
                    });
                    maps.push(Some(m));
                }
                Err(error) => {
                    failures.push(MapFailure {
                        name: d.name.clone(),
                        error,
                    });
                    maps.push(None);
                }
            }
            continue;
        }
        let map_btf = btf
            .as_ref()
            .filter(|_| map_takes_btf(d.map_type))
            .map(|b| b.fd.as_raw_fd());
        // Inner map template: the BTF inner definition, or the legacy
        // inner map index, or (for defs without either) an array of u32.
        let inner_spec = match (&d.inner, &d.origin) {
            (Some(inner), _) => Some(inner.spec().normalized(ncpus)),
            (
                None,
                oxbpf_obj::MapOrigin::Legacy {
                    inner_idx: Some(ix),
                    ..
                },
            ) if is_map_of_maps(d.map_type) => obj
                .maps
                .get(*ix as usize)
                .map(|m| m.spec().normalized(ncpus)),
            _ if is_map_of_maps(d.map_type) => Some(MapSpec {
                name: format!("{}.inner", d.name),
                map_type: map_type::ARRAY,
                key_size: 4,
                value_size: 4,
                max_entries: 1,
                ..Default::default()
            }),
            _ => None,
        };
        let inner = match inner_spec {
            Some(s) => match Map::create(&s) {
                Ok(m) => Some(m),
                Err(error) => {
                    failures.push(MapFailure {
                        name: d.name.clone(),
                        error,
                    });
                    maps.push(None);
                    continue;
                }
            },
            None => None,
        };
        match Map::create_with(&spec, inner.as_ref(), map_btf) {
            Ok(m) => {
                if let Some(data) = &d.data
                    && let Err(error) = m.update(&0u32.to_le_bytes(), data, 0)
                {
                    failures.push(MapFailure {
                        name: d.name.clone(),
                        error,
                    });
                }
                if let Some(path) = pin_path {
                    match m.pin(&path) {
                        Ok(pin) => pinned.push(PinnedMap {
                            name: d.name.clone(),
                            path,
                            reused: false,
                            pin: Some(pin),
                        }),
                        Err(error) => failures.push(MapFailure {
                            name: d.name.clone(),
                            error: SysError {
                                log: Some(format!("pinning it at {path}")),
                                ..error
                            },
                        }),
                    }
                }
                maps.push(Some(m));
            }
            Err(error) => {
                failures.push(MapFailure {
                    name: d.name.clone(),
                    error,
                });
                maps.push(None);
            }
        }
        let _ = i;
    }
    let mut programs = Vec::new();
    for p in &obj.programs {
        let kind = override_type.unwrap_or(p.kind);
        let verdict = load_one(p, kind, obj, &maps, &failures, btf.as_ref());
        programs.push(KernelProgram {
            def: p.clone(),
            kind,
            verdict,
        });
    }
    // Initial prog-array and map-of-map slots, now that fds exist.
    for (i, d) in obj.maps.iter().enumerate() {
        let Some(m) = &maps[i] else { continue };
        for (slot, name) in &d.init_slots {
            let fd: Option<RawFd> = if d.map_type == map_type::PROG_ARRAY {
                programs
                    .iter()
                    .find(|p| &p.def.name == name)
                    .and_then(|p| p.verdict.prog.as_ref().ok())
                    .map(|p| p.fd.as_raw_fd())
            } else {
                obj.maps
                    .iter()
                    .position(|x| &x.name == name)
                    .and_then(|j| maps[j].as_ref())
                    .map(|m| m.fd.as_raw_fd())
            };
            if let Some(fd) = fd {
                let _ = m.update(&slot.to_le_bytes(), &(fd as u32).to_le_bytes(), 0);
            }
        }
    }
    KernelObject {
        maps,
        map_names: obj.maps.iter().map(|m| m.name.clone()).collect(),
        map_failures: failures,
        btf,
        btf_error,
        programs,
        pinned,
    }
}

fn load_one(
    p: &ProgramDef,
    kind: ProgramType,
    obj: &Object,
    maps: &[Option<Map>],
    failures: &[MapFailure],
    btf: Option<&Btf>,
) -> Verdict {
    let fail = |errno: i32, msg: String| Verdict {
        prog: Err(SysError {
            command: "BPF_PROG_LOAD",
            errno,
            log: Some(msg.clone()),
        }),
        time: std::time::Duration::ZERO,
        insns_processed: None,
        log: msg,
    };
    let mut insns = p.insns.clone();
    if let Err(why) = resolve_ksyms(p, obj, &mut insns) {
        return fail(libc::ESRCH, why);
    }
    let mut i = 0;
    while i < insns.len() {
        let ins = insns[i];
        if ins.code == 0x18 && i + 1 < insns.len() {
            match ins.src {
                BPF_PSEUDO_MAP_IDX | BPF_PSEUDO_MAP_IDX_VALUE => {
                    let idx = ins.imm as usize;
                    let Some(Some(m)) = maps.get(idx) else {
                        let name = obj.maps.get(idx).map(|m| m.name.as_str()).unwrap_or("?");
                        let why = failures
                            .iter()
                            .find(|f| f.name == name)
                            .map(|f| f.error.to_string())
                            .unwrap_or_else(|| "it does not exist".into());
                        return fail(22, format!("map `{name}` could not be created: {why}"));
                    };
                    insns[i].src = if ins.src == BPF_PSEUDO_MAP_IDX {
                        BPF_PSEUDO_MAP_FD
                    } else {
                        BPF_PSEUDO_MAP_VALUE
                    };
                    insns[i].imm = m.fd.as_raw_fd();
                }
                _ => {}
            }
            i += 2;
            continue;
        }
        i += 1;
    }
    let code: Vec<u8> = insns.iter().flat_map(|r| r.to_bytes()).collect();
    let func_info: Vec<u8> = p
        .func_info
        .iter()
        .flat_map(|f| [(f.insn).to_le_bytes(), f.type_id.to_le_bytes()].concat())
        .collect();
    let line_info: Vec<u8> = p
        .line_info
        .iter()
        .flat_map(|l| {
            [
                l.insn.to_le_bytes(),
                l.file_off.to_le_bytes(),
                l.text_off.to_le_bytes(),
                l.line_col.to_le_bytes(),
            ]
            .concat()
        })
        .collect();
    let core_relos: Vec<u8> = p
        .core_relos
        .iter()
        .flat_map(|r| {
            [
                (r.insn * 8).to_le_bytes(),
                r.type_id.to_le_bytes(),
                r.access_off.to_le_bytes(),
                r.kind.to_le_bytes(),
            ]
            .concat()
        })
        .collect();
    let spec = crate::ProgSpec {
        name: p.name.clone(),
        prog_type: kind as u32,
        expected_attach_type: expected_attach_type(&p.section),
        insns: &code,
        license: obj.license.clone().unwrap_or_default(),
        kern_version: obj.kernel_version.unwrap_or(0),
        btf_fd: btf.map(|b| b.fd.as_raw_fd()),
        func_info: if p.func_info.first().is_some_and(|f| f.insn == 0) {
            &func_info
        } else {
            &[]
        },
        line_info: if p.func_info.first().is_some_and(|f| f.insn == 0) {
            &line_info
        } else {
            &[]
        },
        core_relos: &core_relos,
        attach_btf_id: match crate::vmlinux::attach_btf_id(&p.section) {
            Ok(id) => id.unwrap_or(0),
            Err(why) => {
                return Verdict {
                    prog: Err(SysError {
                        command: "BPF_PROG_LOAD",
                        errno: libc::ESRCH,
                        log: Some(why.clone()),
                    }),
                    time: std::time::Duration::ZERO,
                    insns_processed: None,
                    log: why,
                };
            }
        },
    };
    let v = load_program(&spec);
    // Some kernels reject the object's BTF records for reasons unrelated to
    // the program (old clang output, section name quirks); the verdict that
    // matters is the program's, so retry once without BTF.
    match &v.prog {
        Err(e) if btf.is_some() && e.log.as_deref().is_some_and(is_btf_complaint) => {
            let spec = crate::ProgSpec {
                btf_fd: None,
                func_info: &[],
                line_info: &[],
                core_relos: &[],
                ..spec
            };
            load_program(&spec)
        }
        _ => v,
    }
}

/// Points the program's `__ksym` references at the running kernel, as
/// libbpf does: a typed variable or a function's address by its BTF id in
/// vmlinux (`BPF_PSEUDO_BTF_ID`), a `void` variable by its address in
/// /proc/kallsyms, a kfunc call by the function's BTF id. A weak extern the
/// kernel lacks becomes 0 (its kfunc calls stay id 0, which the kernel
/// accepts in code it proves dead); a strong one is an error naming it.
fn resolve_ksyms(p: &ProgramDef, obj: &Object, insns: &mut [RawInsn]) -> Result<(), String> {
    use oxbpf_obj::KsymKind;
    let declared = |name: &str| obj.ksyms.iter().find(|k| k.name == name);
    for (pos, name) in &p.extern_loads {
        let (kind, weak) = declared(name).map_or((KsymKind::Typeless, false), |k| (k.kind, k.weak));
        let (src, lo, hi) = match kind {
            KsymKind::Typed | KsymKind::Func => {
                let func = kind == KsymKind::Func;
                let id = crate::vmlinux::ksym_btf_id(name, func)?;
                // The kernel finds a variable's address through kallsyms,
                // which lists data symbols only with CONFIG_KALLSYMS_ALL.
                let listed = func || crate::vmlinux::kallsyms_addr(name)?.is_some();
                if id.is_some() && !listed && !weak {
                    return Err(format!(
                        "`__ksym` variable `{name}` is in the kernel's BTF but not in /proc/kallsyms, where the kernel looks its address up (it lists data symbols only when built with CONFIG_KALLSYMS_ALL); declare it `__weak` to load without it"
                    ));
                }
                match id.filter(|_| listed) {
                    Some(id) => (BPF_PSEUDO_BTF_ID, id as i32, 0),
                    None if weak => (0, 0, 0),
                    None => {
                        return Err(format!(
                            "`__ksym` {} `{name}` is not in the kernel's BTF (/sys/kernel/btf/vmlinux); declare it `__weak` to load without it",
                            if func { "function" } else { "variable" }
                        ));
                    }
                }
            }
            KsymKind::Typeless => match crate::vmlinux::kallsyms_addr(name)? {
                Some(a) => (0, a as u32 as i32, (a >> 32) as u32 as i32),
                None if weak => (0, 0, 0),
                None => {
                    return Err(format!(
                        "`__ksym` variable `{name}` is not in /proc/kallsyms (data symbols are listed there only with CONFIG_KALLSYMS_ALL); declare it `__weak` to load without it"
                    ));
                }
            },
        };
        let Some([a, b, ..]) = insns.get_mut(*pos..) else {
            return Err(format!("instruction {pos}: `{name}` is not an lddw"));
        };
        a.src = src;
        a.imm = lo;
        b.imm = hi;
    }
    for (pos, name) in &p.extern_calls {
        let weak = declared(name).is_some_and(|k| k.weak);
        let Some(ins) = insns.get_mut(*pos) else {
            continue;
        };
        match crate::vmlinux::ksym_btf_id(name, true)? {
            Some(id) => {
                ins.imm = id as i32;
                ins.off = 0;
            }
            None if weak => {}
            None => {
                return Err(format!(
                    "kfunc `{name}` is not in the kernel's BTF (/sys/kernel/btf/vmlinux); declare it `__weak` and test it with bpf_ksym_exists() to load without it"
                ));
            }
        }
    }
    Ok(())
}

fn is_btf_complaint(log: &str) -> bool {
    ["func_info", "line_info", "BTF", "btf"]
        .iter()
        .any(|w| log.lines().take(3).any(|l| l.contains(w)))
}
