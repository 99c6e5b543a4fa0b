//! Reading arbitrary bytes as a BPF ELF object never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sections) = oxbpf_obj::code_sections(data) {
        for s in sections {
            let _ = oxbpf_isa::decode_bytes(&s.data);
        }
    }
});
