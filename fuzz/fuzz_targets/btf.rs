//! Parsing arbitrary bytes as BTF never panics, decoding any bytes as any
//! of its types (as `oxbpf run --dump-maps` decodes map keys and values)
//! never panics and always prints, and the rewrites for the kernel
//! (DATASECs fixed, externs sanitized, hidden functions made static) never
//! panic and give BTF that parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input: BTF, then the value bytes.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (split as usize * rest.len() / 256).min(rest.len());
    let (raw, value) = rest.split_at(at);
    let Ok(btf) = oxbpf_obj::Btf::parse(raw) else {
        return;
    };
    let fixed = btf.with_fixed_datasecs(|_| Some(64), |_, _| Some(8));
    oxbpf_obj::Btf::parse(&fixed).expect("the kernel's copy of valid BTF parses");
    if let Ok(b) = btf.with_static_funcs(|n| n.len() % 2 == 0) {
        assert_eq!(b.types.len(), btf.types.len());
    }
    for id in 0..btf.types.len().min(64) as u32 {
        let size = btf.size_of(id).unwrap_or(0).min(4096) as usize;
        let mut bytes = value.to_vec();
        bytes.resize(size, 0xa5);
        if let Some(v) = btf.decode(id, &bytes) {
            let _ = v.to_string();
        }
        let _ = btf.decode(id, value);
    }
});
