//! The filter-language compiler never panics; what it compiles passes the
//! kernel's rules and runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    for link in [oxbpf_cbpf::Link::Ethernet, oxbpf_cbpf::Link::RawIp] {
        for (optimize, kernel_vlan) in [(true, false), (false, false), (true, true)] {
            let opts = oxbpf_cbpf::Options {
                link,
                optimize,
                kernel_vlan,
            };
            if let Ok(p) = oxbpf_cbpf::compile_with(expr, &opts) {
                oxbpf_cbpf::validate(&p).expect("compiled programs pass the kernel's rules");
                let frame = [0u8; 64];
                let _ = oxbpf_cbpf::run(&p, &frame, &oxbpf_cbpf::Meta::default());
            }
        }
    }
});
