//! `oxbpf top --json` sees a program this test loads and runs, with its
//! run count growing, and leaves the kernel's statistics as it found them
//! (off again when they were off).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn stats_switch() -> String {
    std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn top_json_sees_a_running_program_and_restores_the_statistics_switch() {
    if !common::kernel_available() {
        return;
    }
    let raw = oxbpf_asm::assemble_raw("r0 = 1\nexit\n").unwrap();
    let mut obj = oxbpf_obj::Object::from_raw_program("oxtop_probe", raw);
    obj.programs[0].kind = oxbpf_obj::ProgramType::SocketFilter;
    let k = oxbpf_sys::object::load_object(&obj, None);
    let prog = k.programs[0]
        .verdict
        .prog
        .as_ref()
        .expect("the kernel loads r0 = 1");
    let id = oxbpf_sys::info::prog_info(&prog.fd).unwrap().id;
    let before = stats_switch();
    let mut child = Command::new(common::oxbpf_bin())
        .args(["top", "--json", "--count", "4", "--interval", "0.3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Run the program while top samples.
    let stop = Arc::new(AtomicBool::new(false));
    let during = std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let pkt = [0u8; 64];
            while !stop.load(Ordering::SeqCst) {
                let _ = prog.test_run(&pkt, None, 100);
            }
        });
        let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .collect();
        stop.store(true, Ordering::SeqCst);
        runner.join().unwrap();
        lines
    });
    let lines = during;
    assert!(child.wait().unwrap().success());
    assert_eq!(lines.len(), 4, "{lines:?}");
    let mut counts = Vec::new();
    let mut rates = Vec::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let p = v["programs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"].as_u64() == Some(id as u64))
            .unwrap_or_else(|| panic!("program {id} not in {l}"));
        assert_eq!(p["name"], "oxtop_probe");
        assert_eq!(p["type"], "socket_filter");
        counts.push(p["run_cnt"].as_u64().unwrap());
        rates.push(p["events_per_sec"].as_f64().unwrap());
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(counts[3] > counts[0], "the run count grows: {counts:?}");
    assert!(rates.iter().any(|r| *r > 0.0), "{rates:?}");
    // Counting stops with top when it was off before (the switch itself
    // is untouched: BPF_ENABLE_STATS holds the kernel's counter, not it).
    assert_eq!(stats_switch(), before);
    if before == "0" {
        let cnt = |p: &oxbpf_sys::Prog| oxbpf_sys::info::prog_info(&p.fd).unwrap().run_cnt;
        let c0 = cnt(prog);
        prog.test_run(&[0u8; 64], None, 1000).unwrap();
        assert_eq!(cnt(prog), c0, "statistics are off again after top");
    }
    eprintln!("run counts {counts:?}, events/s {rates:?}");
}
