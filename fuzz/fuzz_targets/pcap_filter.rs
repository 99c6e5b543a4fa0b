//! The filter-language compiler never panics; what it compiles passes the
//! kernel's rules and runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = oxbpf_cbpf::compile(expr) {
        oxbpf_cbpf::validate(&p).expect("compiled programs pass the kernel's rules");
        let frame = [0u8; 64];
        let _ = oxbpf_cbpf::run(&p, &frame, &oxbpf_cbpf::Meta::default());
    }
});
