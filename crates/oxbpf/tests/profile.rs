//! `oxbpf run … --profile`: the counts add up to the instructions every
//! run reports executing, the hottest source lines come from BTF line info
//! (text from the source file beside the object when BTF has none), and
//! the HTML page holds one row per instruction with the same counts.

mod common;

use std::process::Command;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn profile_counts_add_up_and_name_source_lines() {
    let dir = std::env::temp_dir().join(format!("oxbpf-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("p.html");
    let out = Command::new(common::oxbpf_bin())
        .current_dir(root())
        .args([
            "run",
            "examples/c/xdp_firewall.o",
            "--pcap",
            "examples/pcap/mixed.pcap",
            "--profile",
            "--html",
        ])
        .arg(&html)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each run says how many instructions it executed.
    let per_run: u64 = text
        .lines()
        .filter(|l| l.starts_with("run "))
        .map(|l| {
            let n = l.rsplit(", ").next().unwrap();
            n.trim_end_matches(" insns)").parse::<u64>().unwrap()
        })
        .sum();
    let head = text
        .lines()
        .find(|l| l.starts_with("profile of `xdp_firewall`"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        head.contains(&format!("8 runs, {per_run} instructions executed")),
        "{head} vs {per_run}"
    );
    // The hottest line is a source line with its text.
    let hot = text
        .lines()
        .skip_while(|l| !l.starts_with("hottest source lines:"))
        .nth(2)
        .unwrap();
    assert!(hot.contains(".c:") || hot.contains(".h:"), "{hot}");
    assert!(
        text.contains("__u32 src = ip->saddr;"),
        "source text beside the object:\n{text}"
    );
    // Instruction rows: counts sum to the total.
    let listed: u64 = text
        .lines()
        .skip_while(|l| *l != "instructions:")
        .skip(1)
        .filter(|l| l.contains("%  ") && !l.trim_start().starts_with(';'))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(listed, per_run);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    let counts: u64 = page
        .split("data-count=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counts, per_run);
    assert!(page.contains("id=\"lines\""));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn profile_refuses_the_kernel_engine() {
    let o = Command::new(common::oxbpf_bin())
        .current_dir(root())
        .args([
            "run",
            "examples/c/xdp_firewall.o",
            "--profile",
            "--engine",
            "kernel",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the kernel"));
}
