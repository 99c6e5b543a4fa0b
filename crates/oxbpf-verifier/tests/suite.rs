//! The verifier's rule suite: tests/verifier/*.s, one small program per
//! rule. Each file's header says what to expect:
//!
//! ```text
//! # rule: what the program does wrong (or right)
//! # expect: reject <text the rejection must contain> | accept
//! # type: xdp | tc | socket | kprobe | cgroup_skb ...   (default: raw, r1 = 64 bytes)
//! # maps: hash 4 8 16; array 4 64 4 ro                   (kind key value max [ro] [btf] [lock=OFF])
//! # policy: unprivileged                                 (default: privileged)
//! # license: MIT                                         (default: GPL)
//! # max-insns: 20000
//! # attach: connect4                                     (a cgroup program's attach point)
//! # loops: widen                                         (loops by widening, Options::widen_loops)
//! ```

use std::path::PathBuf;

use oxbpf_obj::ProgramType;
use oxbpf_verifier::{GlobalArg, GlobalFunc, MapInfo, Options, verify};

fn map_kind(k: &str) -> u32 {
    match k {
        "hash" => 1,
        "array" => 2,
        "prog_array" => 3,
        "perf_event_array" => 4,
        "percpu_array" => 6,
        "ringbuf" => 27,
        "queue" => 22,
        other => panic!("unknown map kind {other}"),
    }
}

struct Case {
    name: String,
    expect_accept: bool,
    expect_text: String,
    opts: Options,
    code: Vec<u8>,
}

fn load(path: &PathBuf) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let mut opts = Options {
        raw_mem_len: Some(64),
        ..Default::default()
    };
    let (mut accept, mut expect) = (true, String::new());
    for line in text.lines() {
        let Some(h) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((k, v)) = h.split_once(": ") else {
            continue;
        };
        match k {
            "expect" => {
                let (verdict, rest) = v.split_once(' ').unwrap_or((v, ""));
                accept = verdict == "accept";
                expect = rest.to_string();
            }
            "type" => {
                opts.prog_type =
                    ProgramType::from_user_name(v).unwrap_or_else(|| panic!("type {v}"))
            }
            "maps" => {
                for m in v.split(';') {
                    let f: Vec<&str> = m.split_whitespace().collect();
                    let flags = &f[4.min(f.len())..];
                    let lock = flags
                        .iter()
                        .find_map(|x| x.strip_prefix("lock="))
                        .map(|o| o.parse().unwrap());
                    opts.maps.push(MapInfo {
                        name: format!("map{}", opts.maps.len()),
                        map_type: map_kind(f[0]),
                        key_size: f[1].parse().unwrap(),
                        value_size: f[2].parse().unwrap(),
                        max_entries: f[3].parse().unwrap(),
                        read_only: flags.contains(&"ro"),
                        inner: None,
                        has_btf: lock.is_some() || flags.contains(&"btf"),
                        spin_lock: lock,
                    });
                }
            }
            // "# global: PC NAME ARG..." with ARG = scalar | ctx | memN
            "global" => {
                let f: Vec<&str> = v.split_whitespace().collect();
                opts.global_funcs.push(GlobalFunc {
                    pc: f[0].parse().unwrap(),
                    name: f[1].to_string(),
                    args: f[2..]
                        .iter()
                        .map(|a| match *a {
                            "scalar" => GlobalArg::Scalar,
                            "ctx" => GlobalArg::Ctx,
                            m => GlobalArg::Mem {
                                size: m.trim_start_matches("mem").parse().unwrap(),
                            },
                        })
                        .collect(),
                });
            }
            "policy" => opts.privileged = v != "unprivileged",
            "license" => opts.gpl = v.contains("GPL"),
            "max-insns" => opts.max_insns_processed = v.parse().unwrap(),
            "attach" => opts.attach = Some(v.to_string()),
            "loops" => opts.widen_loops = v == "widen",
            _ => {}
        }
    }
    let code =
        oxbpf_asm::assemble_bytes(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Case {
        name: path.file_name().unwrap().to_string_lossy().into(),
        expect_accept: accept,
        expect_text: expect,
        opts,
        code,
    }
}

#[test]
fn every_rule_is_enforced_for_the_right_reason() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/verifier");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "s"))
        .collect();
    files.sort();
    let (mut rejects, mut accepts, mut wrong) = (0, 0, Vec::new());
    for f in &files {
        let c = load(f);
        let slots = oxbpf_isa::raw_slots(&c.code).unwrap();
        let r = verify(&slots, &c.opts);
        match (c.expect_accept, r) {
            (true, Ok(_)) => accepts += 1,
            (false, Err(e)) if e.to_string().contains(&c.expect_text) => rejects += 1,
            (true, Err(e)) => wrong.push(format!("{}: expected accept, got: {e}", c.name)),
            (false, Err(e)) => wrong.push(format!(
                "{}: rejected for another reason (wanted `{}`): {e}",
                c.name, c.expect_text
            )),
            (false, Ok(_)) => wrong.push(format!(
                "{}: expected a rejection containing `{}`, but it was accepted",
                c.name, c.expect_text
            )),
        }
    }
    eprintln!(
        "{rejects} unsafe programs rejected for the right reason, {accepts} safe programs accepted"
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(rejects >= 100);
}
