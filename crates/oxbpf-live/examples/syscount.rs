//! The live-events library in a page: open an object, set a rodata
//! filter, load, attach every program, read ring-buffer records as they
//! come, then read a map — the shape aya and libbpf-rs users know.
//!
//! `cargo run --release -p oxbpf-live --example syscount -- [SECONDS]`
//! (as root; tracefs mounted): counts getppid(2) per process and prints
//! every exec while it runs.

use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = std::env::args().nth(1).map_or(Ok(2.0), |s| s.parse())?;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/live/syscount.o"
    );
    let mut object = oxbpf_obj::load(&std::fs::read(path)?)?;
    // `const volatile __u32 target_tgid`: 0 counts every process.
    object.set_global("target_tgid", "0")?;
    let mut session = oxbpf_live::Session::load(object, &Default::default())?;
    session.attach_all()?;
    for a in session.attachments() {
        eprintln!("{} -> {}", a.program, a.hook);
    }
    let mut events = session.ring_buffer("events")?;
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        events.wait(Duration::from_millis(100));
        events.consume(|r| {
            let pid = u32::from_le_bytes(r[0..4].try_into().unwrap_or_default());
            let comm = String::from_utf8_lossy(&r[8..24]);
            println!("exec {pid} {}", comm.trim_end_matches('\0'));
        });
    }
    session.detach_all();
    let mut counts: Vec<(u32, u64)> = session
        .map("counts")?
        .entries()?
        .into_iter()
        .map(|(k, v)| {
            (
                u32::from_le_bytes(k[..4].try_into().unwrap_or_default()),
                u64::from_le_bytes(v[..8].try_into().unwrap_or_default()),
            )
        })
        .collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    for (pid, n) in counts.iter().take(10) {
        println!("pid {pid}: {n} getppid calls");
    }
    Ok(())
}
