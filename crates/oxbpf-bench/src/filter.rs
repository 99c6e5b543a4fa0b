//! Packet filters over a large capture, per engine, against libpcap's
//! `pcap_offline_filter` (the small C program `c/pcap_filter.c`, built
//! against Debian's libpcap-dev) in the same run: for each expression,
//! libpcap running its own optimized program and running oxbpf's, oxbpf's
//! classic interpreter (its reference), the eBPF translation in oxbpf's
//! interpreter and JIT, and the kernel (the translation's in-kernel time
//! per run, `BPF_PROG_TEST_RUN`). Every engine must keep the same packets
//! as libpcap, or the benchmark stops.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oxbpf_pcap::build::*;

const EXPRESSIONS: &[&str] = &[
    "tcp",
    "tcp port 80",
    "udp and not port 53",
    "host 10.0.0.1 and (port 80 or port 443)",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) != 0",
    "ip6 or vlan",
    "net 10.0.0.0/8 and not icmp",
    "len > 100 and (udp port 53 or tcp dst portrange 8000-8080)",
];

/// A capture of `n` frames: TCP flows with varied ports and flags, DNS,
/// ICMP, IPv6, VLAN-tagged and ARP frames, in a fixed pseudo-random order.
pub fn capture(n: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let ports = [80u16, 443, 22, 53, 8080, 8000, 5353, 1234, 40000];
    (0..n)
        .map(|_| {
            let r = next();
            let a = [
                10,
                (r >> 8) as u8 % 3,
                (r >> 16) as u8 % 4,
                (r >> 24) as u8 % 8,
            ];
            let b = [192, 168, 1, (r >> 32) as u8 % 16];
            let sport = ports[(r >> 40) as usize % ports.len()];
            let dport = ports[(r >> 44) as usize % ports.len()];
            match r % 10 {
                0..=3 => eth_ipv4_tcp(
                    a,
                    b,
                    sport,
                    dport,
                    [0x02, 0x12, 0x10, 0x18, 0x11][(r >> 50) as usize % 5],
                ),
                4 | 5 => eth_ipv4_udp(a, b, sport, dport, &[0x5a; 32]),
                6 => ethernet(
                    [2, 0, 0, 0, 0, 1],
                    [2, 0, 0, 0, 0, 2],
                    ETH_P_IP,
                    &ipv4(a, b, 1, 64, &icmp_echo(1, 2, &[0; 16])),
                ),
                7 => {
                    let mut h = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
                    h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
                    h.extend_from_slice(&[
                        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
                    ]);
                    let mut t = vec![0u8; 20];
                    t[0..2].copy_from_slice(&sport.to_be_bytes());
                    t[2..4].copy_from_slice(&dport.to_be_bytes());
                    t[12] = 0x50;
                    h.extend_from_slice(&t);
                    ethernet([0x33, 0x33, 0, 0, 0, 1], [2, 0, 0, 0, 0, 3], ETH_P_IPV6, &h)
                }
                8 => {
                    let inner = eth_ipv4_tcp(a, b, sport, dport, 0x02);
                    let mut f = inner[..12].to_vec();
                    f.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
                    f.extend_from_slice(&inner[12..]);
                    f
                }
                _ => ethernet(
                    [0xff; 6],
                    [2, 0, 0, 0, 0, 4],
                    ETH_P_ARP,
                    &[
                        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 4, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                        10, 0, 0, 2,
                    ],
                ),
            }
        })
        .collect()
}

fn build_peer(dir: &Path) -> Result<PathBuf> {
    let exe = dir.join("pcap_filter");
    crate::build_c("pcap_filter", &exe, &["-lpcap"], "cc and libpcap-dev")?;
    Ok(exe)
}

/// libpcap over the file: (kept, instructions, best round).
fn peer(
    exe: &Path,
    file: &Path,
    rounds: usize,
    args: &[&std::ffi::OsStr],
) -> Result<(usize, usize, Duration)> {
    let out = Command::new(exe)
        .arg(file)
        .arg(rounds.to_string())
        .args(args)
        .output()
        .context("running the libpcap benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [k, n, ns] => Ok((k as usize, n as usize, Duration::from_nanos(ns))),
        _ => bail!(
            "libpcap said: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The best of `rounds` timed runs of `f` (which returns packets kept).
fn best(rounds: usize, mut f: impl FnMut() -> usize) -> (usize, Duration) {
    let mut t_best = Duration::MAX;
    let mut kept = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        kept = black_box(f());
        t_best = t_best.min(t.elapsed());
    }
    (kept, t_best)
}

pub fn run(quick: bool) -> Result<()> {
    let n = if quick { 2_000 } else { 200_000 };
    let rounds = if quick { 1 } else { 5 };
    let packets = capture(n);
    let dir = std::env::temp_dir().join(format!("oxbpf-bench-filter-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("capture.pcap");
    let pcap: Vec<oxbpf_pcap::Packet> = packets
        .iter()
        .map(|d| oxbpf_pcap::Packet {
            ts_ns: 0,
            orig_len: d.len() as u32,
            data: d.clone(),
        })
        .collect();
    std::fs::write(&file, oxbpf_pcap::write(&pcap))?;
    let exe = build_peer(&dir)?;
    let kernel = oxbpf_sys::available().is_ok();
    println!(
        "{n} frames; million packets per second (higher is faster); x: libpcap's time / this engine's"
    );
    println!(
        "{:<58} {:>5} {:>5} {:>8} {:>13} {:>13} {:>13} {:>13} {:>13}",
        "expression",
        "insns",
        "pcap",
        "libpcap",
        "pcap+oxbpf",
        "oxbpf cbpf",
        "ebpf interp",
        "ebpf jit",
        "kernel"
    );
    let mpps = |d: Duration| n as f64 / d.as_secs_f64() / 1e6;
    let cell = |d: Duration, base: Duration| {
        format!(
            "{:.1} {:.2}x",
            mpps(d),
            base.as_secs_f64() / d.as_secs_f64()
        )
    };
    for expr in EXPRESSIONS {
        let ours = oxbpf_cbpf::compile(expr).map_err(|e| anyhow::anyhow!("{expr}: {e}"))?;
        let (kept, their_len, t_pcap) = peer(&exe, &file, rounds, &[expr.as_ref()])?;
        let prog_file = dir.join("prog.ddd");
        std::fs::write(&prog_file, oxbpf_cbpf::to_decimal(&ours))?;
        let (kept2, _, t_pcap_ours) =
            peer(&exe, &file, rounds, &["-p".as_ref(), prog_file.as_os_str()])?;
        let meta = oxbpf_cbpf::Meta::default();
        let (kept3, t_cbpf) = best(rounds, || {
            packets
                .iter()
                .filter(|p| oxbpf_cbpf::run(&ours, p, &meta) != 0)
                .count()
        });
        let ebpf = oxbpf_cbpf::to_ebpf(&ours)?;
        let raw = oxbpf_isa::encode_all(ebpf.iter());
        let mut obj = oxbpf_obj::Object::from_raw_program("filter", raw);
        obj.programs[0].kind = oxbpf_obj::ProgramType::SocketFilter;
        let mut times = Vec::new();
        for engine in [
            oxbpf_vm::jit::Engine::Interpreter,
            oxbpf_vm::jit::Engine::Jit,
        ] {
            let mut lo = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, None)?;
            lo.config.engine = engine;
            lo.config.count_instructions = false;
            if engine == oxbpf_vm::jit::Engine::Jit {
                let proof = oxbpf_verifier::prove_object(&obj, None)
                    .map_err(|e| anyhow::anyhow!("{expr}: the translation is not proven: {e:?}"))?;
                lo.trust(&proof)
                    .map_err(|e| anyhow::anyhow!("{expr}: {e:?}"))?;
            }
            let (k, t) = best(rounds, || {
                packets
                    .iter()
                    .filter(|p| {
                        lo.run(0, p)
                            .ok()
                            .and_then(|r| r.result.ok())
                            .is_some_and(|r| r.r0 != 0)
                    })
                    .count()
            });
            if k != kept {
                bail!("{expr}: {engine:?} keeps {k} packets, libpcap {kept}");
            }
            times.push(t);
        }
        let kernel_cell = if kernel {
            // The translation as a tc program (the same context, the frame
            // from its Ethernet header); the kernel's own time per run.
            let k = oxbpf_sys::object::load_object(&obj, Some(oxbpf_obj::ProgramType::SchedCls));
            let prog =
                k.programs[0].verdict.prog.as_ref().map_err(|e| {
                    anyhow::anyhow!("{expr}: the kernel refuses the translation: {e}")
                })?;
            let sample = &packets[..packets.len().min(2_000)];
            let repeat = if quick { 1 } else { 200 };
            let mut total_ns = 0u64;
            let mut kept_k = 0;
            for p in sample {
                let r = prog.test_run(p, None, repeat)?;
                total_ns += r.duration_ns as u64;
                kept_k += usize::from(r.retval != 0);
            }
            let want = sample
                .iter()
                .filter(|p| oxbpf_cbpf::run(&ours, p, &meta) != 0)
                .count();
            if kept_k != want {
                bail!(
                    "{expr}: the kernel keeps {kept_k} of {} packets, oxbpf {want}",
                    sample.len()
                );
            }
            let per_packet = Duration::from_nanos(total_ns) / sample.len() as u32;
            cell(per_packet * n as u32, t_pcap)
        } else {
            "-".into()
        };
        if kept2 != kept || kept3 != kept {
            bail!("{expr}: oxbpf's program keeps {kept2}/{kept3} packets, libpcap's {kept}");
        }
        println!(
            "{:<58} {:>5} {:>5} {:>8.1} {:>13} {:>13} {:>13} {:>13} {:>13}",
            expr,
            ours.len(),
            their_len,
            mpps(t_pcap),
            cell(t_pcap_ours, t_pcap),
            cell(t_cbpf, t_pcap),
            cell(times[0], t_pcap),
            cell(times[1], t_pcap),
            kernel_cell
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "(insns: oxbpf's program, pcap: libpcap's; libpcap: pcap_offline_filter on its own program; pcap+oxbpf: on oxbpf's; ebpf interp/jit: the translation in oxbpf's engines, per-packet entry included; kernel: in-kernel time per run of the translation, BPF_PROG_TEST_RUN over the first 2000 frames)"
    );
    Ok(())
}
