//! `oxbpf attach` on the live kernel: records stream as JSON while a
//! workload runs, SIGINT stops it cleanly (maps printed, exit 0), and the
//! kernel holds no program, map or link of ours afterwards.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The live tests here share the kernel's object tables: one at a time,
/// so the leak check sees only its own objects.
static KERNEL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn ids() -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    oxbpf_sys::object_ids().unwrap()
}

#[test]
fn attach_streams_events_and_stops_cleanly_on_sigint() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kernel_available() || oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs root, bpf(2) and a mounted tracefs");
        return;
    }
    let before = ids();
    let mut child = Command::new(common::oxbpf_bin())
        .args([
            "attach",
            "examples/live/syscount.o",
            "--json",
            "--event-type",
            "struct event",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut progress = String::new();
    while !progress.contains("Ctrl-C to stop") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("oxbpf attach ended early: {progress}");
        }
        progress.push_str(&line);
    }
    assert!(
        progress.contains("attached count_getppid to tracepoint syscalls:sys_enter_getppid"),
        "{progress}"
    );
    assert!(
        progress.contains("attached on_exec to raw tracepoint sched_process_exec"),
        "{progress}"
    );
    let workload = Command::new("/bin/true").spawn().unwrap();
    let pid = workload.id();
    let mut workload = workload;
    workload.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(out.status.success(), "exit {:?}: {rest}", out.status);
    assert!(rest.contains("detached 2 programs"), "{rest}");
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        rows.iter().any(|r| r["ringbuf"] == "events"
            && r["event"]["pid"] == pid
            && r["event"]["comm"] == "true"),
        "no exec event of /bin/true (pid {pid}) in {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r["map"] == "counts"),
        "the maps are printed at the end"
    );
    assert_nothing_left(&before);
}

/// Nothing the kernel holds now that it did not hold before (objects of
/// an earlier test may still be going away). The kernel frees programs and
/// maps from RCU callbacks after the last fd closes: wait for it.
fn assert_nothing_left(before: &(Vec<u32>, Vec<u32>, Vec<u32>)) {
    let left = oxbpf_sys::objects_left_since(before, Duration::from_secs(2)).unwrap();
    assert_eq!(
        left,
        Default::default(),
        "kernel objects left behind (programs, maps, links)"
    );
}

#[test]
fn attach_names_what_is_missing() {
    let out = Command::new(common::oxbpf_bin())
        .args(["attach", "examples/live/syscount.o", "--program", "nope"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "examples/live/syscount.o: no program `nope`; the programs are count_getppid, on_exec"
        ),
        "{err}"
    );
    let out = Command::new(common::oxbpf_bin())
        .args([
            "attach",
            "examples/live/syscount.o",
            "--event-type",
            "struct nothing",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--event-type \"struct nothing\": no such type in examples/live/syscount.o's BTF"
        ),
        "{err}"
    );
}

/// Runs `oxbpf attach OBJECT --json --duration 1.5`, makes `calls`
/// getppid(2) calls once it is attached, and returns its JSON lines.
fn attach_json_while_calling_getppid(object: &str, calls: usize) -> Vec<serde_json::Value> {
    let mut child = Command::new(common::oxbpf_bin())
        .args(["attach", object, "--json", "--duration", "1.5"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Ctrl-C to stop") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "oxbpf attach ended early"
        );
    }
    for _ in 0..calls {
        let _ = std::os::unix::process::parent_id();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn bpf_printk_lines_come_from_the_trace_pipe() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kernel_available() || oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs root, bpf(2) and a mounted tracefs");
        return;
    }
    let lines = attach_json_while_calling_getppid("examples/live/printk.o", 3);
    let me = format!("getppid from {}", std::process::id());
    let mine = lines
        .iter()
        .filter(|l| l["trace_printk"] == me.as_str())
        .count();
    assert!(mine >= 3, "{mine} of our 3 printk lines in {lines:?}");
}

#[test]
fn per_cpu_maps_print_per_cpu_and_summed() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kernel_available() || oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs root, bpf(2) and a mounted tracefs");
        return;
    }
    let rows = attach_json_while_calling_getppid("examples/live/percpu.o", 10);
    let map = rows
        .iter()
        .find(|r| r["map"] == "per_cpu_calls")
        .expect("the per-CPU map");
    let me = std::process::id();
    let entry = map["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key_btf"] == me)
        .unwrap_or_else(|| panic!("no entry for pid {me}: {map}"));
    let cpus = entry["value_btf"].as_array().unwrap();
    assert_eq!(
        cpus.len(),
        oxbpf_sys::possible_cpus(),
        "one value per possible CPU"
    );
    let per_cpu: u64 = cpus.iter().map(|c| c["calls"].as_u64().unwrap()).sum();
    assert_eq!(per_cpu, 10);
    assert_eq!(entry["value_sum"]["calls"], 10);
}

/// A C program that spins in `oxbpf_busy_spin` for four seconds, built
/// with gcc (symbols and DWARF kept): the profiled workload.
fn busy_program() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oxbpf-busy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("busy.c");
    std::fs::write(
        &src,
        "#include <time.h>\n\
         __attribute__((noinline)) unsigned long oxbpf_busy_spin(int s) {\n\
           volatile unsigned long x = 0; time_t end = time(0) + s;\n\
           while (time(0) < end) for (int i = 0; i < 100000; i++) x = x * 6364136223846793005ul + 1;\n\
           return x; }\n\
         int main(void) { return (int)oxbpf_busy_spin(4); }\n",
    )
    .unwrap();
    let bin = dir.join("busy");
    let st = Command::new("gcc")
        .args(["-O1", "-g", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc (Debian: gcc) builds the profiled workload");
    assert!(st.success());
    bin
}

#[test]
fn user_stacks_are_symbolized_through_the_process() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !common::kernel_available() {
        common::skip("needs root and bpf(2)");
        return;
    }
    let before = ids();
    let bin = busy_program();
    let mut busy = Command::new(&bin).spawn().unwrap();
    let pid = busy.id();
    let out = Command::new(common::oxbpf_bin())
        .args([
            "attach",
            "examples/live/profile.o",
            "--json",
            "--duration",
            "1.5",
        ])
        .args(["--rodata", &format!("target_pid={pid}")])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    let _ = busy.kill();
    let _ = busy.wait();
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stacks = rows
        .iter()
        .find(|r| r["map"] == "stacks")
        .expect("the stack map");
    let frames: Vec<&str> = stacks["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["frames"].as_array().unwrap())
        .filter_map(|f| f.as_str())
        .collect();
    assert!(
        frames.iter().any(|f| f.starts_with("oxbpf_busy_spin")),
        "no symbolized user frame of the busy loop in {frames:?}"
    );
    assert_nothing_left(&before);
}
