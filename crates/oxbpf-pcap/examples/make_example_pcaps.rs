//! Writes the pcap files the examples run on (examples/pcap/*.pcap).
//! `cargo run -p oxbpf-pcap --example make_example_pcaps [OUT_DIR]`

use oxbpf_pcap::samples::{flows, mixed, pcap};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/pcap".into());
    std::fs::create_dir_all(&dir)?;
    std::fs::write(format!("{dir}/mixed.pcap"), pcap(mixed()))?;
    std::fs::write(format!("{dir}/flows.pcap"), pcap(flows()))?;
    Ok(())
}
