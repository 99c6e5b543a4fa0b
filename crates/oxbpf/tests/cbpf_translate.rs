//! Classic filters run in oxbpf's eBPF engines: libpcap compiles each
//! expression (`tcpdump -ddd`), and so does oxbpf's compiler; oxbpf
//! translates the programs to eBPF as the kernel does, and on every packet
//! of a varied capture the interpreter and the JIT, and the running kernel
//! return what the classic program itself returns (oxbpf's reference cBPF
//! interpreter), and oxbpf's verifier and the kernel's accept the
//! translation. oxbpf's compiled programs give libpcap's verdicts (Ethernet
//! and raw IP), and attached as socket filters on a veth they receive what
//! oxbpf's engines keep.

mod common;

use std::process::Command;

use oxbpf_pcap::build::*;
use oxbpf_pcap::samples::{flows, mixed};

/// Whether Debian's tcpdump (libpcap, the oracle) is here; CI must have it.
fn have_tcpdump() -> bool {
    let here = Command::new("tcpdump").arg("--version").output().is_ok();
    if !here {
        common::skip("no tcpdump (Debian: tcpdump)");
    }
    here
}

fn packets() -> Vec<Vec<u8>> {
    let mut p = mixed();
    p.extend(flows());
    // IPv6: TCP, UDP, ICMPv6.
    let v6 = |next: u8, payload: &[u8]| {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        h.push(next);
        h.push(64);
        h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        h.extend_from_slice(payload);
        ethernet([0x33, 0x33, 0, 0, 0, 1], [2, 0, 0, 0, 0, 1], 0x86dd, &h)
    };
    let tcp_hdr = |sport: u16, dport: u16, flags: u8| {
        let mut t = vec![0u8; 20];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = 0x50;
        t[13] = flags;
        t.extend_from_slice(b"GET / HTTP/1.1\r\n");
        t
    };
    p.push(v6(6, &tcp_hdr(40000, 443, 0x12)));
    p.push(v6(6, &tcp_hdr(22, 5555, 0x02)));
    p.push(v6(17, &[0, 53, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]));
    p.push(v6(58, &[128, 0, 0, 0, 0, 1, 0, 1]));
    // TCP flag combinations and ports, some with an HTTP payload.
    for (i, flags) in [0x02u8, 0x12, 0x10, 0x11, 0x04, 0x18, 0x29, 0x00]
        .iter()
        .enumerate()
    {
        let mut f = eth_ipv4_tcp(
            [10, 0, 0, i as u8],
            [192, 168, 1, 10],
            1000 + i as u16,
            [80, 8080, 443, 22, 1500, 8000, 53, 2000][i],
            *flags,
        );
        f.extend_from_slice(b"GET / HTTP/1.1\r\n");
        p.push(f);
    }
    // Server replies: the well-known port is the source.
    for (sport, flags) in [(443u16, 0x12u8), (80, 0x18), (53, 0x10)] {
        p.push(eth_ipv4_tcp(
            [192, 168, 1, 10],
            [10, 0, 0, 1],
            sport,
            40000,
            flags,
        ));
    }
    // VLAN (802.1Q, QinQ) and MPLS encapsulations.
    let inner = eth_ipv4_tcp([10, 1, 1, 1], [10, 0, 0, 1], 1234, 80, 0x02);
    let tagged = |tpid: u16, vid: u16, rest: &[u8]| {
        let mut f = rest[..12].to_vec();
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
        f.extend_from_slice(&rest[12..]);
        f
    };
    p.push(tagged(0x8100, 10, &inner));
    p.push(tagged(0x8100, 100, &inner));
    p.push(tagged(0x88a8, 10, &tagged(0x8100, 100, &inner)));
    let mut mpls = inner[..12].to_vec();
    mpls.extend_from_slice(&[0x88, 0x47, 0x00, 0x02, 0xa1, 0x40]);
    mpls.extend_from_slice(&inner[14..]);
    p.push(mpls);
    // Fragments, broadcast and multicast, LLDP, a big frame, GRE.
    let mut frag = eth_ipv4_udp([10, 0, 0, 7], [10, 0, 0, 8], 53, 53, b"fragment");
    frag[20] = 0x20;
    frag[21] = 0x10;
    p.push(frag);
    p.push(ethernet(
        [0xff; 6],
        [2, 0, 0, 0, 0, 2],
        0x0800,
        &ipv4(
            [10, 0, 0, 1],
            [255, 255, 255, 255],
            17,
            64,
            &[0, 67, 0, 68, 0, 8, 0, 0],
        ),
    ));
    p.push(ethernet(
        [1, 0, 0x5e, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        0x0800,
        &ipv4(
            [10, 0, 0, 1],
            [224, 0, 0, 1],
            2,
            1,
            &[0x11, 0, 0, 0, 0, 0, 0, 0],
        ),
    ));
    p.push(ethernet(
        [1, 0x80, 0xc2, 0, 0, 0x0e],
        [2, 0, 0, 0, 0, 3],
        0x88cc,
        &[0u8; 40],
    ));
    p.push(eth_ipv4_udp(
        [1, 2, 3, 4],
        [4, 3, 2, 1],
        9,
        9,
        &[0x5a; 1400],
    ));
    p.push(ethernet(
        [0, 0x11, 0x22, 0x33, 0x44, 0x55],
        [2, 0, 0, 0, 0, 4],
        0x0800,
        &ipv4([1, 2, 3, 4], [10, 0, 0, 1], 47, 64, &[0u8; 24]),
    ));
    // Every frame cut short at every length up to 80 bytes (past the
    // transport ports), too: where a load past the end ends the filter
    // matters.
    let truncated: Vec<Vec<u8>> = p
        .iter()
        .flat_map(|f| (1..f.len().min(80)).map(|n| f[..n].to_vec()))
        .collect();
    p.extend(truncated);
    p
}

#[test]
fn translated_filters_agree_with_classic_semantics_in_every_engine() {
    if !have_tcpdump() {
        return;
    }
    let packets = packets();
    let (mut runs, mut kept, mut kernel_runs, mut refused) = (0, 0, 0, 0);
    let mut hook_runs = 0;
    // libpcap's programs, and oxbpf's own for the compiler's expressions.
    let lines = |text: &'static str| {
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect::<Vec<_>>()
    };
    let mut programs: Vec<(String, Vec<oxbpf_cbpf::Insn>)> =
        lines(include_str!("../../oxbpf-cbpf/tests/expressions.txt"))
            .into_iter()
            .map(|e| (format!("{e} (libpcap)"), libpcap(&[], e)))
            .collect();
    programs.extend(
        lines(include_str!(
            "../../oxbpf-cbpf/tests/filter_expressions.txt"
        ))
        .into_iter()
        .map(|e| (format!("{e} (oxbpf)"), oxbpf_cbpf::compile(e).unwrap())),
    );
    for (expr, classic) in &programs {
        let (expr, classic) = (expr.as_str(), classic.clone());
        let ebpf = oxbpf_cbpf::to_ebpf(&classic).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let raw = oxbpf_isa::encode_all(ebpf.iter());
        let obj = oxbpf_obj::Object::from_raw_program(expr, raw.clone());
        let mut vopts = oxbpf_verifier::Options {
            prog_type: oxbpf_obj::ProgramType::SocketFilter,
            ..Default::default()
        };
        vopts.privileged = true;
        if let Err(e) = oxbpf_verifier::verify(&raw, &vopts) {
            panic!("{expr}: the translation is rejected: {}", e.message);
        }
        // The kernel: BPF_PROG_TEST_RUN gives a socket filter the packet
        // from its network header on, so the translation runs as a tc
        // program (the same context, the frame from its Ethernet header),
        // on the frames with more than an Ethernet header (the test run
        // refuses a bare one).
        if common::kernel_available() {
            let k = oxbpf_sys::object::load_object(&obj, Some(oxbpf_obj::ProgramType::SchedCls));
            let prog = k.programs[0]
                .verdict
                .prog
                .as_ref()
                .unwrap_or_else(|e| panic!("{expr}: the kernel rejects the translation: {e}"));
            for (n, pkt) in packets.iter().enumerate().filter(|(_, p)| p.len() > 14) {
                let want = oxbpf_cbpf::run(&classic, pkt, &oxbpf_cbpf::Meta::default());
                let r = match prog.test_run(pkt, None, 1) {
                    Ok(r) => r,
                    // The test run refuses frames too short for the
                    // network header their Ethernet type names.
                    Err(e) if pkt.len() < 60 && e.to_string().contains("Invalid argument") => {
                        refused += 1;
                        continue;
                    }
                    Err(e) => panic!("{expr}, packet {n} ({} bytes): {e}", pkt.len()),
                };
                assert_eq!(
                    r.retval,
                    want,
                    "{expr}, packet {n} ({} bytes), kernel",
                    pkt.len()
                );
                runs += 1;
                kernel_runs += 1;
            }
        }
        for engine in [
            oxbpf_vm::jit::Engine::Interpreter,
            oxbpf_vm::jit::Engine::Jit,
        ] {
            let mut lo = oxbpf_vm::loaded::LoadedObject::new(
                &obj,
                1,
                Some(oxbpf_obj::ProgramType::SocketFilter),
            )
            .unwrap();
            lo.config.engine = engine;
            for (n, pkt) in packets.iter().enumerate() {
                let want = oxbpf_cbpf::run(&classic, pkt, &oxbpf_cbpf::Meta::default());
                let got = lo
                    .run(0, pkt)
                    .unwrap()
                    .result
                    .unwrap_or_else(|e| panic!("{expr} packet {n}: {e}"));
                assert_eq!(
                    got.r0 as u32,
                    want,
                    "{expr}, packet {n} ({} bytes), {engine:?}",
                    pkt.len()
                );
                runs += 1;
                kept += usize::from(want != 0);
            }
        }
        hook_runs += run_as_tc_and_xdp(expr, &classic, &packets);
    }
    eprintln!("as tc and XDP programs: {hook_runs} runs agree");
    // The capture exercises both ways of the filters.
    assert!(
        kept > runs / 20 && kept < runs / 2,
        "{kept} of {runs} runs kept the packet"
    );
    eprintln!(
        "{runs} runs agree ({} packets, {kept} kept; {kernel_runs} in the kernel, which refused {refused} short frames)",
        packets.len()
    );
    assert!(!common::kernel_available() || kernel_runs > refused);
}

/// The filter translated for tc and XDP (direct packet access, the hook's
/// verdicts) keeps and drops what the classic program does, in oxbpf's
/// interpreter and JIT (with oxbpf's verifier accepting it) and in the
/// kernel (BPF_PROG_TEST_RUN); XDP refuses ancillary loads. Returns the
/// runs made.
fn run_as_tc_and_xdp(expr: &str, classic: &[oxbpf_cbpf::Insn], packets: &[Vec<u8>]) -> usize {
    use oxbpf_cbpf::Hook;
    use oxbpf_obj::ProgramType;
    let mut runs = 0;
    for (hook, kind, kept, dropped) in [
        (Hook::Tc, ProgramType::SchedCls, 0u64, 2u64),
        (Hook::Xdp, ProgramType::Xdp, 2, 1),
    ] {
        let ebpf = match oxbpf_cbpf::to_ebpf_for(classic, hook) {
            Ok(e) => e,
            Err(e) if hook == Hook::Xdp && e.msg.contains("ancillary") => continue,
            Err(e) => panic!("{expr} ({hook:?}): {e}"),
        };
        let raw = oxbpf_isa::encode_all(ebpf.iter());
        let mut vopts = oxbpf_verifier::Options {
            prog_type: kind,
            ..Default::default()
        };
        vopts.privileged = true;
        if let Err(e) = oxbpf_verifier::verify(&raw, &vopts) {
            panic!(
                "{expr} ({hook:?}): oxbpf's verifier rejects the translation: {}",
                e.message
            );
        }
        let mut obj = oxbpf_obj::Object::from_raw_program(expr, raw);
        obj.programs[0].kind = kind;
        let want = |p: &[u8]| {
            if oxbpf_cbpf::run(classic, p, &oxbpf_cbpf::Meta::default()) != 0 {
                kept
            } else {
                dropped
            }
        };
        for engine in [
            oxbpf_vm::jit::Engine::Interpreter,
            oxbpf_vm::jit::Engine::Jit,
        ] {
            let mut lo = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, Some(kind)).unwrap();
            lo.config.engine = engine;
            for (n, p) in packets.iter().enumerate() {
                let got = lo
                    .run(0, p)
                    .unwrap()
                    .result
                    .unwrap_or_else(|e| panic!("{expr} ({hook:?}) packet {n}: {e}"));
                assert_eq!(
                    got.r0,
                    want(p),
                    "{expr} ({hook:?}), packet {n} ({} bytes), {engine:?}",
                    p.len()
                );
                runs += 1;
            }
        }
        if common::kernel_available() {
            let k = oxbpf_sys::object::load_object(&obj, Some(kind));
            let prog = k.programs[0].verdict.prog.as_ref().unwrap_or_else(|e| {
                panic!(
                    "{expr} ({hook:?}): the kernel rejects the translation: {e}\n{}",
                    k.programs[0].verdict.log
                )
            });
            for (n, p) in packets.iter().enumerate().filter(|(_, p)| p.len() >= 14) {
                match prog.test_run(p, None, 1) {
                    Ok(r) => {
                        assert_eq!(
                            r.retval as u64,
                            want(p),
                            "{expr} ({hook:?}), packet {n} ({} bytes), kernel",
                            p.len()
                        );
                        runs += 1;
                    }
                    // The tc test run refuses frames too short for the
                    // network header their Ethernet type names.
                    Err(e)
                        if hook == Hook::Tc
                            && p.len() < 60
                            && e.to_string().contains("Invalid argument") => {}
                    Err(e) => panic!("{expr} ({hook:?}), packet {n} ({} bytes): {e}", p.len()),
                }
            }
        }
    }
    runs
}

fn libpcap(args: &[&str], expr: &str) -> Vec<oxbpf_cbpf::Insn> {
    let out = Command::new("tcpdump")
        .args(args)
        .arg("-ddd")
        .arg(expr)
        .output()
        .unwrap();
    assert!(out.status.success(), "{expr}");
    oxbpf_cbpf::from_decimal(&String::from_utf8(out.stdout).unwrap()).unwrap()
}

/// oxbpf's filter compiler gives every packet of the capture the verdict
/// libpcap's (optimized) program gives it, as its unoptimized program does,
/// and its programs are compared for size. oxbpf's optimizer run on
/// libpcap's programs, optimized and not (`tcpdump -O`), keeps their
/// verdicts too. (libpcap's unoptimized programs are no oracle: they load
/// words they then mask to nothing, so they drop short packets that the
/// optimized ones keep.)
#[test]
fn compiled_filters_give_libpcaps_verdicts() {
    if !have_tcpdump() {
        return;
    }
    let packets = packets();
    let meta = oxbpf_cbpf::Meta::default();
    let (mut ours_total, mut theirs_total, mut n, mut runs) = (0, 0, 0, 0);
    let mut reoptimized = 0;
    let mut longer = Vec::new();
    let mut shorter = 0;
    for expr in include_str!("../../oxbpf-cbpf/tests/filter_expressions.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let ours = oxbpf_cbpf::compile(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let ours_o = oxbpf_cbpf::compile_with(
            expr,
            &oxbpf_cbpf::Options {
                optimize: false,
                ..Default::default()
            },
        )
        .unwrap();
        oxbpf_cbpf::validate(&ours).unwrap_or_else(|e| panic!("{expr}: {e}"));
        oxbpf_cbpf::validate(&ours_o).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let theirs = libpcap(&[], expr);
        let theirs_o = libpcap(&["-O"], expr);
        let theirs_reopt = oxbpf_cbpf::optimize(&theirs);
        let theirs_o_reopt = oxbpf_cbpf::optimize(&theirs_o);
        assert!(theirs_reopt.len() <= theirs.len(), "{expr}");
        reoptimized += theirs.len() - theirs_reopt.len();
        for (i, p) in packets.iter().enumerate() {
            let a = oxbpf_cbpf::run(&ours, p, &meta) != 0;
            let b = oxbpf_cbpf::run(&theirs, p, &meta) != 0;
            assert_eq!(
                a,
                b,
                "{expr}: packet {i} ({} bytes): oxbpf keeps it: {a}, libpcap: {b}\n{}",
                p.len(),
                oxbpf_cbpf::listing(&ours)
            );
            assert_eq!(
                oxbpf_cbpf::run(&ours_o, p, &meta),
                oxbpf_cbpf::run(&ours, p, &meta),
                "{expr}: packet {i}: unoptimized and optimized differ"
            );
            for (orig, re) in [(&theirs, &theirs_reopt), (&theirs_o, &theirs_o_reopt)] {
                assert_eq!(
                    oxbpf_cbpf::run(orig, p, &meta),
                    oxbpf_cbpf::run(re, p, &meta),
                    "{expr}: libpcap's program optimized by oxbpf, packet {i}\n{}",
                    oxbpf_cbpf::listing(re)
                );
            }
            runs += 1;
        }
        if ours.len() > theirs.len() {
            longer.push(format!("{expr} ({} vs {})", ours.len(), theirs.len()));
        }
        shorter += usize::from(ours.len() < theirs.len());
        ours_total += ours.len();
        theirs_total += theirs.len();
        n += 1;
    }
    eprintln!(
        "oxbpf's optimizer takes {reoptimized} instructions off libpcap's optimized programs"
    );
    eprintln!(
        "{n} expressions, {runs} verdicts agree; program size oxbpf {ours_total} vs libpcap {theirs_total} instructions; shorter than libpcap's: {shorter}, longer: {}",
        longer.len()
    );
    for l in &longer {
        eprintln!("  longer: {l}");
    }
}

/// On raw IP links (pcap link type 101: no link header), oxbpf's compiler
/// gives libpcap's verdict on every packet (libpcap compiles for the link
/// type of the file `tcpdump -r` reads), and refuses what libpcap refuses
/// there (link-layer primitives).
#[test]
fn raw_ip_filters_give_libpcaps_verdicts() {
    if !have_tcpdump() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("oxbpf-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("raw.pcap");
    std::fs::write(
        &file,
        oxbpf_pcap::write_linktype(oxbpf_pcap::LINKTYPE_RAW, &[]),
    )
    .unwrap();
    // The frames without their Ethernet header (what is left of ARP and
    // the others reads as an IP version other than 4 and 6).
    let packets: Vec<Vec<u8>> = packets()
        .into_iter()
        .filter(|p| p.len() > 14)
        .map(|p| p[14..].to_vec())
        .collect();
    let meta = oxbpf_cbpf::Meta::default();
    let opts = oxbpf_cbpf::Options {
        link: oxbpf_cbpf::Link::RawIp,
        ..Default::default()
    };
    let (mut n, mut refused, mut runs, mut ours_total, mut theirs_total) = (0, 0, 0, 0, 0);
    for expr in include_str!("../../oxbpf-cbpf/tests/filter_expressions.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let out = Command::new("tcpdump")
            .arg("-r")
            .arg(&file)
            .args(["-ddd", expr])
            .output()
            .unwrap();
        let ours = oxbpf_cbpf::compile_with(expr, &opts);
        let theirs = if out.status.success() {
            oxbpf_cbpf::from_decimal(&String::from_utf8(out.stdout).unwrap()).unwrap()
        } else if String::from_utf8_lossy(&out.stderr).contains("rejects all packets") {
            vec![oxbpf_cbpf::Insn::new(0x06, 0, 0, 0)]
        } else {
            assert!(
                ours.is_err(),
                "{expr}: libpcap refuses it on raw IP ({}), oxbpf compiles it",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            refused += 1;
            continue;
        };
        let ours = ours.unwrap_or_else(|e| panic!("{expr}: {e}"));
        oxbpf_cbpf::validate(&ours).unwrap();
        for (i, p) in packets.iter().enumerate() {
            let a = oxbpf_cbpf::run(&ours, p, &meta) != 0;
            let b = oxbpf_cbpf::run(&theirs, p, &meta) != 0;
            assert_eq!(
                a,
                b,
                "{expr} (raw IP): packet {i} ({} bytes): oxbpf keeps it: {a}, libpcap: {b}\n{}",
                p.len(),
                oxbpf_cbpf::listing(&ours)
            );
            runs += 1;
        }
        ours_total += ours.len();
        theirs_total += theirs.len();
        n += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "raw IP: {n} expressions, {runs} verdicts agree, {refused} refused by both; size oxbpf {ours_total} vs libpcap {theirs_total}"
    );
}

/// A network namespace with a veth pair, removed when dropped: `here` in
/// this namespace, `there` in `ns`, both without IPv6 (so that the kernel
/// sends nothing of its own on them).
struct VethPair {
    ns: String,
    here: String,
    there: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip(8)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl VethPair {
    fn new() -> VethPair {
        let id = std::process::id() % 100_000;
        let v = VethPair {
            ns: format!("oxcap{id}"),
            here: format!("oxca{id}"),
            there: format!("oxcb{id}"),
        };
        let _ = Command::new("ip").args(["netns", "del", &v.ns]).output();
        ip(&["netns", "add", &v.ns]);
        ip(&[
            "link", "add", &v.here, "type", "veth", "peer", "name", &v.there, "netns", &v.ns,
        ]);
        let off = |ns: Option<&str>, dev: &str| {
            let key = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
            let mut c = Command::new("ip");
            match ns {
                Some(ns) => c.args(["netns", "exec", ns, "sysctl", "-qw", &key]),
                None => c.args(["netns", "exec", "default", "sysctl", "-qw", &key]),
            };
            let _ = c.output();
        };
        let _ = Command::new("sysctl")
            .args(["-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", v.here)])
            .output();
        off(Some(&v.ns), &v.there);
        ip(&["link", "set", &v.here, "up"]);
        ip(&["-n", &v.ns, "link", "set", &v.there, "up"]);
        v
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.here])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// A frame as a socket filter on Linux sees it: the receive path takes the
/// outer 802.1Q/802.1ad tag off first (into the skb's metadata) and drops
/// a tagged frame too short to hold the tag and a type.
fn kernel_view(frame: &[u8]) -> Option<(Vec<u8>, oxbpf_cbpf::Meta)> {
    let tpid = u16::from_be_bytes([frame[12], frame[13]]);
    if !matches!(tpid, 0x8100 | 0x88a8) {
        return Some((frame.to_vec(), oxbpf_cbpf::Meta::default()));
    }
    if frame.len() < 20 {
        return None;
    }
    let mut view = frame[..12].to_vec();
    view.extend_from_slice(&frame[16..]);
    let meta = oxbpf_cbpf::Meta {
        vlan_tci: u16::from_be_bytes([frame[14], frame[15]]) as u32,
        vlan_present: 1,
        vlan_tpid: tpid,
        ..Default::default()
    };
    Some((view, meta))
}

/// oxbpf's compiled filters attached in the kernel as socket filters
/// (`oxbpf capture`, classic and as eBPF) on a veth, the test capture sent
/// from the other end (`oxbpf replay`): exactly the frames oxbpf's own
/// engines keep arrive, in order, VLAN tags put back.
#[test]
fn socket_filters_on_a_veth_keep_what_oxbpf_keeps() {
    if !have_tcpdump() || !common::kernel_available() {
        return;
    }
    // Frames the kernel sends: at least an Ethernet header.
    let frames: Vec<Vec<u8>> = packets().into_iter().filter(|p| p.len() >= 14).collect();
    let dir = std::env::temp_dir().join(format!("oxbpf-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let capture_file = dir.join("frames.pcap");
    let pcap: Vec<oxbpf_pcap::Packet> = frames
        .iter()
        .map(|f| oxbpf_pcap::Packet {
            ts_ns: 0,
            orig_len: f.len() as u32,
            data: f.clone(),
        })
        .collect();
    std::fs::write(&capture_file, oxbpf_pcap::write(&pcap)).unwrap();
    let veth = VethPair::new();
    let exprs: Vec<&str> = include_str!("../../oxbpf-cbpf/tests/filter_expressions.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .filter(|(i, l)| i % 4 == 0 || l.contains("vlan"))
        .map(|(_, l)| l)
        .collect();
    let mut arrived = 0;
    for (n, expr) in exprs.iter().enumerate() {
        let ebpf = n % 2 == 1;
        let out = dir.join(format!("{n}.pcap"));
        let mut cap = Command::new(common::oxbpf_bin());
        cap.args(["capture", "-i", &veth.here, "--timeout", "30", "-w"])
            .arg(&out)
            .stderr(std::process::Stdio::piped());
        if ebpf {
            cap.arg("--ebpf");
        }
        let mut child = cap.arg(expr).spawn().unwrap();
        // Wait until the filter is attached.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut err, &mut line).unwrap();
        assert!(line.starts_with("capturing on"), "{expr}: {line}");
        let sent = Command::new("ip")
            .args(["netns", "exec", &veth.ns])
            .arg(common::oxbpf_bin())
            .args(["replay", "-i", &veth.there])
            .arg(&capture_file)
            .output()
            .unwrap();
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
        assert!(
            String::from_utf8_lossy(&sent.stderr).contains(" 0 refused"),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY-free: kill(1) with SIGINT, as Ctrl-C.
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        assert!(status.success(), "{expr}: {rest}");
        let (_, got) = oxbpf_pcap::read(&std::fs::read(&out).unwrap()).unwrap();
        let got: Vec<Vec<u8>> = got.into_iter().map(|p| p.data).collect();
        // As `oxbpf capture` compiles it: the first `vlan` reads the tag
        // the kernel took off.
        let classic = oxbpf_cbpf::compile_with(
            expr,
            &oxbpf_cbpf::Options {
                kernel_vlan: true,
                ..Default::default()
            },
        )
        .unwrap();
        let want: Vec<Vec<u8>> = frames
            .iter()
            .filter(|f| {
                kernel_view(f)
                    .is_some_and(|(view, meta)| oxbpf_cbpf::run(&classic, &view, &meta) != 0)
            })
            .cloned()
            .collect();
        if got != want {
            let missing: Vec<String> = want
                .iter()
                .filter(|f| !got.contains(f))
                .map(|f| format!("{} bytes: {}", f.len(), oxbpf_pcap::describe(f)))
                .collect();
            let extra: Vec<String> = got
                .iter()
                .filter(|f| !want.contains(f))
                .map(|f| format!("{} bytes: {}", f.len(), oxbpf_pcap::describe(f)))
                .collect();
            panic!(
                "{expr} ({}): {} frames arrived, oxbpf keeps {}\nmissing: {missing:#?}\nextra: {extra:#?}",
                if ebpf { "eBPF" } else { "classic" },
                got.len(),
                want.len()
            );
        }
        arrived += got.len();
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "{} filters on a veth, {} frames sent each: {arrived} arrived, each one oxbpf keeps",
        exprs.len(),
        frames.len()
    );
}
