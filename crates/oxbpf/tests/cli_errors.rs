//! What a new user runs into, pinned: each test fails without its fix.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn oxbpf(args: &[&str]) -> Output {
    Command::new(common::oxbpf_bin())
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run oxbpf")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn temp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxbpf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_truncated_elf_is_reported_once() {
    let whole = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/c/xdp_firewall.o"
    ))
    .unwrap();
    let p = temp("truncated.o", &whole[..100]);
    let p = p.to_str().unwrap();
    for args in [vec!["verify", p], vec!["run", p], vec!["disasm", p]] {
        let o = oxbpf(&args);
        let t = text(&o);
        assert!(!o.status.success(), "{args:?}: {t}");
        assert_eq!(
            t.matches("Invalid ELF section header").count(),
            1,
            "{args:?}: {t}"
        );
    }
}

#[test]
fn a_missing_path_is_named_plainly() {
    let o = oxbpf(&["verify", "missing_dir/"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert_eq!(t.trim(), "missing_dir/: error: no such file or directory");
}

#[test]
fn a_dot_o_must_be_elf_everywhere() {
    let p = temp("garbage.o", &[0xb9u8; 64]);
    let p = p.to_str().unwrap();
    for args in [vec!["verify", p], vec!["run", p], vec!["disasm", p]] {
        let o = oxbpf(&args);
        let t = text(&o);
        assert!(!o.status.success(), "{args:?}: {t}");
        assert!(
            t.contains("not an ELF object: a .o file must be a BPF ELF object"),
            "{args:?}: {t}"
        );
    }
    // The same bytes as .bin are raw bytecode (here: an unknown opcode).
    let b = temp("garbage.bin", &[0xb9u8; 64]);
    let t = text(&oxbpf(&["disasm", b.to_str().unwrap()]));
    assert!(t.contains("unknown opcode 0xb9"), "{t}");
}

#[test]
fn an_unknown_type_lists_the_types() {
    for cmd in ["run", "verify"] {
        let o = oxbpf(&[cmd, "examples/c/xdp_firewall.o", "--type", "bogus"]);
        let t = text(&o);
        assert!(!o.status.success());
        for name in [
            "unknown program type `bogus`",
            "xdp",
            "sched_cls",
            "socket_filter",
            "tc",
        ] {
            assert!(t.contains(name), "{cmd}: {t}");
        }
    }
}

#[test]
fn a_run_without_input_says_what_it_ran_on() {
    let o = oxbpf(&["run", "examples/c/xdp_firewall.o"]);
    let t = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success());
    assert!(
        t.contains("no input given") && t.contains("empty input"),
        "{t}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("summary: 1 run;"));
}

#[test]
fn the_readme_verifier_example_is_the_real_output() {
    let Some(_) = common::shared_dir() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("$ oxbpf verify ")
        .expect("README shows a verify run");
    let block = &readme[start..readme[start..].find("```").unwrap() + start];
    let (cmd, shown) = block.split_once('\n').unwrap();
    let args: Vec<&str> = cmd.trim_start_matches("$ oxbpf ").split(' ').collect();
    let real = String::from_utf8_lossy(&oxbpf(&args).stdout).to_string();
    let times = |s: &str| {
        s.split(' ')
            .map(|w| {
                if w.chars().all(|c| c.is_ascii_digit()) && !w.is_empty() {
                    "N"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(times(shown.trim_end()), times(real.trim_end()));
}

/// `oxbpf cbpf`: the forms of a classic program go round, the kernel's
/// rules are checked with the instruction named, and a bad listing is
/// refused at its line and column.
#[test]
fn classic_programs_disassemble_assemble_and_check() {
    let numbers = "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n";
    let listing = "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 3\n(002) ret      #262144\n(003) ret      #0\n";
    let src = temp("ip.ddd", numbers.as_bytes());
    let o = oxbpf(&["cbpf", "disasm", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), listing);
    let l = temp("ip.txt", listing.as_bytes());
    let bin = l.with_extension("bin");
    let o = oxbpf(&[
        "cbpf",
        "asm",
        l.to_str().unwrap(),
        "-o",
        bin.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&bin).unwrap().len(), 32);
    let o = oxbpf(&[
        "cbpf",
        "disasm",
        "--format",
        "decimal",
        bin.to_str().unwrap(),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), numbers);
    let o = oxbpf(&["cbpf", "check", bin.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ok (4 instructions)"));
    let bad = temp(
        "bad.txt",
        b"ldh [12]\njeq #0x800 jt 2 jf 5\nld M[4]\nret a\n",
    );
    let o = oxbpf(&["cbpf", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("instruction 1: jf jumps to 5, past the end"),
        "{}",
        text(&o)
    );
    let bad = temp("typo.txt", b"ldh [12]\nret #oops\n");
    let o = oxbpf(&["cbpf", "check", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("line 2:5: ret: expected #N, a or x"),
        "{}",
        text(&o)
    );
}

/// `oxbpf run FILTER.cbpf --pcap F`: a classic filter runs as a socket
/// filter on every packet, with libpcap's snap length as its verdict.
#[test]
fn classic_filters_run_on_captures() {
    // tcpdump -d 'tcp dst port 80' (IPv4 part only).
    let listing = "ldh [12]\njeq #0x800 jt 2 jf 10\nldb [23]\njeq #0x6 jt 4 jf 10\nldh [20]\njset #0x1fff jt 10 jf 6\nldxb 4*([14]&0xf)\nldh [x + 16]\njeq #0x50 jt 9 jf 10\nret #262144\nret #0\n";
    let f = temp("http.cbpf", listing.as_bytes());
    for engine in ["interpreter", "jit"] {
        let o = oxbpf(&[
            "run",
            f.to_str().unwrap(),
            "--pcap",
            "examples/pcap/mixed.pcap",
            "--engine",
            engine,
        ]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        assert!(
            t.contains("run 0: 10.0.0.1:40000 > 10.0.0.9:80 TCP, 54 bytes: KEEP(262144)"),
            "{t}"
        );
        assert!(
            t.contains("summary: 8 runs; DROP: 7, KEEP(262144): 1"),
            "{t}"
        );
    }
    let bad = temp("bad.cbpf", b"ldh [12]\nret #0\nld M[1]\n");
    let o = oxbpf(&[
        "run",
        bad.to_str().unwrap(),
        "--pcap",
        "examples/pcap/mixed.pcap",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("instruction 2: the program must end in ret"),
        "{}",
        text(&o)
    );
}

/// `oxbpf filter EXPR`: libpcap's filter language compiled; a capture
/// filtered as tcpdump -r would; a syntax error points at its column.
#[test]
fn filter_expressions_compile_and_filter_captures() {
    let o = oxbpf(&["filter", "tcp", "port", "80"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(t.starts_with("(000) ldh      [12]\n"), "{t}");
    assert!(t.ends_with("ret      #0\n"), "{t}");
    let o = oxbpf(&[
        "filter",
        "udp port 53 or icmp",
        "--pcap",
        "examples/pcap/mixed.pcap",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("3 of 8 packets kept"), "{t}");
    assert!(t.contains("10.0.0.3:5353 > 10.0.0.53:53 UDP"), "{t}");
    let out = std::env::temp_dir().join(format!("oxbpf-filter-{}.pcap", std::process::id()));
    let o = oxbpf(&[
        "filter",
        "tcp",
        "--pcap",
        "examples/pcap/mixed.pcap",
        "-w",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (_, kept) = oxbpf_pcap::read(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(kept.len(), 3);
    let _ = std::fs::remove_file(&out);
    let o = oxbpf(&["filter", "tcp port"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("syntax error at 1:9: expected a port number after 'port'"),
        "{}",
        text(&o)
    );
}
