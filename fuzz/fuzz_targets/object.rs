//! Loading arbitrary bytes as a BPF ELF object never panics; whatever loads
//! decodes, and preparing it for running (maps, references) never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sections) = oxbpf_obj::code_sections(data) {
        for s in sections {
            let _ = oxbpf_isa::decode_bytes(&s.data);
        }
    }
    if let Ok(obj) = oxbpf_obj::load(data) {
        for p in &obj.programs {
            oxbpf_isa::decode(&p.insns).expect("loaded programs decode");
        }
        let _ = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, None);
    }
});
