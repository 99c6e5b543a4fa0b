//! `oxbpf prog|map|link|btf` against bpftool on the same kernel objects:
//! the same programs, maps and links with the same fields, map dumps in
//! bpftool's JSON shape with the same values, and `btf dump` identical to
//! `bpftool btf dump file` on every object.

mod common;

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    assert!(
        out.status.success(),
        "{bin} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn oxbpf(args: &[&str]) -> String {
    run(common::oxbpf_bin().to_str().unwrap(), args)
}

fn bpftool_available() -> bool {
    let ok = Command::new("bpftool")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip("bpftool (Debian: bpftool) is the oracle here");
    }
    ok
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn btf_dump_matches_bpftool_on_every_object() {
    if !bpftool_available() {
        return;
    }
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut files = oxbpf_obj::object_files(&[root.join("examples")]);
    if let Some(shared) = common::shared_dir() {
        files.extend(common::objects_under(&shared.join("ebpf-samples")));
    }
    let mut compared = 0;
    for f in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "o"))
    {
        let f = f.to_str().unwrap();
        let theirs = Command::new("bpftool")
            .args(["btf", "dump", "file", f])
            .output()
            .unwrap();
        if !theirs.status.success() {
            continue; // no .BTF
        }
        assert_eq!(
            oxbpf(&["btf", "dump", f]),
            String::from_utf8(theirs.stdout).unwrap(),
            "{f}"
        );
        compared += 1;
    }
    assert!(compared >= 13, "only {compared} objects compared");
}

#[test]
fn kernel_objects_as_bpftool_sees_them() {
    if !common::kernel_available() || oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs root, bpf(2) and tracefs");
        return;
    }
    if !bpftool_available() {
        return;
    }
    let obj = oxbpf_obj::load(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/live/syscount.o"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut s = oxbpf_live::Session::load(obj, &Default::default()).unwrap();
    s.attach_all().unwrap();
    // Some getppid calls from this process, counted in `counts`.
    for _ in 0..3 {
        let _ = std::os::unix::process::parent_id();
    }
    let ours = json(&oxbpf(&["prog", "list", "--json"]));
    let theirs = json(&run("bpftool", &["prog", "list", "-j"]));
    for name in ["count_getppid", "on_exec"] {
        let pick = |v: &serde_json::Value| {
            v.as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} in {v}"))
        };
        let (o, t) = (pick(&ours), pick(&theirs));
        for field in [
            "id",
            "type",
            "name",
            "tag",
            "gpl_compatible",
            "uid",
            "bytes_xlated",
            "jited",
            "bytes_jited",
            "map_ids",
            "btf_id",
        ] {
            assert_eq!(o[field], t[field], "{name}.{field}");
        }
        let dt = o["loaded_at"].as_i64().unwrap() - t["loaded_at"].as_i64().unwrap();
        assert!(dt.abs() <= 1, "{name}.loaded_at: {o} vs {t}");
    }
    let maps = json(&oxbpf(&["map", "list", "--json"]));
    let counts = maps
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "counts")
        .unwrap()
        .clone();
    let id = counts["id"].as_u64().unwrap().to_string();
    let t = json(&run("bpftool", &["map", "show", "id", &id, "-j"]));
    for field in [
        "id",
        "type",
        "name",
        "flags",
        "bytes_key",
        "bytes_value",
        "max_entries",
        "btf_id",
    ] {
        assert_eq!(counts[field], t[field], "counts.{field}");
    }
    // Update, look up, dump (bpftool's shape and values), delete.
    let key = 0xfffe_u32
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:#04x}"))
        .collect::<Vec<_>>();
    let mut args = vec!["map", "update", id.as_str(), "--key"];
    args.extend(key.iter().map(String::as_str));
    args.extend(["--value", "0x2a", "0", "0", "0", "0", "0", "0", "0"]);
    oxbpf(&args);
    let mut args = vec!["map", "lookup", id.as_str()];
    args.extend(key.iter().map(String::as_str));
    assert!(oxbpf(&args).contains("65534 => 42"));
    assert_eq!(
        json(&oxbpf(&["map", "dump", &id, "--json"])),
        json(&run("bpftool", &["map", "dump", "id", &id, "-j"])),
        "map dump --json vs bpftool"
    );
    let mut args = vec!["map", "delete", id.as_str()];
    args.extend(key.iter().map(String::as_str));
    oxbpf(&args);
    let ours = json(&oxbpf(&["link", "list", "--json"]));
    let theirs = json(&run("bpftool", &["link", "list", "-j"]));
    let ids = |v: &serde_json::Value| -> Vec<(u64, u64)> {
        let mut x: Vec<(u64, u64)> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["id"].as_u64().unwrap(), l["prog_id"].as_u64().unwrap()))
            .collect();
        x.sort();
        x
    };
    assert_eq!(ids(&ours), ids(&theirs), "links and their programs");
    // Detach the raw tracepoint link by id: it stays listed, detached.
    let raw = ours
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["tp_name"] == "sched_process_exec")
        .unwrap()["id"]
        .as_u64()
        .unwrap()
        .to_string();
    let err = Command::new(common::oxbpf_bin())
        .args(["link", "detach", &raw])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&err.stderr)
            .contains("cannot detach a raw_tracepoint link from outside"),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    // An XDP link on lo detaches by id: its program stays loaded, the link
    // stays listed without its interface.
    let net = oxbpf_obj::load(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/live/net.o"
        ))
        .unwrap(),
    )
    .unwrap();
    let opts = oxbpf_live::Options {
        iface: Some("lo".into()),
        xdp_mode: oxbpf_live::XdpMode::Generic,
        ..Default::default()
    };
    let mut xdp = oxbpf_live::Session::load(net, &opts).unwrap();
    xdp.attach("xdp_count").unwrap();
    let links = json(&oxbpf(&["link", "list", "--json"]));
    let xdp_link = links
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["type"] == "xdp")
        .unwrap()
        .clone();
    assert_eq!(xdp_link["ifindex"], 1, "lo");
    oxbpf(&["link", "detach", &xdp_link["id"].to_string()]);
    let bpftool_xdp = json(&run(
        "bpftool",
        &["link", "show", "id", &xdp_link["id"].to_string(), "-j"],
    ));
    assert!(
        bpftool_xdp.get("ifindex").is_none_or(|i| i == 0),
        "detached: {bpftool_xdp}"
    );
    drop(xdp);
    let err = Command::new(common::oxbpf_bin())
        .args(["prog", "show", "4000000000"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&err.stderr).contains("no program with id 4000000000"));
    drop(s);
}
