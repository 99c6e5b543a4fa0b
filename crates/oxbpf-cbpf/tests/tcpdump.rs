//! libpcap is the oracle: for each filter expression, Debian's `tcpdump`
//! prints libpcap's program as a listing (`-d`) and as numbers (`-ddd`).
//! Our disassembler must print the numbers as that listing, byte for byte;
//! our assembler must read the listing back to those numbers; and the
//! kernel's rules must accept what libpcap emits.

use std::process::Command;

const EXPRESSIONS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "rarp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "host 10.0.0.1",
    "src host 192.168.1.10",
    "dst host 192.168.1.10",
    "host fe80::1",
    "net 10.0.0.0/8",
    "src net 172.16.0.0 mask 255.240.0.0",
    "dst net 2001:db8::/32",
    "port 53",
    "tcp port 80",
    "udp dst port 53",
    "tcp src port 22",
    "portrange 1000-2000",
    "tcp dst portrange 8000-8080",
    "ether host 00:11:22:33:44:55",
    "ether src 00:11:22:33:44:55",
    "ether dst ff:ff:ff:ff:ff:ff",
    "ether broadcast",
    "ether multicast",
    "ip broadcast",
    "ip multicast",
    "ip6 multicast",
    "vlan",
    "vlan 10",
    "vlan and tcp",
    "vlan 100 and host 10.1.1.1",
    "mpls",
    "mpls 42",
    "ip proto 47",
    "ip6 proto 17",
    "proto \\tcp",
    "len > 100",
    "len <= 64",
    "greater 1000",
    "less 60",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) != 0",
    "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0",
    "tcp[13] = 2",
    "ip[0] & 0xf > 5",
    "ip[2:2] > 576",
    "ip[6:2] & 0x1fff != 0",
    "udp[8:4] = 0x12345678",
    "icmp[icmptype] = icmp-echo",
    "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply",
    "ip[2:2] - 4 * (ip[0] & 0x0f) > 10",
    "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420",
    "ip and not tcp",
    "not arp and not icmp",
    "host 10.0.0.1 and (port 80 or port 443)",
    "(tcp or udp) and not port 22",
    "tcp and (dst port 80 or dst port 8080) and src net 10.0.0.0/8",
    "ip6 and tcp and port 443",
    "ip host 1.2.3.4 or ip6 host ::1",
    "ether proto 0x88cc",
    "ether[0] & 1 != 0",
    "ip[8] < 5",
    "udp and ip[9] = 17 and udp[4:2] > 100",
    "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
    "ip[1] & 0xfc = 0xb8",
    "tcp[0:2] % 7 = 3",
    "udp[0:2] / 2 > 100",
    "ip[16] ^ 0xff = 0",
    "ip[12:4] - ip[16:4] = 0",
    "tcp[4:4] * 2 > 8",
];

fn tcpdump(args: &[&str], expr: &str) -> Option<String> {
    let out = Command::new("tcpdump").args(args).arg(expr).output().ok()?;
    assert!(
        out.status.success(),
        "tcpdump {args:?} {expr:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn listings_and_numbers_match_libpcap() {
    if Command::new("tcpdump").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tcpdump is needed (Debian: tcpdump) and CI must have it"
        );
        eprintln!("skipped: no tcpdump");
        return;
    }
    let mut total = 0;
    for expr in EXPRESSIONS {
        let listing = tcpdump(&["-d"], expr).unwrap();
        let numbers = tcpdump(&["-ddd"], expr).unwrap();
        let insns = oxbpf_cbpf::from_decimal(&numbers).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(oxbpf_cbpf::listing(&insns), listing, "{expr}: listing");
        let back = oxbpf_cbpf::assemble(&listing).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let canon: Vec<_> = insns.iter().map(|i| i.canonical()).collect();
        assert_eq!(back, canon, "{expr}: assembled listing");
        assert_eq!(oxbpf_cbpf::to_decimal(&insns), numbers, "{expr}: -ddd");
        let c = tcpdump(&["-dd"], expr).unwrap();
        assert_eq!(oxbpf_cbpf::to_c(&insns), c, "{expr}: -dd");
        oxbpf_cbpf::validate(&insns).unwrap_or_else(|e| panic!("{expr}: {e}"));
        total += insns.len();
    }
    eprintln!("{} expressions, {total} instructions", EXPRESSIONS.len());
}
