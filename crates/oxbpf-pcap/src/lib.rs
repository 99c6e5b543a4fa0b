//! # oxbpf-pcap: classic pcap files
//!
//! Reads and writes the libpcap file format (both byte orders, micro- and
//! nanosecond timestamps) and builds small test packets (Ethernet, IPv4,
//! IPv6, TCP, UDP, ICMP) with correct checksums. Malformed files are an
//! error naming the byte offset, never a panic.
#![forbid(unsafe_code)]

use std::fmt;

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Timestamp in nanoseconds since the epoch.
    pub ts_ns: u64,
    /// Length on the wire (may exceed `data.len()` when truncated).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A malformed pcap file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PcapError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for PcapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pcap byte {}: {}", self.offset, self.message)
    }
}

/// Link type of the file (1 = Ethernet).
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Largest packet accepted (guards against corrupt lengths).
const MAX_SNAPLEN: u32 = 256 * 1024;

/// Parses a whole pcap file; returns the link type and the packets.
pub fn read(bytes: &[u8]) -> Result<(u32, Vec<Packet>), PcapError> {
    let err = |offset: usize, m: &str| PcapError {
        offset,
        message: m.to_string(),
    };
    if bytes.len() < 24 {
        return Err(err(0, "file is shorter than the 24-byte header"));
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap_or([0; 4]));
    let (le, nanos) = match magic {
        0xa1b2c3d4 => (true, false),
        0xa1b23c4d => (true, true),
        0xd4c3b2a1 => (false, false),
        0x4d3cb2a1 => (false, true),
        _ => return Err(err(0, "not a pcap file (unknown magic number)")),
    };
    let u32_at = |o: usize| -> u32 {
        let b: [u8; 4] = bytes[o..o + 4].try_into().unwrap_or([0; 4]);
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = u32_at(20) & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut pos = 24;
    while pos < bytes.len() {
        if pos + 16 > bytes.len() {
            return Err(err(pos, "truncated record header"));
        }
        let sec = u32_at(pos) as u64;
        let frac = u32_at(pos + 4) as u64;
        let incl = u32_at(pos + 8);
        let orig = u32_at(pos + 12);
        if incl > MAX_SNAPLEN {
            return Err(err(pos + 8, "record length is implausibly large"));
        }
        let start = pos + 16;
        let end = start + incl as usize;
        if end > bytes.len() {
            return Err(err(pos, "record runs past the end of the file"));
        }
        out.push(Packet {
            ts_ns: sec * 1_000_000_000 + if nanos { frac } else { frac * 1000 },
            orig_len: orig,
            data: bytes[start..end].to_vec(),
        });
        pos = end;
    }
    Ok((linktype, out))
}

/// Writes packets as a little-endian, microsecond pcap file (Ethernet).
pub fn write(packets: &[Packet]) -> Vec<u8> {
    write_linktype(LINKTYPE_ETHERNET, packets)
}

/// `pcap` link type of raw IPv4/IPv6 packets (no link header).
pub const LINKTYPE_RAW: u32 = 101;

/// Writes packets as a little-endian, microsecond pcap file of this link
/// type ([`LINKTYPE_ETHERNET`], [`LINKTYPE_RAW`], ...).
pub fn write_linktype(linktype: u32, packets: &[Packet]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(0xa1b2c3d4u32.to_le_bytes());
    v.extend(2u16.to_le_bytes());
    v.extend(4u16.to_le_bytes());
    v.extend(0i32.to_le_bytes());
    v.extend(0u32.to_le_bytes());
    v.extend(65535u32.to_le_bytes());
    v.extend(linktype.to_le_bytes());
    for p in packets {
        v.extend(((p.ts_ns / 1_000_000_000) as u32).to_le_bytes());
        v.extend((((p.ts_ns % 1_000_000_000) / 1000) as u32).to_le_bytes());
        v.extend((p.data.len() as u32).to_le_bytes());
        v.extend(p.orig_len.max(p.data.len() as u32).to_le_bytes());
        v.extend(&p.data);
    }
    v
}

/// Internet checksum (RFC 1071) of `data`, with an initial partial sum.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = initial as u64;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += w as u64;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Builders for test packets.
/// A one-line summary of an Ethernet frame, as tcpdump would name it:
/// `10.0.0.1:40000 > 10.0.0.9:80 TCP, 54 bytes`, `ARP, 42 bytes`,
/// `fe80::1 > ff02::1 ICMPv6, 70 bytes`; frames it cannot parse say
/// `ethertype 0x88cc, 60 bytes` or `truncated, 10 bytes`.
pub fn describe(frame: &[u8]) -> String {
    let len = frame.len();
    let be16 = |o: usize| u16::from_be_bytes([frame[o], frame[o + 1]]);
    if len < 14 {
        return format!("truncated, {len} bytes");
    }
    let (mut ethertype, mut l3) = (be16(12), 14);
    let mut vlan = String::new();
    while matches!(ethertype, 0x8100 | 0x88a8) && len >= l3 + 4 {
        vlan.push_str(&format!("vlan {} ", be16(l3) & 0x0fff));
        ethertype = be16(l3 + 2);
        l3 += 4;
    }
    let body = match ethertype {
        0x0800 if len >= l3 + 20 => {
            let ihl = (frame[l3] & 0x0f) as usize * 4;
            let proto = frame[l3 + 9];
            let ip = |o: usize| {
                format!(
                    "{}.{}.{}.{}",
                    frame[o],
                    frame[o + 1],
                    frame[o + 2],
                    frame[o + 3]
                )
            };
            let frag = be16(l3 + 6) & 0x1fff != 0;
            let l4 = l3 + ihl;
            transport(frame, proto, l4, frag, ip(l3 + 12), ip(l3 + 16))
        }
        0x86dd if len >= l3 + 40 => {
            let ip6 = |o: usize| {
                let a: [u8; 16] = frame[o..o + 16].try_into().unwrap_or([0; 16]);
                std::net::Ipv6Addr::from(a).to_string()
            };
            transport(
                frame,
                frame[l3 + 6],
                l3 + 40,
                false,
                ip6(l3 + 8),
                ip6(l3 + 24),
            )
        }
        0x0806 => "ARP".to_string(),
        0x0800 | 0x86dd => "truncated IP".to_string(),
        t => format!("ethertype {t:#06x}"),
    };
    format!("{vlan}{body}, {len} bytes")
}

fn transport(f: &[u8], proto: u8, l4: usize, frag: bool, src: String, dst: String) -> String {
    let name = match proto {
        1 => "ICMP",
        6 => "TCP",
        17 => "UDP",
        58 => "ICMPv6",
        _ => "",
    };
    let ports = matches!(proto, 6 | 17) && !frag && f.len() >= l4 + 4;
    let label = if name.is_empty() {
        format!("proto {proto}")
    } else {
        name.to_string()
    };
    if ports {
        let sp = u16::from_be_bytes([f[l4], f[l4 + 1]]);
        let dp = u16::from_be_bytes([f[l4 + 2], f[l4 + 3]]);
        format!("{src}:{sp} > {dst}:{dp} {label}")
    } else if frag {
        format!("{src} > {dst} {label} fragment")
    } else {
        format!("{src} > {dst} {label}")
    }
}

pub mod build {
    use super::checksum;

    pub const ETH_P_IP: u16 = 0x0800;
    pub const ETH_P_IPV6: u16 = 0x86dd;
    pub const ETH_P_ARP: u16 = 0x0806;

    pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(14 + payload.len());
        v.extend(dst);
        v.extend(src);
        v.extend(ethertype.to_be_bytes());
        v.extend(payload);
        v
    }

    /// An IPv4 header (no options) with a correct checksum, plus payload.
    pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, ttl, proto, 0, 0];
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h.extend(src);
        h.extend(dst);
        let c = checksum(&h, 0);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend(payload);
        h
    }

    fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
        let mut s = 0u32;
        for c in src.chunks(2).chain(dst.chunks(2)) {
            s += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        s + proto as u32 + len as u32
    }

    /// A TCP segment (20-byte header) with a correct checksum for IPv4.
    pub fn tcp(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut t = Vec::with_capacity(20 + payload.len());
        t.extend(sport.to_be_bytes());
        t.extend(dport.to_be_bytes());
        t.extend(1u32.to_be_bytes());
        t.extend(0u32.to_be_bytes());
        t.extend([0x50, flags]);
        t.extend(64240u16.to_be_bytes());
        t.extend([0, 0, 0, 0]);
        t.extend(payload);
        let c = checksum(&t, pseudo_sum(src, dst, 6, t.len()));
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    /// A UDP datagram with a correct checksum for IPv4.
    pub fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = (8 + payload.len()) as u16;
        let mut u = Vec::with_capacity(len as usize);
        u.extend(sport.to_be_bytes());
        u.extend(dport.to_be_bytes());
        u.extend(len.to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        let mut c = checksum(&u, pseudo_sum(src, dst, 17, u.len()));
        if c == 0 {
            c = 0xffff;
        }
        u[6..8].copy_from_slice(&c.to_be_bytes());
        u
    }

    /// An ICMP echo request.
    pub fn icmp_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut m = vec![8, 0, 0, 0];
        m.extend(id.to_be_bytes());
        m.extend(seq.to_be_bytes());
        m.extend(payload);
        let c = checksum(&m, 0);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    /// Ethernet + IPv4 + TCP in one call.
    pub fn eth_ipv4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let t = tcp(src, dst, sport, dport, flags, &[]);
        ethernet(MAC_B, MAC_A, ETH_P_IP, &ipv4(src, dst, 6, 64, &t))
    }

    /// Ethernet + IPv4 + UDP in one call.
    pub fn eth_ipv4_udp(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let u = udp(src, dst, sport, dport, payload);
        ethernet(MAC_B, MAC_A, ETH_P_IP, &ipv4(src, dst, 17, 64, &u))
    }

    pub const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    pub const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
}

/// The packet sets oxbpf's examples and tests run on; the files in
/// examples/pcap are `samples::pcap(samples::mixed())` and so on.
pub mod samples {
    use super::build::*;
    use super::{Packet, write};

    /// The mixed traffic every packet example runs on.
    pub fn mixed() -> Vec<Vec<u8>> {
        let arp = ethernet([0xff; 6], MAC_A, ETH_P_ARP, &[0u8; 28]);
        let icmp = ethernet(
            MAC_B,
            MAC_A,
            ETH_P_IP,
            &ipv4(
                [10, 0, 0, 4],
                [10, 0, 0, 2],
                1,
                64,
                &icmp_echo(7, 1, b"ping"),
            ),
        );
        vec![
            eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 9], 40000, 80, 0x02),
            eth_ipv4_udp(
                [10, 0, 0, 3],
                [10, 0, 0, 53],
                5353,
                53,
                b"\x12\x34\x01\x00\x00\x01",
            ),
            icmp,
            eth_ipv4_tcp([10, 0, 0, 66], [10, 0, 0, 2], 1234, 22, 0x02),
            arp,
            eth_ipv4_udp([10, 0, 0, 5], [10, 0, 0, 6], 1234, 9999, b"hello"),
            eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 40001, 443, 0x10),
            eth_ipv4_udp([10, 0, 0, 53], [10, 0, 0, 3], 53, 5353, b"\x12\x34\x81\x80"),
        ]
    }

    /// Six flows, the first seen again late, for the LRU flow table (4 entries).
    pub fn flows() -> Vec<Vec<u8>> {
        let f = |n: u8| eth_ipv4_udp([10, 0, 1, n], [10, 0, 2, 1], 1000 + n as u16, 7, b"x");
        vec![f(1), f(2), f(3), f(1), f(4), f(5), f(6), f(1)]
    }

    pub fn pcap(packets: Vec<Vec<u8>>) -> Vec<u8> {
        let pkts: Vec<Packet> = packets
            .into_iter()
            .enumerate()
            .map(|(i, data)| Packet {
                ts_ns: 1_700_000_000_000_000_000 + i as u64 * 1_000_000,
                orig_len: data.len() as u32,
                data,
            })
            .collect();
        write(&pkts)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn describes_frames_as_tcpdump_names_them() {
        use super::{build, describe};
        let tcp = build::eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 9], 40000, 80, 0x02);
        assert_eq!(
            describe(&tcp),
            format!("10.0.0.1:40000 > 10.0.0.9:80 TCP, {} bytes", tcp.len())
        );
        assert_eq!(describe(&[0u8; 10]), "truncated, 10 bytes");
        let mut arp = vec![0u8; 42];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(describe(&arp), "ARP, 42 bytes");
        // Never panics, whatever the bytes.
        let mut seed = 7u64;
        for n in 0..2000 {
            let frame: Vec<u8> = (0..n % 80)
                .map(|i| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    if i == 12 {
                        [0x08, 0x86, 0x81][n % 3]
                    } else if i == 13 {
                        [0x00, 0xdd, 0x00][n % 3]
                    } else {
                        (seed >> 33) as u8
                    }
                })
                .collect();
            let _ = describe(&frame);
        }
    }

    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let pkts = vec![
            Packet {
                ts_ns: 1_500_000_000_123_000,
                orig_len: 3,
                data: vec![1, 2, 3],
            },
            Packet {
                ts_ns: 2_000_000_000,
                orig_len: 60,
                data: build::eth_ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 53, b"q"),
            },
        ];
        let bytes = write(&pkts);
        let (lt, back) = read(&bytes).unwrap();
        assert_eq!(lt, LINKTYPE_ETHERNET);
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].data, vec![1, 2, 3]);
        assert_eq!(back[0].ts_ns, 1_500_000_000_123_000);
        assert!(
            read(&bytes[..bytes.len() - 1])
                .unwrap_err()
                .message
                .contains("past the end")
        );
        assert!(read(b"garbage-garbage-garbage-garbage").is_err());
        assert!(read(&[]).is_err());
    }

    #[test]
    fn built_checksums_verify() {
        let ip = build::ipv4([192, 168, 0, 1], [192, 168, 0, 2], 17, 64, &[]);
        assert_eq!(checksum(&ip[..20], 0), 0);
        let icmp = build::icmp_echo(1, 2, b"abc");
        assert_eq!(checksum(&icmp, 0), 0);
    }
}
