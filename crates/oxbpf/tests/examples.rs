//! Every example in examples/c runs on its pcap with the expected verdicts
//! and map contents.

use std::path::PathBuf;

use oxbpf_vm::Output;
use oxbpf_vm::loaded::LoadedObject;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(name: &str) -> LoadedObject {
    let bytes = std::fs::read(root().join(format!("examples/c/{name}.o"))).unwrap();
    let obj = oxbpf_obj::load(&bytes).unwrap();
    LoadedObject::new(&obj, 1, None).unwrap()
}

fn packets(name: &str) -> Vec<Vec<u8>> {
    let raw = std::fs::read(root().join(format!("examples/pcap/{name}.pcap"))).unwrap();
    oxbpf_pcap::read(&raw)
        .unwrap()
        .1
        .into_iter()
        .map(|p| p.data)
        .collect()
}

/// Runs `prog` on every packet; returns the verdicts.
fn verdicts(o: &LoadedObject, prog: &str, pcap: &str) -> Vec<String> {
    let idx = o
        .program(prog)
        .unwrap_or_else(|| panic!("no program {prog}"));
    packets(pcap)
        .iter()
        .map(|p| {
            let r = o.run(idx, p).unwrap().result.unwrap();
            o.verdict(idx, r.r0).unwrap()
        })
        .collect()
}

fn map_value(o: &LoadedObject, map: &str, key: &[u8]) -> Vec<u8> {
    let i = o.map_names.iter().position(|n| n == map).unwrap();
    o.env.maps[i].lookup(key).unwrap()
}

fn u64_at(v: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(v[off..off + 8].try_into().unwrap())
}

#[test]
fn committed_pcaps_are_what_the_generator_writes() {
    use oxbpf_pcap::samples::*;
    assert_eq!(
        std::fs::read(root().join("examples/pcap/mixed.pcap")).unwrap(),
        pcap(mixed())
    );
    assert_eq!(
        std::fs::read(root().join("examples/pcap/flows.pcap")).unwrap(),
        pcap(flows())
    );
}

#[test]
fn xdp_firewall_drops_the_blocked_source() {
    let o = load("xdp_firewall");
    let v = verdicts(&o, "xdp_firewall", "mixed");
    assert_eq!(v.iter().filter(|v| *v == "XDP_DROP").count(), 1);
    assert_eq!(v[3], "XDP_DROP");
    assert_eq!(
        u64_at(&map_value(&o, "blocklist", &[10, 0, 0, 66]), 0),
        2,
        "seeded 1 + one hit"
    );
    assert_eq!(u64_at(&map_value(&o, "stats", &0u32.to_le_bytes()), 0), 7);
    assert_eq!(u64_at(&map_value(&o, "stats", &1u32.to_le_bytes()), 0), 1);
}

#[test]
fn proto_counter_counts_per_protocol() {
    let o = load("proto_counter");
    assert!(
        verdicts(&o, "count_protocols", "mixed")
            .iter()
            .all(|v| v == "XDP_PASS")
    );
    let pk = |p: u32| u64_at(&map_value(&o, "proto_stats", &p.to_le_bytes()), 0);
    assert_eq!((pk(6), pk(17), pk(1), pk(255)), (3, 3, 1, 1));
    let bytes = packets("mixed")
        .iter()
        .filter(|p| p[23] == 6 && p[12] == 8)
        .map(|p| p.len() as u64)
        .sum::<u64>();
    assert_eq!(
        u64_at(&map_value(&o, "proto_stats", &6u32.to_le_bytes()), 8),
        bytes
    );
}

#[test]
fn lru_flow_table_evicts_least_recent() {
    let o = load("lru_flows");
    verdicts(&o, "track_flows", "flows");
    let i = o.map_names.iter().position(|n| n == "flows").unwrap();
    let mut sources: Vec<(u8, u64)> = o.env.maps[i]
        .entries()
        .iter()
        .map(|(k, v)| (k[3], u64_at(v, 0)))
        .collect();
    sources.sort();
    // Flows 2 and 3 were least recently used when 5 and 6 arrived.
    assert_eq!(sources, vec![(1, 3), (4, 1), (5, 1), (6, 1)]);
}

#[test]
fn socket_filter_keeps_dns_only() {
    let o = load("socket_filter");
    let v = verdicts(&o, "dns_only", "mixed");
    let kept: Vec<usize> = v
        .iter()
        .enumerate()
        .filter(|(_, v)| v.starts_with("KEEP"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(kept, vec![1, 7]);
    assert_eq!(
        u64_at(&map_value(&o, "verdicts", &1u32.to_le_bytes()), 0),
        2
    );
    assert_eq!(
        u64_at(&map_value(&o, "verdicts", &0u32.to_le_bytes()), 0),
        6
    );
}

#[test]
fn tc_rewrite_fixes_checksums() {
    let o = load("tc_rewrite");
    let idx = o.program("rewrite_http").unwrap();
    let pkts = packets("mixed");
    let run = o.run(idx, &pkts[0]).unwrap();
    assert_eq!(o.verdict(idx, run.result.unwrap().r0).unwrap(), "TC_ACT_OK");
    let p = run.packet.unwrap();
    assert_eq!(&p[30..34], &[10, 0, 0, 2], "destination rewritten");
    assert_eq!(u16::from_be_bytes([p[36], p[37]]), 8080);
    // The IP header and the TCP segment (with pseudo header) check out.
    assert_eq!(oxbpf_pcap::checksum(&p[14..34], 0), 0, "IP checksum");
    let tcp = &p[34..];
    let mut pseudo = 0u32;
    for c in p[26..34].chunks(2) {
        pseudo += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    pseudo += 6 + tcp.len() as u32;
    assert_eq!(oxbpf_pcap::checksum(tcp, pseudo), 0, "TCP checksum");
    // Other packets are untouched.
    let other = o.run(idx, &pkts[6]).unwrap();
    assert_eq!(other.packet.unwrap(), pkts[6]);
    assert_eq!(
        u64_at(&map_value(&o, "rewritten", &0u32.to_le_bytes()), 0),
        1
    );
}

#[test]
fn tail_calls_dispatch_by_protocol() {
    let o = load("tail_calls");
    let v = verdicts(&o, "dispatch", "mixed");
    let drops = v.iter().filter(|v| *v == "XDP_DROP").count();
    assert_eq!(drops, 3, "UDP packets go to handle_udp: {v:?}");
    let h = |k: u32| u64_at(&map_value(&o, "handled", &k.to_le_bytes()), 0);
    assert_eq!((h(0), h(1), h(2)), (3, 3, 2));
}

#[test]
fn ringbuf_events_are_emitted_in_order() {
    let o = load("ringbuf_events");
    let idx = o.program("emit_events").unwrap();
    let mut events = Vec::new();
    let mut printk = Vec::new();
    for p in packets("mixed") {
        o.run(idx, &p).unwrap().result.unwrap();
        for m in &o.env.maps {
            events.extend(m.ringbuf_drain());
        }
        for out in o.env.take_output() {
            if let Output::Printk(l) = out {
                printk.push(l);
            }
        }
    }
    assert_eq!(events.len(), 7, "one per IPv4 packet");
    assert_eq!(&events[0][0..4], &[10, 0, 0, 1]);
    assert_eq!(events[0][10], 6);
    assert_eq!(printk, vec!["icmp from a000004".to_string()]);
}

#[test]
fn global_data_and_bpf_loop() {
    let o = load("global_loop");
    let pkts = packets("mixed");
    verdicts(&o, "sum_bytes", "mixed");
    let expected: u64 = 1000
        + pkts
            .iter()
            .map(|p| p.iter().take(16).map(|&b| b as u64).sum::<u64>())
            .sum::<u64>();
    assert_eq!(
        u64_at(&map_value(&o, ".data", &0u32.to_le_bytes()), 0),
        expected
    );
    assert_eq!(
        u64_at(&map_value(&o, ".bss", &0u32.to_le_bytes()), 0),
        pkts.len() as u64
    );
}
