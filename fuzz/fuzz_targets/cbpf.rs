//! Classic BPF: any bytes, as a program in any form, never panic the
//! reader or the validator; a decoded program's listing assembles back to
//! it (up to the fields its opcodes ignore), and so do its numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = oxbpf_cbpf::read(data).map(|p| oxbpf_cbpf::validate(&p));
    if let Ok(p) = oxbpf_cbpf::decode(&data[..data.len() / 8 * 8]) {
        let _ = oxbpf_cbpf::validate(&p);
        let canon: Vec<_> = p.iter().map(|i| i.canonical()).collect();
        let listing = oxbpf_cbpf::listing(&p);
        // Unknown opcodes print as `unimp` without their operand: every
        // other program comes back from its listing.
        if p.iter().all(|i| oxbpf_cbpf::known(i.code)) {
            let back = oxbpf_cbpf::assemble(&listing).expect("a listing assembles");
            assert_eq!(back, canon, "{listing}");
        }
        assert_eq!(oxbpf_cbpf::from_decimal(&oxbpf_cbpf::to_decimal(&p)).unwrap(), p);
    }
});
