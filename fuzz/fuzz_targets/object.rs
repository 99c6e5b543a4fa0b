//! Loading arbitrary bytes as a BPF ELF object never panics; whatever loads
//! decodes, and neither preparing it for running (maps, references) nor
//! verifying its programs panics.
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
        for i in 0..obj.programs.len() {
            let opts = oxbpf_verifier::Options {
                max_insns_processed: 100_000,
                ..Default::default()
            };
            let _ = oxbpf_verifier::verify_object_program(&obj, i, &opts);
        }
    }
});
