//! `oxbpf capture` (a live capture through a packet socket with a filter
//! expression compiled by oxbpf and attached in the kernel, as tcpdump
//! captures) and `oxbpf replay` (the frames of a capture file sent out of
//! an interface).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

#[derive(clap::Args)]
pub struct CaptureArgs {
    /// The interface to capture on.
    #[arg(short = 'i', long)]
    pub interface: String,
    /// Write the packets to this pcap file (also on Ctrl-C) instead of
    /// printing them.
    #[arg(short = 'w')]
    pub write: Option<PathBuf>,
    /// Stop after this many packets.
    #[arg(short = 'c')]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Attach the eBPF translation of the filter (`SO_ATTACH_BPF`, checked
    /// by the kernel's verifier) instead of the classic program
    /// (`SO_ATTACH_FILTER`).
    #[arg(long)]
    pub ebpf: bool,
    /// The kernel's buffer for packets not yet read, in KiB (tcpdump's
    /// -B); a packet that finds it full is dropped and counted.
    #[arg(short = 'B', default_value_t = 8192)]
    pub buffer_kib: usize,
    /// Do not optimize the filter (tcpdump's -O).
    #[arg(short = 'O')]
    pub no_optimize: bool,
    /// The filter expression (`man pcap-filter`); none keeps every packet.
    #[arg(num_args = 0..)]
    pub expr: Vec<String>,
}

fn ifindex(name: &str) -> Result<u32> {
    oxbpf_sys::net::ifindex(name).with_context(|| format!("no interface {name:?} here"))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What frames on interface `name` start with, from its ARP hardware type
/// (`/sys/class/net/NAME/type`): Ethernet and loopback (an Ethernet
/// header), or none (tun devices: raw IP).
fn link_of(name: &str) -> Result<(oxbpf_cbpf::Link, u32)> {
    let path = format!("/sys/class/net/{name}/type");
    let t: u32 = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {path}"))?
        .trim()
        .parse()
        .with_context(|| path.clone())?;
    match t {
        // ARPHRD_ETHER, ARPHRD_LOOPBACK
        1 | 772 => Ok((oxbpf_cbpf::Link::Ethernet, oxbpf_pcap::LINKTYPE_ETHERNET)),
        // ARPHRD_NONE
        65534 => Ok((oxbpf_cbpf::Link::RawIp, oxbpf_pcap::LINKTYPE_RAW)),
        _ => bail!("{name}: hardware type {t}: captures read Ethernet and raw IP interfaces"),
    }
}

pub fn capture(a: &CaptureArgs) -> Result<ExitCode> {
    let expr = a.expr.join(" ");
    let index = ifindex(&a.interface)?;
    let (link, linktype) = link_of(&a.interface)?;
    let opts = oxbpf_cbpf::Options {
        link,
        optimize: !a.no_optimize,
        // A socket filter sees frames with the outer VLAN tag taken off.
        kernel_vlan: true,
    };
    let p = oxbpf_cbpf::compile_with(&expr, &opts)
        .map_err(|e| crate::commands::filter_error(&expr, e))?;
    let sock = if a.ebpf {
        // The object `oxbpf filter -o` writes, loaded as `oxbpf run
        // --engine kernel` loads objects; the socket holds the program.
        let obj =
            crate::commands::classic_object("oxbpf_capture", &p, oxbpf_cbpf::Hook::SocketFilter)?;
        let k = oxbpf_sys::object::load_object(&obj, None);
        let v = &k.programs[0].verdict;
        let prog = v
            .prog
            .as_ref()
            .map_err(|e| anyhow::anyhow!("the kernel refused the filter: {e}\n{}", v.log))?;
        oxbpf_sys::net::filtered_packet_socket(prog, index)?
    } else {
        let insns: Vec<(u16, u8, u8, u32)> = p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
        oxbpf_sys::net::classic_packet_socket(&insns, index)?
    };
    oxbpf_sys::net::set_recv_buffer(&sock, a.buffer_kib * 1024)?;
    // Counting starts now.
    oxbpf_sys::net::packet_statistics(&sock)?;
    eprintln!(
        "capturing on {}: {} ({} classic instructions, attached in the kernel{})",
        a.interface,
        if expr.is_empty() {
            "every packet"
        } else {
            &expr
        },
        p.len(),
        if a.ebpf { " as eBPF" } else { "" }
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("installing the SIGINT/SIGTERM handler")?;
    }
    let deadline = a
        .timeout
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut kept = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst)
        && a.count.is_none_or(|c| n < c)
        && deadline.is_none_or(|d| Instant::now() < d)
    {
        let Some(f) = oxbpf_sys::net::recv_frame(&sock, 100)? else {
            continue;
        };
        n += 1;
        let data = f.wire();
        let orig_len = (f.len + data.len() - f.data.len()) as u32;
        if a.write.is_some() {
            kept.push(oxbpf_pcap::Packet {
                ts_ns: now_ns(),
                orig_len,
                data,
            });
        } else {
            let ts = now_ns();
            println!(
                "{}.{:06} {} {}",
                ts / 1_000_000_000,
                ts % 1_000_000_000 / 1000,
                if f.outgoing { "Out" } else { "In " },
                if link == oxbpf_cbpf::Link::Ethernet {
                    oxbpf_pcap::describe(&data)
                } else {
                    format!("raw IP, {} bytes", data.len())
                }
            );
        }
    }
    if let Some(w) = &a.write {
        std::fs::write(w, oxbpf_pcap::write_linktype(linktype, &kept))
            .with_context(|| format!("writing {}", w.display()))?;
    }
    let (_, dropped) = oxbpf_sys::net::packet_statistics(&sock)?;
    eprintln!("{n} packets captured, {dropped} dropped by the kernel (buffer full)");
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The interface to send on.
    #[arg(short = 'i', long)]
    pub interface: String,
    /// A pcap file of Ethernet frames.
    pub file: PathBuf,
}

/// `oxbpf replay`: every frame of the file sent once, in order; frames
/// the kernel refuses (shorter than an Ethernet header, longer than the
/// interface's MTU) are counted, not sent.
pub fn replay(a: &ReplayArgs) -> Result<ExitCode> {
    let data =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let (link, packets) =
        oxbpf_pcap::read(&data).with_context(|| format!("{}", a.file.display()))?;
    if link != oxbpf_pcap::LINKTYPE_ETHERNET {
        bail!(
            "{}: link type {link}: only Ethernet frames (1) can be sent",
            a.file.display()
        );
    }
    let sock = oxbpf_sys::net::sending_packet_socket(ifindex(&a.interface)?)?;
    let (mut sent, mut refused) = (0, 0);
    for p in &packets {
        match oxbpf_sys::net::send_frame(&sock, &p.data) {
            Ok(()) => sent += 1,
            Err(_) => refused += 1,
        }
    }
    eprintln!(
        "{sent} frames sent on {}, {refused} refused by the kernel",
        a.interface
    );
    Ok(ExitCode::SUCCESS)
}
