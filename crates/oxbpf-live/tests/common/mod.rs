//! Shared by the live test binaries: the prerequisites check, the leak
//! check, a veth pair into a network namespace.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// Live tests share the kernel's object tables: one at a time, so the
/// leak checks see only their own objects.
pub static KERNEL: Mutex<()> = Mutex::new(());

pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

pub fn object(name: &str) -> oxbpf_obj::Object {
    let path = root().join("examples/live").join(name);
    oxbpf_obj::load(&std::fs::read(&path).unwrap()).unwrap()
}

/// Whether the live prerequisites hold; outside CI, says why not.
pub fn live() -> bool {
    let why = if oxbpf_sys::available().is_err() {
        Some("bpf(2) is not usable (not root?)")
    } else if oxbpf_sys::perf::tracefs_root().is_none() {
        Some("tracefs is not mounted")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("live test cannot run in CI: {why}")
        }
        Some(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

/// The kernel's program, map and link ids.
pub fn kernel_objects() -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    oxbpf_sys::object_ids().unwrap()
}

pub fn assert_nothing_left(before: &(Vec<u32>, Vec<u32>, Vec<u32>)) {
    // Nothing new may remain (objects of an earlier test may still be
    // going away).
    let left = oxbpf_sys::objects_left_since(before, Duration::from_secs(2)).unwrap();
    assert_eq!(
        left,
        Default::default(),
        "kernel objects left behind (programs, maps, links)"
    );
}

/// A veth pair: `oxa<id>` here (10.199.<id>.1/24) and `oxb<id>` in network
/// namespace `oxbpf-<id>` (10.199.<id>.2/24); removed on drop (deleting
/// the namespace deletes the pair).
pub struct Veth {
    pub ns: String,
    pub here: String,
    pub subnet: u8,
}

pub fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip(8) from iproute2");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Veth {
    pub fn new(subnet: u8) -> Veth {
        let id = format!("{}{subnet}", std::process::id() % 10000);
        let v = Veth {
            ns: format!("oxbpf-{id}"),
            here: format!("oxa{id}"),
            subnet,
        };
        let peer = format!("oxb{id}");
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &v.ns])
            .output();
        ip(&["netns", "add", &v.ns]);
        ip(&[
            "link", "add", &v.here, "type", "veth", "peer", "name", &peer, "netns", &v.ns,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("10.199.{subnet}.1/24"),
            "dev",
            &v.here,
        ]);
        ip(&["link", "set", &v.here, "up"]);
        ip(&[
            "-n",
            &v.ns,
            "addr",
            "add",
            &format!("10.199.{subnet}.2/24"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &v.ns, "link", "set", &peer, "up"]);
        ip(&["-n", &v.ns, "link", "set", "lo", "up"]);
        v
    }

    /// Sends `n` UDP datagrams from the namespace to port 9999 here
    /// (bash's /dev/udp), and returns how many a socket here received.
    pub fn udp_to_here(&self, n: usize) -> usize {
        let addr = format!("10.199.{}.1", self.subnet);
        let sock = std::net::UdpSocket::bind((addr.as_str(), 9999)).unwrap();
        sock.set_nonblocking(true).unwrap();
        let script = format!("for i in $(seq {n}); do echo x > /dev/udp/{addr}/9999; done");
        let st = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "bash", "-c", &script])
            .status()
            .unwrap();
        assert!(st.success());
        std::thread::sleep(Duration::from_millis(100));
        let mut got = 0;
        let mut buf = [0u8; 64];
        while sock.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .output();
    }
}
