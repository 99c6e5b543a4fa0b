//! Classic BPF: any bytes, as a program in any form, never panic the
//! reader or the validator; a decoded program's listing assembles back to
//! it (up to the fields its opcodes ignore), and so do its numbers; a
//! valid program and its optimized form return the same on packets made
//! of the input's bytes (every length up to 64).
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
        if oxbpf_cbpf::validate(&p).is_ok() {
            let o = oxbpf_cbpf::optimize(&p);
            assert!(o.len() <= p.len());
            oxbpf_cbpf::validate(&o).expect("an optimized program passes the kernel's rules");
            let meta = oxbpf_cbpf::Meta::default();
            for n in 0..data.len().min(64) {
                let pkt = &data[..n];
                assert_eq!(
                    oxbpf_cbpf::run(&p, pkt, &meta),
                    oxbpf_cbpf::run(&o, pkt, &meta),
                    "{listing}\noptimized:\n{}",
                    oxbpf_cbpf::listing(&o)
                );
            }
        }
    }
});
