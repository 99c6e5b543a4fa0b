//! Decoding arbitrary bytes never panics; whatever decodes re-encodes to the
//! same bytes and its listing assembles back to them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len() / 8 * 8];
    if let Ok(insns) = oxbpf_isa::decode_bytes(data) {
        let again = oxbpf_isa::slots_to_bytes(&oxbpf_isa::encode_all(insns.iter().map(|l| &l.insn)));
        assert_eq!(again, data);
        let text = oxbpf_isa::listing(&insns);
        assert_eq!(oxbpf_asm::assemble_bytes(&text).expect("listing assembles"), data);
    }
});
