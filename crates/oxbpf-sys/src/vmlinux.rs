//! The running kernel's BTF (/sys/kernel/btf/vmlinux), parsed once per
//! process, and the type ids programs attach by: `tp_btf/NAME` loads with
//! the id of the typedef `btf_trace_NAME`, `fentry/fexit/fmod_ret/lsm`
//! with the id of the function (`bpf_lsm_NAME` for LSM hooks), as libbpf
//! finds them.

use std::sync::OnceLock;

use oxbpf_obj::btf::{Btf, Kind};

/// The kernel's BTF, or why it is not available.
pub fn btf() -> Result<&'static Btf, String> {
    static BTF: OnceLock<Result<Btf, String>> = OnceLock::new();
    BTF.get_or_init(|| {
        let path = "/sys/kernel/btf/vmlinux";
        let raw = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        Btf::parse(&raw).map_err(|e| format!("{path}: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The kernel's BTF indexed for lookups on demand (a millisecond or so,
/// against ~70 ms to parse all of it): for tools that need a few types.
pub fn index() -> Result<&'static oxbpf_obj::btfindex::BtfIndex, String> {
    static INDEX: OnceLock<Result<oxbpf_obj::btfindex::BtfIndex, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let path = "/sys/kernel/btf/vmlinux";
            let raw = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            oxbpf_obj::btfindex::BtfIndex::parse(raw).map_err(|e| format!("{path}: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The kernel's BTF as a shared index, for the verifier's typed kernel
/// pointers (`oxbpf_verifier::Options::kernel_btf`).
pub fn shared() -> Result<std::sync::Arc<oxbpf_obj::core::KernelBtf>, String> {
    static SHARED: OnceLock<Result<std::sync::Arc<oxbpf_obj::core::KernelBtf>, String>> =
        OnceLock::new();
    SHARED
        .get_or_init(|| {
            index().map(|i| std::sync::Arc::new(oxbpf_obj::core::KernelBtf::new(i.clone())))
        })
        .as_ref()
        .map(std::sync::Arc::clone)
        .map_err(Clone::clone)
}

/// BTF read from a file (a `vmlinux` BTF blob saved from another kernel,
/// as `/sys/kernel/btf/vmlinux` is), indexed for the verifier.
pub fn from_file(
    path: &std::path::Path,
) -> Result<std::sync::Arc<oxbpf_obj::core::KernelBtf>, String> {
    let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    oxbpf_obj::btfindex::BtfIndex::parse(raw)
        .map(|i| std::sync::Arc::new(oxbpf_obj::core::KernelBtf::new(i)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The kernel BTF id a program of this section attaches by, when its
/// section is one of the BTF-attached kinds: `Ok(None)` for other
/// sections, `Err` naming what the kernel lacks.
pub fn attach_btf_id(section: &str) -> Result<Option<u32>, String> {
    let (head, target) = match section.split_once('/') {
        Some((h, t)) if !t.is_empty() => (h, t),
        _ => return Ok(None),
    };
    let (name, want_func) = match head {
        "tp_btf" => (format!("btf_trace_{target}"), false),
        "fentry" | "fexit" | "fmod_ret" | "fentry.s" | "fexit.s" | "fmod_ret.s" => {
            (target.to_string(), true)
        }
        "lsm" | "lsm.s" | "lsm_cgroup" => (format!("bpf_lsm_{target}"), true),
        _ => return Ok(None),
    };
    let btf = btf()?;
    btf.types
        .iter()
        .position(|t| {
            t.name == name
                && if want_func {
                    matches!(t.kind, Kind::Func { .. })
                } else {
                    matches!(t.kind, Kind::Typedef { .. })
                }
        })
        .map(|i| Some(i as u32))
        .ok_or_else(|| match head {
            "tp_btf" => format!("the kernel has no BTF tracepoint `{target}` (no typedef {name} in /sys/kernel/btf/vmlinux)"),
            _ => format!("the kernel has no function `{name}` in /sys/kernel/btf/vmlinux"),
        })
}

/// The vmlinux BTF id of the variable (`func` false) or function named
/// `name`; `Ok(None)` when the kernel has none, `Err` when it has no BTF.
pub fn ksym_btf_id(name: &str, func: bool) -> Result<Option<u32>, String> {
    let btf = btf()?;
    Ok(btf
        .types
        .iter()
        .position(|t| {
            t.name == name
                && if func {
                    matches!(t.kind, Kind::Func { .. })
                } else {
                    matches!(t.kind, Kind::Var { .. })
                }
        })
        .map(|i| i as u32))
}

/// The address of kernel symbol `name` in /proc/kallsyms (read once);
/// `Ok(None)` when it is not there.
pub fn kallsyms_addr(name: &str) -> Result<Option<u64>, String> {
    static SYMS: OnceLock<Result<std::collections::HashMap<String, u64>, String>> = OnceLock::new();
    let syms = SYMS
        .get_or_init(|| {
            let text = std::fs::read_to_string("/proc/kallsyms")
                .map_err(|e| format!("/proc/kallsyms: {e}"))?;
            let mut m = std::collections::HashMap::new();
            for line in text.lines() {
                let mut f = line.split_whitespace();
                let (Some(addr), Some(_), Some(sym)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                if let Ok(a) = u64::from_str_radix(addr, 16) {
                    m.entry(sym.to_string()).or_insert(a);
                }
            }
            Ok(m)
        })
        .as_ref()
        .map_err(Clone::clone)?;
    match syms.get(name) {
        Some(0) => Err(format!(
            "/proc/kallsyms shows `{name}` at address 0: kernel.kptr_restrict hides addresses from this user"
        )),
        Some(&a) => Ok(Some(a)),
        None => Ok(None),
    }
}

/// Whether this kernel can attach fentry/fexit programs (BPF trampolines),
/// found the way libbpf-tools' `fentry_can_attach` finds it: a minimal
/// fentry program loaded for a kernel function and attached. Probed once.
pub fn trampolines() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let id = ["bpf_fentry_test1", "do_unlinkat", "vfs_read"]
                .iter()
                .find_map(|f| ksym_btf_id(f, true).ok().flatten())
                .ok_or("no kernel function in BTF to probe fentry with")?;
            // r0 = 0; exit
            let insns: Vec<u8> =
                [[0xb7u8, 0, 0, 0, 0, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]].concat();
            let spec = crate::ProgSpec {
                name: "oxbpf_probe".into(),
                prog_type: oxbpf_abi::prog_type::TRACING,
                expected_attach_type: oxbpf_abi::attach_type::TRACE_FENTRY,
                insns: &insns,
                license: "GPL".into(),
                kern_version: 0,
                btf_fd: None,
                func_info: &[],
                line_info: &[],
                core_relos: &[],
                attach_btf_id: id,
            };
            let v = crate::load_program(&spec);
            let prog = v
                .prog
                .map_err(|e| match (e.errno, crate::log_summary(&v.log)) {
                    (524 | 95, _) => "this kernel has no BPF trampolines".to_string(),
                    (errno, "") => format!(
                        "this kernel does not load fentry programs (BPF trampolines): {}",
                        std::io::Error::from_raw_os_error(errno)
                    ),
                    (_, why) => format!("an fentry program does not load here: {why}"),
                })?;
            crate::perf::raw_tracepoint_open(&prog, None)
                .map(drop)
                .map_err(|e| match e.errno {
                    524 | 95 => "this kernel has no BPF trampolines".to_string(),
                    _ => format!("an fentry program does not attach here: {e}"),
                })
        })
        .clone()
}
