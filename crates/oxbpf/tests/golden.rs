//! Golden diagnostics: `oxbpf verify` on the intentionally unsafe samples
//! (and the state log of a tricky accepted one) must print exactly what
//! `tests/golden/verifier/*` holds. Timings are blanked. After an intended
//! change of wording, regenerate with `OXBPF_BLESS=1 cargo test --test golden`
//! and review the diff.
mod common;

use std::path::Path;
use std::process::Command;

const CASES: &[(&str, &[&str])] = &[
    ("badhelpercall", &[]),
    ("badmapptr", &[]),
    ("badrelo", &[]),
    ("nullmapref", &[]),
    ("mapvalue-overrun", &[]),
    ("mapoverflow", &[]),
    ("mapunderflow", &[]),
    ("exposeptr", &[]),
    ("exposeptr2", &[]),
    ("ctxoffset", &[]),
    ("ptr_arith", &[]),
    ("packet_overflow", &[]),
    ("tail_call_bad", &[]),
    ("wronghelper", &[]),
    ("bpf2bpf", &[]),
    ("nullmapref", &["--json"]),
    ("packet_overflow", &["--json"]),
    ("correlated_branch", &["--log"]),
    ("dependent_read", &["--log"]),
];

fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        let mut l = line.to_string();
        // " (7 insns processed, 34 us)" and "\"time_us\":16.7"
        if let Some(i) = l.find(" us)") {
            let start = l[..i].rfind(", ").map(|j| j + 2).unwrap_or(i);
            l.replace_range(start..i, "T");
        }
        if let Some(i) = l.find("\"time_us\":") {
            let rest = &l[i + 10..];
            let end = rest.find(',').unwrap_or(rest.len());
            l.replace_range(i + 10..i + 10 + end, "0");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[test]
fn verifier_messages_match_the_golden_files() {
    let Some(shared) = common::shared_dir() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden/verifier");
    let bless = std::env::var_os("OXBPF_BLESS").is_some();
    let mut diffs = Vec::new();
    for (name, args) in CASES {
        let obj = shared.join(format!("ebpf-samples/build/{name}.o"));
        let out = Command::new(env!("CARGO_BIN_EXE_oxbpf"))
            .current_dir(shared.join("ebpf-samples"))
            .arg("verify")
            .args(*args)
            .arg(format!("build/{name}.o"))
            .output()
            .unwrap();
        assert!(obj.exists(), "{}", obj.display());
        let text = normalize(&String::from_utf8_lossy(&out.stdout));
        let suffix = args
            .first()
            .map(|a| a.trim_start_matches('-'))
            .unwrap_or("text");
        let file = golden.join(format!("{name}.{suffix}"));
        if bless {
            std::fs::write(&file, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        if want != text {
            diffs.push(format!(
                "{}:\n--- expected\n{want}--- got\n{text}",
                file.display()
            ));
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
