//! Values for `extern ... __kconfig` variables, as libbpf provides them:
//! the running kernel's configuration (/proc/config.gz, else
//! /boot/config-RELEASE) and the loader's own `LINUX_*` facts.

use std::collections::HashMap;
use std::io::Read;

/// The running kernel's release (`uname -r`), e.g. `6.18.0-1-amd64`.
pub fn kernel_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

/// `KERNEL_VERSION(a, b, c)` of the running kernel (from uname's release;
/// the sublevel is capped at 255, as the kernel's macro does).
pub fn kernel_version() -> Option<u32> {
    let release = kernel_release()?;
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let a: u32 = parts.next()?.parse().ok()?;
    let b: u32 = parts.next()?.parse().ok()?;
    let c: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    Some((a << 16) | (b << 8) | c.min(255))
}

/// Parses `CONFIG_X=value` lines (comments and `# CONFIG_X is not set`
/// skipped: unset options are absent).
pub fn parse_config(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| l.starts_with("CONFIG_"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The running kernel's configuration, when it exposes one.
pub fn kernel_config() -> Option<HashMap<String, String>> {
    if let Ok(gz) = std::fs::read("/proc/config.gz") {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .is_ok()
        {
            return Some(parse_config(&text));
        }
    }
    let release = kernel_release()?;
    let text = std::fs::read_to_string(format!("/boot/config-{release}")).ok()?;
    Some(parse_config(&text))
}

/// Every value a kconfig extern may ask for: the kernel's CONFIG_*
/// options plus `LINUX_KERNEL_VERSION`, `LINUX_HAS_BPF_COOKIE` and
/// `LINUX_HAS_SYSCALL_WRAPPER` (as libbpf computes them).
pub fn values() -> HashMap<String, String> {
    let mut v = kernel_config().unwrap_or_default();
    if let Some(k) = kernel_version() {
        v.insert("LINUX_KERNEL_VERSION".into(), k.to_string());
        // BPF cookies arrived in 5.15.
        let cookie = k >= (5 << 16) | (15 << 8);
        v.insert(
            "LINUX_HAS_BPF_COOKIE".into(),
            if cookie { "y" } else { "n" }.into(),
        );
    }
    // Syscalls go through pt_regs wrappers on x86-64 since 4.17.
    let wrapper =
        std::path::Path::new("/sys/kernel/btf/vmlinux").exists() && cfg!(target_arch = "x86_64");
    v.insert(
        "LINUX_HAS_SYSCALL_WRAPPER".into(),
        if wrapper { "y" } else { "n" }.into(),
    );
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines() {
        let c = parse_config(
            "# comment\nCONFIG_BPF=y\nCONFIG_HZ=250\n# CONFIG_KPROBES is not set\nCONFIG_LOCALVERSION=\"-x\"\n",
        );
        assert_eq!(c["CONFIG_BPF"], "y");
        assert_eq!(c["CONFIG_HZ"], "250");
        assert_eq!(c["CONFIG_LOCALVERSION"], "\"-x\"");
        assert!(!c.contains_key("CONFIG_KPROBES"));
    }

    #[test]
    fn this_kernel_has_a_version_and_a_config() {
        assert!(kernel_version().unwrap() >= 5 << 16);
        let v = values();
        assert_eq!(v["LINUX_HAS_BPF_COOKIE"], "y");
        if std::path::Path::new("/proc/config.gz").exists() {
            assert_eq!(v.get("CONFIG_BPF").map(String::as_str), Some("y"));
        }
    }
}
