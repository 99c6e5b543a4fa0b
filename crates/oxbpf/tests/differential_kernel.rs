//! Kernel vs interpreter. Needs root and bpf(2) (CI has both); elsewhere
//! each test prints why it skips.
//!
//! * every conformance test (standard suite and ours) the kernel can run
//!   gives the same r0 (low 32 bits: what BPF_PROG_TEST_RUN returns);
//! * every example program gives the same verdict, output packet and map
//!   contents on every packet of its pcap.

mod common;

use std::path::PathBuf;

use oxbpf_conformance::{Engine, collect_files, parse};

use oxbpf_conformance::engines::{ConformanceEngine, EngineKind};

/// The tests here run one at a time: the leak check compares the kernel's
/// object lists before and after.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Waits for the kernel's deferred frees (maps go away after an RCU grace
/// period and a work item) until no object exists that did not exist in
/// `before`. Objects of earlier tests may still be going away meanwhile, so
/// only new ids count as leaks.
fn assert_no_leaks(before: &(Vec<u32>, Vec<u32>, Vec<u32>)) {
    let new = |after: &(Vec<u32>, Vec<u32>, Vec<u32>)| {
        let f = |b: &Vec<u32>, a: &Vec<u32>| {
            a.iter()
                .filter(|i| !b.contains(i))
                .copied()
                .collect::<Vec<u32>>()
        };
        (
            f(&before.0, &after.0),
            f(&before.1, &after.1),
            f(&before.2, &after.2),
        )
    };
    let none = (Vec::new(), Vec::new(), Vec::new());
    let mut left = new(&oxbpf_sys::object_ids().unwrap());
    for _ in 0..100 {
        if left == none {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = new(&oxbpf_sys::object_ids().unwrap());
    }
    assert_eq!(
        left, none,
        "kernel objects left behind (program, map and link ids)"
    );
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn conformance_results_agree_with_the_kernel() {
    if !common::kernel_available() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = oxbpf_sys::object_ids().unwrap();
    let mut dirs = vec![root().join("tests/data")];
    if let Some(s) = common::shared_dir() {
        dirs.push(s.join("bpf_conformance/tests"));
    }
    let interp = ConformanceEngine {
        kind: EngineKind::Interpreter,
    };
    let kern = ConformanceEngine {
        kind: EngineKind::Kernel,
    };
    let (mut compared, mut kernel_rejects) = (0, 0);
    let mut disagreements = Vec::new();
    for f in collect_files(&dirs).unwrap() {
        let case = parse(
            &f.display().to_string(),
            &std::fs::read_to_string(&f).unwrap(),
        )
        .unwrap();
        let Ok(program) = case.program() else {
            continue;
        };
        let (mut m1, mut m2) = (case.mem.clone(), case.mem.clone());
        let ours = interp.run(&program, &mut m1);
        match kern.run(&program, &mut m2) {
            Err(_) => kernel_rejects += 1,
            Ok(k) => {
                compared += 1;
                match ours {
                    Ok(v) if v as u32 as u64 == k => {}
                    other => disagreements.push(format!(
                        "{}: interpreter {other:?}, kernel {k:#x}",
                        f.display()
                    )),
                }
            }
        }
    }
    eprintln!("{compared} tests compared with the kernel, {kernel_rejects} not runnable there");
    assert!(disagreements.is_empty(), "{disagreements:#?}");
    assert!(compared > 80);
    assert_no_leaks(&before);
}

#[test]
fn examples_agree_with_the_kernel() {
    if !common::kernel_available() {
        return;
    }
    let cases = [
        ("xdp_firewall", "xdp_firewall", "mixed"),
        ("proto_counter", "count_protocols", "mixed"),
        ("socket_filter", "dns_only", "mixed"),
        ("tc_rewrite", "rewrite_http", "mixed"),
        ("tail_calls", "dispatch", "mixed"),
        ("ringbuf_events", "emit_events", "mixed"),
        ("global_loop", "sum_bytes", "mixed"),
        ("lru_flows", "track_flows", "flows"),
    ];
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let before = oxbpf_sys::object_ids().unwrap();
    let ncpus = oxbpf_sys::possible_cpus() as u32;
    for (example, prog, pcap) in cases {
        let bytes = std::fs::read(root().join(format!("examples/c/{example}.o"))).unwrap();
        let obj = oxbpf_obj::load(&bytes).unwrap();
        // A socket filter on a packet socket sees the Ethernet header, but
        // the kernel's test run of a socket filter starts at the network
        // header; a tc classifier's test run sees the whole frame, so the
        // socket filter is compared as one (same helpers, same LD_ABS).
        let as_type = (example == "socket_filter").then_some(oxbpf_obj::ProgramType::SchedCls);
        let ours = oxbpf_vm::loaded::LoadedObject::new(&obj, ncpus, as_type).unwrap();
        let theirs = oxbpf_sys::object::load_object(&obj, as_type);
        let oi = ours.program(prog).unwrap();
        let ki = theirs
            .programs
            .iter()
            .position(|p| p.def.name == prog)
            .unwrap();
        let kprog = theirs.programs[ki]
            .verdict
            .prog
            .as_ref()
            .unwrap_or_else(|e| panic!("{example}: kernel rejected: {e}"));
        let raw = std::fs::read(root().join(format!("examples/pcap/{pcap}.pcap"))).unwrap();
        let packets: Vec<Vec<u8>> = oxbpf_pcap::read(&raw)
            .unwrap()
            .1
            .into_iter()
            .map(|p| p.data)
            .collect();
        for (n, p) in packets.iter().enumerate() {
            let o = ours.run(oi, p).unwrap();
            let r = o.result.unwrap();
            let k = kprog.test_run(p, None, 1).unwrap();
            assert_eq!(r.r0 as u32, k.retval, "{example} packet {n}: return value");
            assert_eq!(
                o.packet.as_deref(),
                Some(k.data_out.as_slice()),
                "{example} packet {n}: output packet"
            );
        }
        // Map contents (per-CPU maps: summed over CPUs; the kernel ran on
        // whichever CPU the test thread was on). LRU maps are compared on
        // their keys only when the kernel kept all of them: the kernel's LRU
        // is per-CPU and approximate by design.
        for (mi, name) in ours.map_names.iter().enumerate() {
            let om = &ours.env.maps[mi];
            let Some(km) = theirs.maps[mi].as_ref() else {
                continue;
            };
            let t = om.spec.map_type;
            if matches!(t, 3 | 4 | 27 | 9 | 10) {
                continue; // prog arrays hold fds; ringbuf/perf are streams; LRU see above
            }
            let sum = |entries: Vec<(Vec<u8>, Vec<u8>)>,
                       per_cpu: bool,
                       vs: usize|
             -> Vec<(Vec<u8>, Vec<u8>)> {
                let mut out: Vec<(Vec<u8>, Vec<u8>)> = entries
                    .into_iter()
                    .map(|(k, v)| {
                        if !per_cpu {
                            return (k, v[..vs].to_vec());
                        }
                        let stride = vs.div_ceil(8) * 8;
                        let mut acc = vec![0u64; vs / 8];
                        for c in v.chunks(stride) {
                            for (i, w) in c[..vs].chunks(8).enumerate() {
                                acc[i] =
                                    acc[i].wrapping_add(u64::from_le_bytes(w.try_into().unwrap()));
                            }
                        }
                        (k, acc.iter().flat_map(|x| x.to_le_bytes()).collect())
                    })
                    .collect();
                out.sort();
                out
            };
            let per_cpu = matches!(t, 5 | 6);
            let vs = om.spec.value_size as usize;
            let a = sum(om.entries(), per_cpu, vs);
            let b = sum(km.entries().unwrap(), per_cpu, vs);
            assert_eq!(a, b, "{example}: map {name}");
        }
        drop(theirs);
    }
    // Nothing oxbpf created is left in the kernel.
    assert_no_leaks(&before);
}
