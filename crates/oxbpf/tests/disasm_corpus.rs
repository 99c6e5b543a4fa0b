//! The disassembler against llvm-objdump-19, and assemble(disassemble(x)) == x,
//! over every sample object in ../shared/ebpf-samples (outside invalid/).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use oxbpf_isa::{decode, listing, raw_slots};

/// Parses `llvm-objdump -d` output into (section, slot) -> instruction text,
/// dropping llvm's `<symbol+off>` target annotations.
fn parse_objdump(text: &str) -> BTreeMap<(String, usize), String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("Disassembly of section ") {
            section = s.trim_end_matches(':').to_string();
            continue;
        }
        let t = line.trim_start();
        let Some((idx, rest)) = t.split_once(':') else {
            continue;
        };
        let Ok(idx) = idx.parse::<usize>() else {
            continue;
        };
        let mut insn = rest.trim().to_string();
        if insn.ends_with('>')
            && let Some(p) = insn.rfind(" <")
        {
            insn.truncate(p);
        }
        out.insert((section.clone(), idx), insn);
    }
    out
}

#[test]
fn disassembly_matches_llvm_objdump() {
    let Some(objects) = common::valid_samples() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    if Command::new("llvm-objdump-19")
        .arg("--version")
        .output()
        .is_err()
    {
        return common::skip("llvm-objdump-19 not installed (Debian package llvm-19)");
    }
    let mut compared = 0;
    let mut mismatches = Vec::new();
    let tmp = std::env::temp_dir().join(format!("oxbpf-disasm-{}", std::process::id()));
    for obj in &objects {
        // llvm-objdump cannot read objects that older LLVM wrote with
        // e_machine 0: it disassembles a copy marked EM_BPF (247) instead.
        let mut for_llvm = obj.clone();
        let raw = std::fs::read(obj).unwrap();
        if raw.len() > 20 && raw[..4] == *b"\x7fELF" && raw[18] == 0 && raw[19] == 0 {
            std::fs::create_dir_all(&tmp).unwrap();
            let mut patched = raw.clone();
            patched[18] = 247;
            for_llvm = tmp.join(obj.file_name().unwrap());
            std::fs::write(&for_llvm, patched).unwrap();
        }
        let out = Command::new("llvm-objdump-19")
            .args(["-d", "--no-show-raw-insn"])
            .arg(&for_llvm)
            .output()
            .expect("run llvm-objdump-19");
        let theirs = parse_objdump(&String::from_utf8_lossy(&out.stdout));
        let bytes = std::fs::read(obj).unwrap();
        let sections =
            oxbpf_obj::code_sections(&bytes).unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
        let mut ours = BTreeMap::new();
        for s in &sections {
            let insns = decode(&raw_slots(&s.data).unwrap())
                .unwrap_or_else(|e| panic!("{} section {}: {e}", obj.display(), s.name));
            for l in insns {
                ours.insert((s.name.clone(), l.index), l.insn.to_string());
            }
        }
        for (key, text) in &theirs {
            compared += 1;
            if ours.get(key) != Some(text) {
                mismatches.push(format!(
                    "{} {}:{}: llvm `{text}`, oxbpf `{}`",
                    obj.display(),
                    key.0,
                    key.1,
                    ours.get(key).map(String::as_str).unwrap_or("<missing>")
                ));
            }
        }
        for key in ours.keys() {
            if !theirs.contains_key(key) {
                mismatches.push(format!(
                    "{} {}:{}: not in llvm output",
                    obj.display(),
                    key.0,
                    key.1
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(compared > 5000, "only {compared} instructions compared");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    eprintln!(
        "{compared} instructions match llvm-objdump-19 in {} objects",
        objects.len()
    );
}

#[test]
fn assemble_of_disassembly_round_trips() {
    let Some(objects) = common::valid_samples() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    let mut sections_checked = 0;
    for obj in &objects {
        let bytes = std::fs::read(obj).unwrap();
        for s in oxbpf_obj::code_sections(&bytes).unwrap() {
            let insns = decode(&raw_slots(&s.data).unwrap()).unwrap();
            let text = listing(&insns);
            let again = oxbpf_asm::assemble_bytes(&text)
                .unwrap_or_else(|e| panic!("{} section {}: {e}", obj.display(), s.name));
            assert!(
                again == s.data,
                "{} section {}: round trip differs",
                obj.display(),
                s.name
            );
            sections_checked += 1;
        }
    }
    assert!(sections_checked > 100);
}
