//! `oxbpf trace` on the live kernel: scripts with workloads of our own,
//! their output checked — against bpftrace 0.17 (the Debian package) run
//! on the same script and workload, byte for byte, where bpftrace 0.17
//! has the feature; against the expected text otherwise. Nothing may be
//! left in the kernel afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A C workload with a name of its own (`oxgp`, so scripts can filter on
/// `comm`): it calls getppid(2) seven times, makes the system calls whose
/// tracepoints are named apart from them (`newfstat` for fstat, `newstat`,
/// `newlstat`, `newuname`), calls `work(i)` for i = 1..3, which
/// returns 2i (each followed by the USDT probe `oxgp:tick` with i and the
/// running sum), and `greet("oxgp", &pt)` once with `struct point pt =
/// {3, 4, "pt"}` (returning 3 + 'o'); then, given an argument, it sleeps that
/// many milliseconds (so that its addresses can be named while it lives).
const WORKLOAD: &str = r#"
#include <stdlib.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/sdt.h>
__attribute__((noinline)) long work(long i) { asm volatile(""); return 2 * i; }
struct point { int x; int y; char name[8]; };
__attribute__((noipa)) int greet(const char *who, struct point *p) {
    asm volatile(""); return p->x + who[0];
}
int main(int argc, char **argv) {
    long s = 0;
    struct stat st;
    struct utsname u;
    for (int i = 0; i < 7; i++) s += getppid();
    syscall(SYS_fstat, 0, &st);
    syscall(SYS_stat, "/", &st);
    syscall(SYS_lstat, "/", &st);
    syscall(SYS_uname, &u);
    for (long i = 1; i <= 3; i++) {
        s += work(i);
        DTRACE_PROBE2(oxgp, tick, i, s);
    }
    struct point pt = {3, 4, "pt"};
    s += greet("oxgp", &pt);
    if (argc > 1) usleep(atoi(argv[1]) * 1000);
    return s == 0;
}
"#;

fn workload() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oxbpf-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("oxgp");
    if !bin.exists() {
        let src = dir.join("oxgp.c");
        std::fs::write(&src, WORKLOAD).unwrap();
        // Frame pointers, so that user stacks unwind.
        let st = Command::new("gcc")
            .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("gcc (Debian: gcc) builds the workload");
        assert!(st.success());
    }
    bin
}

/// One runtime case of `tests/trace/*.test` (the format is in
/// tests/trace/README.md).
#[derive(Default)]
struct Case {
    /// `file:line` of its NAME, and the name.
    at: String,
    name: String,
    script: String,
    params: Vec<String>,
    /// Options before `-e`.
    flags: Vec<String>,
    /// Run under `-c WORKLOAD`, with these arguments.
    workload: bool,
    workload_args: String,
    bpftrace: bool,
    /// Lines: `Ok(exact)` or `Err(regex)`.
    expect: Vec<Result<String, String>>,
    error: Option<String>,
    /// The exit status wanted with EXPECT/MATCH (0 unless STATUS says).
    status: i32,
}

fn cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/trace");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut out: Vec<Case> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", n + 1);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            if word == "NAME" {
                out.push(Case {
                    at,
                    name: rest.to_string(),
                    ..Case::default()
                });
                continue;
            }
            let c = out
                .last_mut()
                .unwrap_or_else(|| panic!("{at}: `{word}` before any NAME"));
            match word {
                "PROG" if c.script.is_empty() => c.script = rest.to_string(),
                "PROG" => c.script = format!("{}\n{rest}", c.script),
                "PARAMS" => c.params = rest.split_whitespace().map(String::from).collect(),
                "FLAGS" => c.flags = rest.split_whitespace().map(String::from).collect(),
                "RUN" => {
                    c.workload = true;
                    c.workload_args = rest.to_string();
                }
                "BPFTRACE" => c.bpftrace = true,
                "EXPECT" => c.expect.push(Ok(rest.to_string())),
                "MATCH" => c.expect.push(Err(rest.to_string())),
                "ERROR" => c.error = Some(rest.to_string()),
                "STATUS" => c.status = rest.trim().parse().expect("STATUS takes a number"),
                "NOTE" => {}
                _ => panic!("{at}: unknown directive `{word}`"),
            }
        }
    }
    for c in &out {
        let wants = usize::from(c.bpftrace)
            + usize::from(!c.expect.is_empty())
            + usize::from(c.error.is_some());
        assert!(
            wants == 1 && !c.script.is_empty(),
            "{}: {}: a case needs a PROG and one of BPFTRACE, EXPECT/MATCH, ERROR",
            c.at,
            c.name
        );
    }
    out
}

/// Whether `out` is what the EXPECT/MATCH lines say.
fn matches(c: &Case, out: &str) -> bool {
    let lines: Vec<&str> = out.lines().collect();
    lines.len() == c.expect.len()
        && lines.iter().zip(&c.expect).all(|(l, e)| match e {
            Ok(text) => l == text,
            Err(re) => regex::Regex::new(&format!("^(?:{re})$"))
                .unwrap_or_else(|e| panic!("{}: bad MATCH: {e}", c.at))
                .is_match(l),
        })
}

/// (stdout, exit status, stderr) of a run.
fn run(bin: &str, c: &Case, workload: &Path) -> (String, i32, String) {
    let script = c
        .script
        .replace("WORKLOAD", &workload.display().to_string());
    let mut cmd = Command::new(bin);
    if bin.ends_with("oxbpf") {
        cmd.arg("trace");
    }
    cmd.args(&c.flags).arg("-e").arg(&script);
    if c.workload {
        cmd.arg("-c")
            .arg(format!("{} {}", workload.display(), c.workload_args).trim_end());
    }
    cmd.args(&c.params);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stdout, out.status.code().unwrap_or(-1), stderr)
}

/// The case compiled ahead of time (`--emit-elf`) and run from the object
/// (`--run`): (stdout, exit status, stderr) of the run, or of the
/// compilation when that fails. `loaded_by_libbpf` says whether bpftool
/// (libbpf) loaded every program of the object too.
fn run_ahead_of_time(
    oxbpf: &str,
    c: &Case,
    workload: &Path,
    dir: &Path,
) -> ((String, i32, String), bool) {
    let script = c
        .script
        .replace("WORKLOAD", &workload.display().to_string());
    let obj = dir.join("case.o");
    let command = format!("{} {}", workload.display(), c.workload_args)
        .trim_end()
        .to_string();
    let mut emit = Command::new(oxbpf);
    emit.arg("trace")
        .arg("--emit-elf")
        .arg(&obj)
        .args(&c.flags)
        .arg("-e")
        .arg(&script);
    if c.workload {
        emit.arg("-c").arg(&command);
    }
    emit.args(&c.params);
    let out = emit.output().unwrap();
    if !out.status.success() {
        return (
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            true,
        );
    }
    // libbpf reads the same object: every program loads (and is unpinned).
    // The pins go on the BPF file system (bpftool mounts one on any other
    // directory it is given).
    let pins = bpffs().join(format!("oxbpf-aot-{}", std::process::id()));
    let libbpf = Command::new("bpftool")
        .args(["prog", "loadall"])
        .arg(&obj)
        .arg(&pins)
        .output()
        .is_ok_and(|o| o.status.success());
    let _ = std::fs::remove_dir_all(&pins);
    let mut run = Command::new(oxbpf);
    run.arg("trace").arg("--run").arg(&obj).args(&c.flags);
    if c.workload {
        run.arg("-c").arg(&command);
    }
    let out = run.output().unwrap();
    let _ = std::fs::remove_file(&obj);
    (
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ),
        libbpf,
    )
}

/// Where the BPF file system is mounted (the first in /proc/mounts).
fn bpffs() -> PathBuf {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[2] == "bpf").then(|| PathBuf::from(f[1]))
        })
        .expect("a mounted BPF file system (mount -t bpf bpf /sys/fs/bpf)")
}

/// Map entries of equal value come in no particular order (bpftrace
/// sorts with `std::sort`, which is not stable, over the kernel's hash
/// order): within a run of lines of one map with one value, sort them.
fn normalize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let group = |l: &str| -> Option<(String, String)> {
        let (head, value) = l.rsplit_once(": ")?;
        let name = head.split('[').next()?;
        (l.starts_with('@') && head.contains('[')).then(|| (name.to_string(), value.to_string()))
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(g) = group(lines[i]) else {
            out.push(lines[i].to_string());
            i += 1;
            continue;
        };
        let mut j = i;
        while j < lines.len() && group(lines[j]).as_ref() == Some(&g) {
            j += 1;
        }
        let mut run: Vec<String> = lines[i..j].iter().map(|l| l.to_string()).collect();
        run.sort();
        out.extend(run);
        i = j;
    }
    out.join("\n") + if text.ends_with('\n') { "\n" } else { "" }
}

/// Whether the peer is installed (CI must have it: Debian's bpftrace).
/// The tests that load programs run one at a time: each compares the
/// kernel's object ids before and after, and one finds its programs among
/// the kernel's by name.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`serial`] for a test that needs root, bpf(2) and tracefs; `None`
/// (the test skipped, saying why) without them.
fn live() -> Option<std::sync::MutexGuard<'static, ()>> {
    if !common::kernel_available() || oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs root, bpf(2) and a mounted tracefs");
        return None;
    }
    Some(serial())
}

/// bpftrace's tools as Debian installs them: /usr/sbin/*.bt, sorted.
fn bpftrace_tools() -> Vec<PathBuf> {
    let mut tools: Vec<PathBuf> = std::fs::read_dir("/usr/sbin")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "bt"))
        .collect();
    tools.sort();
    tools
}

fn bpftrace_present() -> bool {
    let have = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have || std::env::var_os("CI").is_none(),
        "CI must have bpftrace (Debian: bpftrace)"
    );
    have
}

#[test]
fn scripts_print_what_bpftrace_prints() {
    let Some(_serial) = live() else {
        return;
    };
    let have_bpftrace = bpftrace_present();
    let before = oxbpf_sys::object_ids().unwrap();
    let workload = workload();
    let oxbpf = common::oxbpf_bin();
    let mut failures = Vec::new();
    let (mut compared, mut identical) = (0, 0);
    let (mut aot_same, mut aot_libbpf) = (0, 0);
    let aot_dir = workload.parent().unwrap().join("aot");
    std::fs::create_dir_all(&aot_dir).unwrap();
    let cases = cases();
    for c in &cases {
        let (ours, status, stderr) = run(oxbpf.to_str().unwrap(), c, &workload);
        let ok = status == 0;
        let shown = || format!("{ours}[exit {status}; stderr: {stderr}]");
        // The same case compiled ahead of time and run from its object
        // prints the same (or fails the same way).
        let ((aot, aot_status, aot_err), libbpf) =
            run_ahead_of_time(oxbpf.to_str().unwrap(), c, &workload, &aot_dir);
        let aot_ok = match &c.error {
            Some(e) => aot_status != 0 && aot_err.contains(e.as_str()),
            None if c.bpftrace => normalize(&aot) == normalize(&ours) && aot_status == status,
            None => {
                aot_status == c.status
                    && matches(c, &aot.replace(&workload.display().to_string(), "WORKLOAD"))
            }
        };
        if aot_ok {
            aot_same += 1;
        } else {
            failures.push(format!(
                "{} {} (--emit-elf, then --run):\n--- direct\n{}\n--- ahead of time\n{aot}[exit {aot_status}; stderr: {aot_err}]",
                c.at,
                c.name,
                shown()
            ));
        }
        if libbpf {
            aot_libbpf += 1;
        } else if c.error.is_none() {
            failures.push(format!(
                "{} {}: bpftool prog loadall refused the --emit-elf object",
                c.at, c.name
            ));
        }
        if let Some(e) = &c.error {
            if ok || !stderr.contains(e.as_str()) {
                failures.push(format!(
                    "{} {}: wanted an error with `{e}`, got\n{}",
                    c.at,
                    c.name,
                    shown()
                ));
            }
            continue;
        }
        if c.bpftrace {
            if !have_bpftrace {
                continue;
            }
            compared += 1;
            let (theirs, their_status, their_err) = run("bpftrace", c, &workload);
            let their_ok = their_status == 0;
            if ok && their_ok && normalize(&ours) == normalize(&theirs) {
                identical += 1;
            } else {
                failures.push(format!(
                    "{} {}:\n--- bpftrace\n{theirs}[exit ok: {their_ok}; stderr: {their_err}]\n--- oxbpf\n{}",
                    c.at,
                    c.name,
                    shown()
                ));
            }
            continue;
        }
        // The workload's path reads WORKLOAD in expected lines.
        let shown_path = ours.replace(&workload.display().to_string(), "WORKLOAD");
        if status != c.status || !matches(c, &shown_path) {
            let want: Vec<String> = c
                .expect
                .iter()
                .map(|e| match e {
                    Ok(t) => t.clone(),
                    Err(r) => format!("/{r}/"),
                })
                .collect();
            failures.push(format!(
                "{} {}:\n--- expected\n{}\n--- oxbpf\n{}",
                c.at,
                c.name,
                want.join("\n"),
                shown()
            ));
        }
    }
    println!(
        "{} cases; {compared} compared with bpftrace, {identical} identical; ahead of time (--emit-elf, --run): {aot_same} the same, {aot_libbpf} loaded by libbpf too",
        cases.len()
    );
    let _ = std::fs::remove_dir_all(workload.parent().unwrap());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every program, map and link of the runs (bpftrace's too) is gone.
    let left = oxbpf_sys::objects_left_since(&before, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(
        left,
        Default::default(),
        "kernel objects left behind (programs, maps, links)"
    );
}

#[test]
fn invoked_as_bpftrace_it_takes_bpftraces_command_line() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("oxbpf-as-bpftrace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("bpftrace");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(common::oxbpf_bin(), &link).unwrap();
    let v = Command::new(&link).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("bpftrace v0.17.0 (oxbpf"));
    // A parse error is reported at its place, as bpftrace reports it.
    let bad = Command::new(&link)
        .args(["-e", "BEGIN { @x = ; }"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("stdin:1:14: error: expected an expression")
            || err.starts_with("-e:1:14: error: expected an expression"),
        "{err}"
    );
    if common::kernel_available() {
        let out = Command::new(&link)
            .args([
                "-q",
                "-e",
                r#"BEGIN { printf("%s %d\n", "as bpftrace", $1); exit(); }"#,
                "7",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "as bpftrace 7\n\n\n");
        // What bpftrace's own test harness passes and waits for.
        let out = Command::new(&link)
            .env("__BPFTRACE_NOTIFY_PROBES_ATTACHED", "1")
            .args([
                "--verify-llvm-ir",
                "--no-warnings",
                "-e",
                r#"BEGIN { printf("%s\n", $1); exit(); }"#,
                "word",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Attaching 1 probe...\n__BPFTRACE_NOTIFY_PROBES_ATTACHED\nword\n\n\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        common::skip("needs root and bpf(2) to run the script");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn probe_listings_are_bpftraces() {
    if oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs a mounted tracefs");
        return;
    }
    let have_bpftrace = bpftrace_present();
    for args in [
        &["-l", "tracepoint:syscalls:sys_enter_open*"][..],
        &["-l", "t:sched:sched_process_*"],
        &["-lv", "tracepoint:syscalls:sys_enter_openat"],
        &["-lv", "tracepoint:sched:sched_process_exec"],
    ] {
        let ours = Command::new(common::oxbpf_bin())
            .arg("trace")
            .args(args)
            .output()
            .unwrap();
        assert!(
            ours.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let ours = String::from_utf8_lossy(&ours.stdout).into_owned();
        assert!(!ours.is_empty(), "{args:?} listed nothing");
        if have_bpftrace {
            let theirs = Command::new("bpftrace").args(args).output().unwrap();
            assert_eq!(ours, String::from_utf8_lossy(&theirs.stdout), "{args:?}");
        }
    }
}

/// The kernel is given the script's BTF: each program is a function with
/// the script's line records (what the kernel's verifier log and `bpftool
/// prog dump xlated linum` print), each map has typed keys and values
/// (what `bpftool map dump` shows by field).
#[test]
fn the_kernel_gets_the_scripts_btf_and_lines() {
    let Some(_serial) = live() else {
        return;
    };
    let before = oxbpf_sys::object_ids().unwrap();
    let script = "tracepoint:syscalls:sys_enter_getppid {\n  @calls[comm, pid] = count();\n}\ninterval:ms:50 { @ticks = count(); }\n";
    let mut child = Command::new(common::oxbpf_bin())
        .args(["trace", "-e", script, "--duration", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("Attaching 2 probes"), "{first}");
    // One event (getppid(2)), so that the map has an entry.
    let _ = std::os::unix::process::parent_id();
    let bpftool = |args: &[&str]| {
        let o = Command::new("bpftool").args(args).output().unwrap();
        assert!(o.status.success(), "bpftool {args:?}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let now = oxbpf_sys::object_ids().unwrap();
    let progs: Vec<u32> = now
        .0
        .iter()
        .filter(|i| !before.0.contains(i))
        .copied()
        .collect();
    let maps: Vec<u32> = now
        .1
        .iter()
        .filter(|i| !before.1.contains(i))
        .copied()
        .collect();
    let mut lines_seen = 0;
    for id in &progs {
        let show: serde_json::Value =
            serde_json::from_str(&bpftool(&["-j", "prog", "show", "id", &id.to_string()])).unwrap();
        if !show["name"].as_str().unwrap_or("").starts_with("probe") {
            continue;
        }
        assert_ne!(show["btf_id"].as_u64().unwrap_or(0), 0, "{show}");
        let xlated = bpftool(&["prog", "dump", "xlated", "id", &id.to_string(), "linum"]);
        assert!(xlated.contains("(void * ctx):"), "{xlated}");
        if xlated.contains("@calls[comm, pid] = count(); [file:-e line_num:2") {
            lines_seen += 1;
        }
    }
    assert_eq!(lines_seen, 1, "the getppid program's line records");
    let mut typed = false;
    for id in &maps {
        let show: serde_json::Value =
            serde_json::from_str(&bpftool(&["-j", "map", "show", "id", &id.to_string()])).unwrap();
        if show["name"] == "AT_calls" {
            let dump = bpftool(&["map", "dump", "id", &id.to_string()]);
            typed = dump.contains("\"k0\"") && dump.contains("\"k1\"");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(typed, "AT_calls is dumped by field");
    let left = oxbpf_sys::objects_left_since(&before, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(left.0, Vec::<u32>::new());
}

/// `watchpoint` probes on a process's memory (the breakpoint PMU): a
/// non-PIE program writes a global N times and reads it N times; the
/// counts are exact (the kernel's own writes for the process, such as
/// zeroing `.bss` at exec, are not counted), and an execution breakpoint
/// on `main` fires once.
#[test]
fn watchpoints_count_a_processs_accesses() {
    let _serial = serial();
    if !common::kernel_available()
        || !Path::new("/sys/bus/event_source/devices/breakpoint").exists()
    {
        common::skip("needs root, bpf(2) and the breakpoint PMU");
        return;
    }
    let dir = std::env::temp_dir().join(format!("oxbpf-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("wp.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\nvolatile long watched, other;\nint main(int argc, char **argv) {\n  int n = argc > 1 ? atoi(argv[1]) : 0;\n  for (int i = 0; i < n; i++) { watched = i; other = watched + 1; }\n  return 0;\n}\n",
    )
    .unwrap();
    let bin = dir.join("wp");
    let st = Command::new("gcc")
        .args(["-O1", "-no-pie", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let nm = Command::new("nm").arg(&bin).output().unwrap();
    let addr = |sym: &str| {
        String::from_utf8_lossy(&nm.stdout)
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[2] == sym).then(|| f[0].to_string())
            })
            .unwrap_or_else(|| panic!("{sym} in nm's output"))
    };
    let (watched, main) = (addr("watched"), addr("main"));
    let script = format!(
        "watchpoint:0x{watched}:8:w {{ @writes = count(); @p[probe] = count(); }} w:0x{watched}:8:rw {{ @any = count(); }} watchpoint:0x{main}:1:x {{ @main = count(); }}"
    );
    let out = Command::new(common::oxbpf_bin())
        .args(["trace", "-e", &script, "-c"])
        .arg(format!("{} 7", bin.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let probe = format!(
        "watchpoint:{:#x}:8:w",
        u64::from_str_radix(&watched, 16).unwrap()
    );
    assert_eq!(
        text,
        format!("Attaching 3 probes...\n\n\n@any: 14\n@main: 1\n@p[{probe}]: 7\n@writes: 7\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A user address without a process, and a mode x86 cannot watch, are
    // refused at their place.
    let out = Command::new(common::oxbpf_bin())
        .args(["trace", "-e", &format!("w:0x{watched}:8:w {{ }}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs the process: -p PID or -c CMD"), "{err}");
    let out = Command::new(common::oxbpf_bin())
        .args(["trace", "-e", "w:0x1000:8:r { }"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("-e:1:1: error: a watchpoint's mode is w, rw or x"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records the ring buffer has no room for are counted, not dropped
/// silently: a process calls getppid(2) 200,000 times as fast as it can
/// into a one-page ring buffer, each call printed. Every call is either a
/// printed line or counted in a "Lost N events" line (in JSON, a
/// `lost_events` record) — exactly, run from the script and from its
/// object — and some are lost (a page holds a few hundred records; the
/// process makes them far faster than any reader wakes up).
#[test]
fn lost_records_are_counted_exactly() {
    let Some(_serial) = live() else {
        return;
    };
    const CALLS: u64 = 200_000;
    let dir = std::env::temp_dir().join(format!("oxbpf-lost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("flood");
    let src = dir.join("flood.c");
    std::fs::write(
        &src,
        format!(
            "#include <unistd.h>\nint main(void) {{ long s = 0; for (long i = 0; i < {CALLS}; i++) s += getppid(); return s == 0; }}\n"
        ),
    )
    .unwrap();
    let st = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc (Debian: gcc) builds the workload");
    assert!(st.success());
    let script = "config = { perf_rb_pages = 1 }\n\
                  tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { printf(\"call\\n\"); }";
    let obj = dir.join("lost.o");
    let emit = Command::new(common::oxbpf_bin())
        .args(["trace", "--emit-elf"])
        .arg(&obj)
        .args(["-e", script, "-c"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(emit.status.success(), "{emit:?}");
    let before = oxbpf_sys::object_ids().unwrap();
    for (aot, json) in [(false, false), (false, true), (true, false)] {
        let mut cmd = Command::new(common::oxbpf_bin());
        cmd.arg("trace");
        if json {
            cmd.args(["-f", "json"]);
        }
        if aot {
            cmd.arg("--run").arg(&obj);
        } else {
            cmd.args(["-e", script]);
        }
        let out = cmd.arg("-c").arg(&bin).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let (mut printed, mut lost) = (0u64, 0u64);
        for line in text.lines() {
            if json {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("printf") if v["data"] == "call\n" => printed += 1,
                    Some("lost_events") => lost += v["data"]["events"].as_u64().unwrap(),
                    _ => {}
                }
            } else if line == "call" {
                printed += 1;
            } else if let Some(n) = line
                .strip_prefix("Lost ")
                .and_then(|l| l.strip_suffix(" events"))
            {
                lost += n.parse::<u64>().unwrap();
            }
        }
        let how = format!("aot {aot}, json {json}: {printed} printed, {lost} lost");
        assert_eq!(printed + lost, CALLS, "{how}");
        assert!(lost > 0 && printed > 0, "{how}");
    }
    let left = oxbpf_sys::objects_left_since(&before, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(left.0, Vec::<u32>::new());
    assert_eq!(left.1, Vec::<u32>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Per-CPU aggregations read in a probe (coerced to integers, and as the
/// values of `for` loops) are their values over every CPU, as bpftrace's
/// language reference has it: a process calls getppid(2) 3 times on CPU
/// 0 and 5 times on CPU 1, and END reads count, sum, max, min and avg
/// maps, keyed and not.
#[test]
fn aggregations_read_in_a_probe_merge_every_cpu() {
    let Some(_serial) = live() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("oxbpf-percpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("oxpc");
    let src = dir.join("oxpc.c");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <unistd.h>
static void on(int cpu, int n) {
    cpu_set_t s; CPU_ZERO(&s); CPU_SET(cpu, &s);
    if (sched_setaffinity(0, sizeof s, &s) != 0) return;
    for (int i = 0; i < n; i++) getppid();
    printf("ran %d %d\n", sched_getcpu(), n);
}
int main(void) { on(0, 3); on(1, 5); return 0; }
"#,
    )
    .unwrap();
    let st = Command::new("gcc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc (Debian: gcc) builds the workload");
    assert!(st.success());
    let script = "tracepoint:syscalls:sys_enter_getppid /comm == \"oxpc\"/ { @c = count(); @s = sum(cpu + 1); @mx = max(cpu * 10); @mn = min(cpu * 10 + 5); @a = avg(cpu * 8 - 20); @k[1] = avg(cpu * 8); @m[7] = min(cpu * 10 + 5); }\n\
                  END { printf(\"%d %d %d %d %d\\n\", (int64)@c, @s, @mx, @mn, @a); for ($kv : @k) { printf(\"k %d %d\\n\", $kv.0, $kv.1); } for ($kv : @m) { printf(\"m %d %d\\n\", $kv.0, $kv.1); } clear(@c); clear(@s); clear(@mx); clear(@mn); clear(@a); clear(@k); clear(@m); }";
    let out = Command::new(common::oxbpf_bin())
        .args(["trace", "-e", script, "-c"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // Where the calls ran, as the workload says.
    let runs: Vec<(i64, i64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("ran "))
        .map(|l| {
            let (c, n) = l.split_once(' ').unwrap();
            (c.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    let cpus: std::collections::BTreeSet<i64> = runs.iter().map(|r| r.0).collect();
    if std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) {
        assert_eq!(cpus.len(), 2, "the calls ran on two CPUs: {text}");
    }
    let all = || {
        runs.iter()
            .flat_map(|&(c, n)| std::iter::repeat_n(c, n as usize))
    };
    let count = all().count() as i64;
    let sum: i64 = all().map(|c| c + 1).sum();
    let max = all().map(|c| c * 10).max().unwrap();
    let min = all().map(|c| c * 10 + 5).min().unwrap();
    // Truncated toward zero, as bpftrace divides.
    let avg = all().map(|c| c * 8 - 20).sum::<i64>() / count;
    let avg_k = all().map(|c| c * 8).sum::<i64>() / count;
    let want = format!("{count} {sum} {max} {min} {avg}\nk 1 {avg_k}\nm 7 {min}\n");
    let got: String = text
        .lines()
        .filter(|l| !["ran ", "Attaching", "@"].iter().any(|p| l.starts_with(p)) && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(got, want, "{text}");
    assert!(avg < 0, "a negative average is checked too");
    let _ = std::fs::remove_dir_all(&dir);
}

/// bpftrace's own tools (the 38 `.bt` files Debian's package installs in
/// /usr/sbin) compile unmodified — kprobe ones too, refused only when
/// attached — through our verifier (`-d bytecode`), except where this
/// kernel lacks what a tool reads, which the error names.
#[test]
fn bpftraces_tools_compile_unmodified() {
    if oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs a mounted tracefs");
        return;
    }
    if !bpftrace_present() {
        common::skip("needs bpftrace's tools (Debian: bpftrace)");
        return;
    }
    // What Linux 6.18 lacks: cfs_rq.nr_running is nr_queued; avenrun is
    // a data symbol, listed in kallsyms only with CONFIG_KALLSYMS_ALL.
    let lacking = [
        ("runqlen.bt", "struct cfs_rq has no member `nr_running`"),
        ("loads.bt", "`avenrun` is not in /proc/kallsyms"),
    ];
    let tools = bpftrace_tools();
    assert!(tools.len() >= 38, "bpftrace installs 38 tools: {tools:?}");
    let mut failures = Vec::new();
    for t in &tools {
        let name = t.file_name().unwrap().to_str().unwrap();
        let out = Command::new(common::oxbpf_bin())
            .args(["trace", "-d", "bytecode"])
            .arg(t)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        match lacking.iter().find(|(n, _)| *n == name) {
            Some((_, why)) if out.status.success() || !err.contains(why) => {
                failures.push(format!("{name}: expected `{why}`, got: {err}"))
            }
            Some(_) => {}
            None if !out.status.success() => failures.push(format!("{name}: {err}")),
            None => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `--folded` / `--flamegraph` on any script: the maps that count by
/// stack go to the files (not to the output); a script with no such map
/// is refused before anything is loaded.
#[test]
fn stack_maps_fold_and_draw() {
    let Some(_serial) = live() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("oxbpf-fold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (folded, svg) = (dir.join("f.txt"), dir.join("f.svg"));
    let before = oxbpf_sys::object_ids().unwrap();
    let out = Command::new(common::oxbpf_bin())
        .args([
            "trace",
            "-e",
            "tracepoint:syscalls:sys_enter_getppid /pid == $1/ { @[comm, kstack] = count(); @n = count(); }",
            "-c",
            "/bin/true",
        ])
        .arg(std::process::id().to_string())
        .arg("--folded")
        .arg(&folded)
        .arg("--flamegraph")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // @n prints; the stack map does not.
    assert!(text.contains("@n: "), "{text}");
    assert!(!text.contains("@["), "{text}");
    let folded = std::fs::read_to_string(&folded).unwrap();
    assert!(folded.is_empty(), "no getppid from this pid: {folded}");
    assert!(
        std::fs::read_to_string(&svg)
            .unwrap()
            .contains("no stacks were recorded")
    );
    // A getppid(2) of this process's own, folded with its kernel stack.
    let mut child = Command::new(common::oxbpf_bin())
        .args([
            "trace",
            "-e",
            &format!(
                "tracepoint:syscalls:sys_enter_getppid /pid == {}/ {{ @[comm, kstack] = count(); }} interval:ms:1500 {{ exit(); }}",
                std::process::id()
            ),
            "--folded",
        ])
        .arg(dir.join("g.txt"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    for _ in 0..3 {
        let _ = std::os::unix::process::parent_id();
    }
    assert!(child.wait().unwrap().success());
    let g = std::fs::read_to_string(dir.join("g.txt")).unwrap();
    let line = g.lines().next().unwrap_or_else(|| panic!("folded: {g}"));
    let (stack, n) = line.rsplit_once(' ').unwrap();
    assert_eq!(n, "3", "{g}");
    // Outermost frame first: the system call entry, then the handler.
    let frames: Vec<&str> = stack.split(';').collect();
    let entry = frames.iter().position(|f| f.contains("do_syscall_64"));
    let handler = frames
        .iter()
        .position(|f| f.contains("syscall_trace_enter"));
    assert!(entry.is_some() && entry < handler, "{g}");
    // No stack map: refused, nothing loaded.
    let bad = Command::new(common::oxbpf_bin())
        .args(["trace", "-e", "BEGIN { @x = count(); exit(); }", "--folded"])
        .arg(dir.join("h.txt"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("count by stack"));
    let left = oxbpf_sys::objects_left_since(&before, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(left, Default::default());
    let _ = std::fs::remove_dir_all(&dir);
}

/// bpftrace's 38 tools run live under `oxbpf trace` for two seconds each:
/// those whose probes this kernel has attach and end cleanly; the others
/// fail naming what is missing (kprobes; runqlen's field, loads' symbol).
/// The table (tool, runs, why not, bpftrace 0.17 itself) is printed.
#[test]
fn bpftraces_tools_run_live() {
    let Some(_serial) = live() else {
        return;
    };
    if !bpftrace_present() {
        common::skip("needs bpftrace's tools (Debian: bpftrace)");
        return;
    }
    let before = oxbpf_sys::object_ids().unwrap();
    let tools = bpftrace_tools();
    let kprobes = std::path::Path::new("/sys/kernel/tracing/kprobe_events").exists();
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for t in &tools {
        let name = t.file_name().unwrap().to_str().unwrap();
        let src = std::fs::read_to_string(t).unwrap();
        let out = Command::new(common::oxbpf_bin())
            .args(["trace", "--duration", "2"])
            .arg(t)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let why = err
            .lines()
            .find(|l| l.contains("error"))
            .map(|l| l.split("error: ").last().unwrap_or(l).to_string());
        let uses_kprobes = src.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("kprobe:") || l.starts_with("kretprobe:")
        });
        // Wildcards need fprobe (kprobe.multi), single functions the
        // kprobe PMU; glibc 2.34 moved pthread_create out of libpthread.
        let expected: Option<&[&str]> = if uses_kprobes && !kprobes {
            Some(&["this kernel has no kprobes", "this kernel has no fprobe"])
        } else if name == "runqlen.bt" {
            Some(&["struct cfs_rq has no member `nr_running`"])
        } else if name == "loads.bt" {
            Some(&["`avenrun` is not in /proc/kallsyms"])
        } else if name == "threadsnoop.bt" {
            Some(&["no function `pthread_create`"])
        } else {
            None
        };
        match (&expected, out.status.success()) {
            (None, true) => {}
            (None, false) => failures.push(format!("{name} should run: {err}")),
            (Some(w), false) if w.iter().any(|w| err.contains(w)) => {}
            (Some(w), _) => failures.push(format!("{name}: expected {w:?}, got: {err}")),
        }
        table.push(format!(
            "{name:<20} {:<4} {}",
            if out.status.success() { "yes" } else { "no" },
            why.unwrap_or_default()
        ));
    }
    println!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let left = oxbpf_sys::objects_left_since(&before, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(left, Default::default(), "kernel objects left behind");
}
