//! Every `--json` line parses, with the fields docs/json.md lists.

mod common;

use std::process::Command;

fn lines(args: &[&str]) -> Vec<serde_json::Value> {
    let o = Command::new(common::oxbpf_bin())
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn has(v: &serde_json::Value, fields: &[&str]) {
    for f in fields {
        assert!(v.get(f).is_some(), "{f} missing in {v}");
    }
}

#[test]
fn verify_json_has_the_documented_fields() {
    let rows = lines(&["verify", "--json", "tests/soundness/refs.o"]);
    assert!(rows.len() > 10);
    let base = [
        "object",
        "program",
        "section",
        "type",
        "verdict",
        "insns_processed",
        "time_us",
        "message",
    ];
    for r in &rows {
        has(r, &base);
    }
    let leak = rows.iter().find(|r| r["program"] == "leak").unwrap();
    assert_eq!(leak["verdict"], "reject");
    has(
        leak,
        &[
            "pc",
            "insn",
            "reason",
            "source",
            "registers",
            "path",
            "related",
        ],
    );
    assert_eq!(leak["source"]["line"], 28);
    assert_eq!(leak["registers"]["r10"], "fp0");
    assert_eq!(leak["related"][0]["pc"], 4);
    let err = lines(&["verify", "--json", "missing.o"]);
    assert_eq!(err[0]["verdict"], "error");
    assert_eq!(err[0]["message"], "no such file or directory");
}

#[test]
fn verify_stats_reports_states_and_pruning() {
    let rows = lines(&["verify", "--json", "--stats", "tests/soundness/refs.o"]);
    assert!(rows.len() > 10);
    for r in &rows {
        let s = &r["stats"];
        has(
            s,
            &[
                "insns_processed",
                "total_states",
                "peak_states",
                "max_states_per_insn",
                "pruned",
            ],
        );
        assert_eq!(s["insns_processed"], r["insns_processed"], "{r}");
        let (total, peak, per) = (
            s["total_states"].as_u64().unwrap(),
            s["peak_states"].as_u64().unwrap(),
            s["max_states_per_insn"].as_u64().unwrap(),
        );
        assert!(per <= peak && peak <= total, "{r}");
    }
    // Without --stats the rows stay as they were.
    let plain = lines(&["verify", "--json", "tests/soundness/refs.o"]);
    assert!(plain.iter().all(|r| r.get("stats").is_none()));
    // The text form prints one stats line under each verdict.
    let o = Command::new(common::oxbpf_bin())
        .args(["verify", "--stats", "-p", "leak", "tests/soundness/refs.o"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("  stats: processed 20 insns, max_states_per_insn ")),
        "{text}"
    );
}

#[test]
fn run_json_has_the_documented_records() {
    let rows = lines(&[
        "run",
        "examples/c/ringbuf_events.o",
        "--pcap",
        "examples/pcap/mixed.pcap",
        "--json",
        "--dump-maps",
    ]);
    let runs: Vec<_> = rows.iter().filter(|r| r.get("index").is_some()).collect();
    assert!(!runs.is_empty());
    for r in &runs {
        has(
            r,
            &["index", "return_value", "executed", "verdict", "packet"],
        );
    }
    assert!(
        rows.iter()
            .any(|r| r.get("ringbuf").is_some() && r["data"].is_string())
    );
    assert!(
        rows.iter()
            .any(|r| r.get("map").is_some() && r["entries"].is_array())
    );
    let prog = std::env::temp_dir().join(format!("oxbpf-json-{}.s", std::process::id()));
    std::fs::write(&prog, "r0 = 7\nexit\n").unwrap();
    let raw = lines(&["run", "--json", prog.to_str().unwrap()]);
    has(&raw[0], &["engine", "return_value", "executed"]);
    assert_eq!(raw[0]["return_value"], 7);
    let _ = std::fs::remove_file(prog);
}

/// Map dumps decode keys and values through the object's BTF, as bpftool
/// does: structs with field names, `__u8` arrays as arrays, global data by
/// variable name; hex stays beside them in JSON.
#[test]
fn map_dumps_are_decoded_through_btf() {
    let rows = lines(&[
        "run",
        "examples/c/lru_flows.o",
        "--pcap",
        "examples/pcap/mixed.pcap",
        "--json",
        "--dump-maps",
    ]);
    let flows = rows
        .iter()
        .find(|r| r["map"] == "flows")
        .expect("flows map");
    let entries = flows["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let ssh = entries
        .iter()
        .find(|e| e["key_btf"]["dport"] == 22)
        .expect("the flow to port 22");
    assert_eq!(ssh["key_btf"]["proto"], 6);
    assert_eq!(ssh["key_btf"]["sport"], 1234);
    assert_eq!(ssh["key_btf"]["pad"], serde_json::json!([0, 0, 0]));
    assert_eq!(ssh["value_btf"]["packets"], 1);
    assert_eq!(ssh["value_btf"]["bytes"], 54);
    assert_eq!(ssh["key"].as_str().unwrap().len(), 32, "hex stays");

    let text = Command::new(common::oxbpf_bin())
        .args([
            "run",
            "examples/c/xdp_firewall.o",
            "--pcap",
            "examples/pcap/mixed.pcap",
            "--dump-maps",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("map blocklist (1 entry):\n  1107296266 => 2\n"),
        "{text}"
    );
    assert!(text.contains("  0 => 7\n  1 => 1\n"), "{text}");
    assert!(
        text.contains("map .rodata (1 entry):\n  00000000 => {seed_block: 1107296266}\n"),
        "{text}"
    );
}
