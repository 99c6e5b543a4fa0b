//! libpcap is the oracle: for each filter expression, Debian's `tcpdump`
//! prints libpcap's program as a listing (`-d`) and as numbers (`-ddd`).
//! Our disassembler must print the numbers as that listing, byte for byte;
//! our assembler must read the listing back to those numbers; and the
//! kernel's rules must accept what libpcap emits.

use std::process::Command;

/// The expressions, one a line (shared with the translation test).
fn expressions() -> Vec<&'static str> {
    include_str!("expressions.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

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
    let exprs = expressions();
    for expr in &exprs {
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
    eprintln!("{} expressions, {total} instructions", exprs.len());
}

/// libpcap's programs for a live capture on Linux (`tcpdump -i lo`) read
/// the VLAN tag the kernel took off through ancillary loads: the listing
/// names them as libpcap does (`ldb [vlanp]`) and reads back. (Needs an
/// interface tcpdump may open: root, as in CI.)
#[test]
fn live_capture_listings_match_libpcap() {
    let probe = Command::new("tcpdump")
        .args(["-i", "lo", "-d", "vlan"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "tcpdump -i lo -d is needed (root) and CI must have it"
            );
            eprintln!("skipped: tcpdump cannot open lo here");
            return;
        }
    }
    for expr in [
        "vlan",
        "vlan 100",
        "vlan and tcp",
        "vlan 10 and vlan 20",
        "not vlan",
    ] {
        let listing = tcpdump(&["-i", "lo", "-d"], expr).unwrap();
        let numbers = tcpdump(&["-i", "lo", "-ddd"], expr).unwrap();
        let insns = oxbpf_cbpf::from_decimal(&numbers).unwrap();
        assert!(listing.contains("[vlanp]"), "{expr}: {listing}");
        assert_eq!(oxbpf_cbpf::listing(&insns), listing, "{expr}: listing");
        let back = oxbpf_cbpf::assemble(&listing).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let canon: Vec<_> = insns.iter().map(|i| i.canonical()).collect();
        assert_eq!(back, canon, "{expr}: assembled listing");
    }
}
