//! Parsing arbitrary bytes as BTF never panics, and decoding any bytes as
//! any of its types (as `oxbpf run --dump-maps` decodes map keys and
//! values) never panics and always prints.
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
