//! `oxbpf tool`: each shipped tool run live against a workload of the
//! test's own, its output checked for the facts the workload makes (the
//! pid, the path, the arguments, the count), and its options and errors.
//! Live tests need root and tracefs (CI has both).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

/// The live tests run one at a time (each sees only its own workload's
/// events, and the leak check only its own objects).
fn live() -> Option<std::sync::MutexGuard<'static, ()>> {
    static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !common::kernel_available() || oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs root, bpf(2) and a mounted tracefs");
        return None;
    }
    Some(LIVE.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A running tool: started, its header line read (printed once every
/// probe is attached), the rest of its output collected when it ends.
struct Running {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    header: String,
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(common::oxbpf_bin())
        .arg("tool")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut header = String::new();
    out.read_line(&mut header).unwrap();
    if header.is_empty() {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        panic!("oxbpf tool {args:?} printed nothing: {err}");
    }
    Running { child, out, header }
}

impl Running {
    /// Waits for the tool to end (its --duration) and returns the rest of
    /// its output; it must succeed.
    fn finish(mut self) -> String {
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        let st = self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(st.success(), "the tool failed: {st}: {err}");
        rest
    }
}

fn columns(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn execsnoop_shows_each_exec_with_its_arguments_parent_and_result() {
    let Some(_live) = live() else {
        return;
    };
    let t = start(&["execsnoop", "--duration", "3"]);
    assert_eq!(columns(&t.header), ["PCOMM", "PID", "PPID", "RET", "ARGS"]);
    let ok = Command::new("/bin/echo")
        .args(["oxbpf-exec-marker", "a b", "c"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ok_pid = ok.id();
    let _ = { ok }.wait();
    // An exec that fails: ENOENT.
    assert!(Command::new("/nonexistent/oxbpf-missing").status().is_err());
    let out = t.finish();
    let line = out
        .lines()
        .find(|l| l.contains("oxbpf-exec-marker"))
        .unwrap_or_else(|| panic!("no exec of the marker in:\n{out}"));
    let c = columns(line);
    assert_eq!(c[0], "echo", "{line}");
    assert_eq!(c[1], ok_pid.to_string(), "{line}");
    assert_eq!(c[2], std::process::id().to_string(), "the parent: {line}");
    assert_eq!(c[3], "0", "{line}");
    assert!(
        line.ends_with("/bin/echo oxbpf-exec-marker a b c"),
        "{line}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("/nonexistent/oxbpf-missing") && columns(l)[3] == "-2"),
        "the failed exec (ENOENT) is shown: {out}"
    );
}

#[test]
fn execsnoop_failed_only_and_by_name() {
    let Some(_live) = live() else {
        return;
    };
    let t = start(&["execsnoop", "-x", "-T", "--duration", "3"]);
    assert_eq!(columns(&t.header)[0], "TIME");
    Command::new("/bin/true")
        .arg("oxbpf-ok-marker")
        .status()
        .unwrap();
    assert!(
        Command::new("/nonexistent/oxbpf-x-marker")
            .status()
            .is_err()
    );
    let out = t.finish();
    assert!(
        !out.contains("oxbpf-ok-marker"),
        "-x shows failures only: {out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("oxbpf-x-marker"))
        .unwrap_or_else(|| panic!("no failed exec in:\n{out}"));
    let c = columns(line);
    assert_eq!(c[0].len(), 8, "HH:MM:SS first: {line}");
    assert_eq!(c[4], "-2", "{line}");

    let t = start(&["execsnoop", "-n", "oxbpfnm", "--duration", "3"]);
    let dir = std::env::temp_dir().join(format!("oxbpf-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let named = dir.join("oxbpfnm-run");
    std::os::unix::fs::symlink("/bin/true", &named).unwrap();
    Command::new(&named).status().unwrap();
    Command::new("/bin/true")
        .arg("oxbpf-other")
        .status()
        .unwrap();
    let out = t.finish();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.contains("oxbpfnm-run"), "{out}");
    assert!(!out.contains("oxbpf-other"), "-n filters by name: {out}");
}

#[test]
fn opensnoop_shows_the_path_fd_and_error() {
    let Some(_live) = live() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("oxbpf-open-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("present");
    std::fs::write(&path, b"x").unwrap();
    let missing = dir.join("missing");
    // A child that opens both, so that -p can name it.
    let script = format!(
        "sleep 1; exec 3<{}; cat {} 2>/dev/null; exit 0",
        path.display(),
        missing.display()
    );
    let t = start(&["opensnoop", "-e", "--duration", "4"]);
    assert_eq!(
        columns(&t.header),
        ["PID", "COMM", "FD", "ERR", "FLAGS", "PATH"]
    );
    let mut sh = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let sh_pid = sh.id().to_string();
    sh.wait().unwrap();
    let out = t.finish();
    let _ = std::fs::remove_dir_all(&dir);
    let present = out
        .lines()
        .find(|l| l.ends_with(&path.display().to_string()))
        .unwrap_or_else(|| panic!("no open of {} in:\n{out}", path.display()));
    let c = columns(present);
    assert_eq!(c[0], sh_pid, "{present}");
    assert_eq!(c[1], "sh", "{present}");
    assert_eq!(c[2], "3", "the fd the shell asked for: {present}");
    assert_eq!(c[3], "0", "{present}");
    let absent = out
        .lines()
        .find(|l| l.ends_with(&missing.display().to_string()))
        .unwrap_or_else(|| panic!("no open of {} in:\n{out}", missing.display()));
    let c = columns(absent);
    assert_eq!((c[1], c[2], c[3]), ("cat", "-1", "2"), "ENOENT: {absent}");
}

#[test]
fn opensnoop_by_pid_and_failed_only() {
    let Some(_live) = live() else {
        return;
    };
    let mut target = Command::new("sh")
        .args([
            "-c",
            "sleep 1; cat /nonexistent/oxbpf-p 2>/dev/null; cat /etc/hostname >/dev/null; true",
        ])
        .spawn()
        .unwrap();
    let pid = target.id().to_string();
    let t = start(&["opensnoop", "-x", "-p", &pid, "--duration", "3"]);
    // Another process's failing open, which -p leaves out.
    let _ = std::fs::read("/nonexistent/oxbpf-other");
    target.wait().unwrap();
    let out = t.finish();
    assert!(!out.contains("oxbpf-other"), "{out}");
    // `cat` runs in a child of the shell: -p names the shell only, whose
    // own opens (none fail) are the only ones shown.
    for l in out.lines().filter(|l| !l.trim().is_empty()) {
        assert_eq!(columns(l)[0], pid, "only the process -p names: {l}");
        assert_ne!(columns(l)[3], "0", "-x: failures only: {l}");
    }
}

#[test]
fn killsnoop_shows_a_signal_sent_by_the_test() {
    let Some(_live) = live() else {
        return;
    };
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let t = start(&["killsnoop", "--duration", "3"]);
    assert_eq!(
        columns(&t.header),
        ["TIME", "PID", "COMM", "SIG", "TPID", "RESULT"]
    );
    let vpid = victim.id().to_string();
    let st = Command::new("kill")
        .args(["-USR1", &vpid])
        .status()
        .unwrap();
    assert!(st.success());
    // And one that fails: no such process (ESRCH).
    let st = Command::new("kill")
        .args(["-0", "4194000"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
    let _ = victim.wait();
    let out = t.finish();
    let sent: Vec<Vec<&str>> = out
        .lines()
        .map(columns)
        .filter(|c| c.get(2) == Some(&"kill"))
        .collect();
    assert!(
        sent.iter()
            .any(|c| c[3] == "10" && c[4] == vpid && c[5] == "0"),
        "SIGUSR1 (10) to the victim, result 0: {out}"
    );
    assert!(
        sent.iter()
            .any(|c| c[3] == "0" && c[4] == "4194000" && c[5] == "-3"),
        "signal 0 to a missing pid, ESRCH (-3): {out}"
    );
}

#[test]
fn syscount_counts_a_rare_call_of_one_process_exactly() {
    let Some(_live) = live() else {
        return;
    };
    // A child that, once started, says so, waits for a line, then calls
    // getppid(2) N times: the tool is started between the two.
    let counted = |n: u32, by_process: bool| {
        let mut child = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import os,sys\nprint('ready', flush=True)\nsys.stdin.readline()\nfor _ in range({n}): os.getppid()\n"
                ),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready, "ready\n");
        let pid = child.id().to_string();
        let mut args = vec!["syscount", "-p", &pid, "--duration", "3"];
        args.push(if by_process { "-P" } else { "-L" });
        let t = start(&args);
        assert!(t.header.starts_with("Tracing syscalls"), "{}", t.header);
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"go\n").unwrap();
        child.wait().unwrap();
        (pid, t.finish())
    };
    // libbpf-tools' columns: SYSCALL COUNT TIME (us), a row per call.
    let (pid, out) = counted(777, false);
    assert!(
        out.lines()
            .any(|l| columns(l) == ["SYSCALL", "COUNT", "TIME", "(us)"]),
        "{out}"
    );
    let row = out
        .lines()
        .map(columns)
        .find(|c| c[0] == "getppid")
        .unwrap_or_else(|| panic!("no getppid row for pid {pid}: {out}"));
    assert_eq!(row.len(), 3, "{out}");
    assert_eq!(row[1], "777", "777 getppid calls of pid {pid}: {out}");
    assert!(row[2].parse::<u64>().is_ok(), "{out}");
    // By process: every call of the process under PID COMM.
    let (pid, out) = counted(333, true);
    assert!(
        out.lines().any(|l| columns(l) == ["PID", "COMM", "COUNT"]),
        "{out}"
    );
    let row = out
        .lines()
        .map(columns)
        .find(|c| c[0] == pid)
        .unwrap_or_else(|| panic!("no row for pid {pid}: {out}"));
    assert_eq!(row[1], "python3", "{out}");
    assert!(row[2].parse::<u64>().unwrap() >= 333, "{out}");
}

#[test]
fn syscount_prints_every_interval() {
    let Some(_live) = live() else {
        return;
    };
    let t = start(&["syscount", "-i", "1", "-T", "3", "--duration", "3.5"]);
    let out = t.finish();
    let stamps = out.lines().filter(|l| l.starts_with('[')).count();
    // Three intervals and the end.
    assert!(stamps >= 3, "{out}");
    // After the time, the header, then the rows until a blank line.
    let mut first = out.lines().skip_while(|l| !l.starts_with('[')).skip(1);
    assert_eq!(
        first.next().map(columns),
        Some(vec!["SYSCALL", "COUNT"]),
        "{out}"
    );
    let entries = first.take_while(|l| !l.trim().is_empty()).count();
    assert!((1..=3).contains(&entries), "-T 3 prints at most 3: {out}");
}

#[test]
fn tools_list_help_and_bad_options() {
    let run = |args: &[&str]| {
        Command::new(common::oxbpf_bin())
            .arg("tool")
            .args(args)
            .output()
            .unwrap()
    };
    let list = run(&["list"]);
    assert!(list.status.success());
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    for t in [
        "execsnoop",
        "biolatency",
        "profile",
        "offcputime",
        "tcpdrop",
        "loads",
    ] {
        assert!(names.iter().any(|n| n == t), "{t} listed: {names:?}");
    }
    assert!(names.len() >= 42, "{names:?}");
    // Every tool: its help, and a bad option refused with status 2.
    for t in names.iter().map(String::as_str) {
        let help = run(&[t, "--help"]);
        assert!(help.status.success(), "{t} --help");
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains(&format!("Usage: oxbpf tool {t}")), "{text}");
        assert!(text.contains("--duration"), "{text}");
        let bad = run(&[t, "--no-such-option"]);
        assert_eq!(bad.status.code(), Some(2), "{t}: a bad option");
        assert!(
            String::from_utf8_lossy(&bad.stderr).contains("--no-such-option"),
            "the error names the option"
        );
    }
    // An integer option refuses text: nothing of it reaches the script.
    let bad = run(&["opensnoop", "-p", "1) || (1"]);
    assert_eq!(bad.status.code(), Some(2));
    let none = run(&["opensnop"]);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("did you mean `opensnoop`"),
        "{}",
        String::from_utf8_lossy(&none.stderr)
    );
}

/// A tool ended by its duration, by Ctrl-C (SIGINT) or by an error leaves
/// no program, map or link behind.
#[test]
fn tools_leave_nothing_behind() {
    let Some(_live) = live() else {
        return;
    };
    let before = oxbpf_sys::object_ids().unwrap();
    start(&["opensnoop", "--duration", "1"]).finish();
    let t = start(&["execsnoop", "-T"]);
    let st = Command::new("kill")
        .args(["-INT", &t.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    t.finish();
    // An interval of 0 seconds is refused before anything is loaded.
    let bad = Command::new(common::oxbpf_bin())
        .args(["tool", "syscount", "-i", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("syscount.bt:"),
        "the error names the tool's script: {}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let left = oxbpf_sys::objects_left_since(&before, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(left, Default::default(), "kernel objects left behind");
}

/// Every tool, run for a second with its defaults, ends cleanly and
/// leaves no program, map, link or perf event behind; so does every tool
/// stopped by Ctrl-C (SIGINT) right after it attached.
#[test]
fn every_tool_runs_and_leaves_nothing_behind() {
    let Some(_live) = live() else {
        return;
    };
    let list = Command::new(common::oxbpf_bin())
        .args(["tool", "list"])
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    let before = oxbpf_sys::object_ids().unwrap();
    let mut failures = Vec::new();
    for name in &names {
        let t = start(&[name, "--duration", "1"]);
        let mut rest = String::new();
        let mut t = t;
        t.out.read_to_string(&mut rest).unwrap();
        let st = t.child.wait().unwrap();
        if !st.success() {
            let mut err = String::new();
            t.child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            failures.push(format!("{name}: {st}: {err}"));
        }
        let t = start(&[name]);
        let st = Command::new("kill")
            .args(["-INT", &t.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let mut t = t;
        let st = t.child.wait().unwrap();
        if !st.success() {
            failures.push(format!("{name} after SIGINT: {st}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let left = oxbpf_sys::objects_left_since(&before, std::time::Duration::from_secs(2)).unwrap();
    assert_eq!(left, Default::default(), "kernel objects left behind");
}

#[test]
fn runqlat_sees_two_busy_processes_share_one_cpu() {
    let Some(_live) = live() else {
        return;
    };
    let (mut a, mut b) = (busy_on(0, 4), busy_on(0, 4));
    let t = start(&["runqlat", "-p", &a.id().to_string(), "--duration", "2"]);
    assert!(
        t.header.starts_with("Tracing run queue latency"),
        "{}",
        t.header
    );
    let out = t.finish();
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
    // Each waits for the other's time slice: milliseconds, so buckets of
    // at least [1K, 2K) microseconds hold counts.
    let waits: u64 = libbpf_hist(&out, "")
        .iter()
        .filter(|(lo, _)| *lo >= 1024)
        .map(|b| b.1)
        .sum();
    assert!(
        out.contains("usecs               : count    distribution"),
        "{out}"
    );
    assert!(waits > 0, "waits of a millisecond or more: {out}");
}

#[test]
fn tcpconnect_shows_a_connection_of_the_test_over_loopback() {
    let Some(_live) = live() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    let t = start(&["tcpconnect", "-P", &port.to_string(), "--duration", "2"]);
    assert_eq!(
        columns(&t.header),
        ["PID", "COMM", "IP", "SADDR", "DADDR", "DPORT"]
    );
    let _c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _d = std::net::TcpStream::connect(("127.0.0.1", other_port)).unwrap();
    let out = t.finish();
    let me = std::process::id().to_string();
    let lines: Vec<Vec<&str>> = out.lines().map(columns).filter(|c| !c.is_empty()).collect();
    assert!(
        lines.iter().any(|c| c[0] == me
            && c[2] == "4"
            && c[3] == "127.0.0.1"
            && c[4] == "127.0.0.1"
            && c[5] == port.to_string()),
        "the connection to port {port}: {out}"
    );
    assert!(
        !lines.iter().any(|c| c[5] == other_port.to_string()),
        "-P {port} leaves out port {other_port}: {out}"
    );
}

#[test]
fn tcplife_shows_a_sessions_process_ports_bytes_and_lifetime() {
    let Some(_live) = live() else {
        return;
    };
    // The server is the test (it reads 100 KiB, then sends 200 KiB and
    // closes); the client is a process of its own.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = start(&["tcplife", "-D", &port.to_string(), "--duration", "3"]);
    assert_eq!(
        columns(&t.header),
        [
            "PID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "TX_KB", "RX_KB", "MS"
        ]
    );
    let client = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import socket\nc = socket.create_connection(('127.0.0.1', {port}))\nc.sendall(b'x' * 102400)\nwhile c.recv(65536): pass\nc.close()\n"
            ),
        ])
        .spawn()
        .unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    let mut got = vec![0u8; 102400];
    std::io::Read::read_exact(&mut conn, &mut got).unwrap();
    std::io::Write::write_all(&mut conn, &vec![b'y'; 204800]).unwrap();
    drop(conn);
    let cpid = client.id().to_string();
    let _ = { client }.wait();
    let out = t.finish();
    let line = out
        .lines()
        .map(columns)
        .find(|c| c.first() == Some(&cpid.as_str()))
        .unwrap_or_else(|| panic!("no session of the client {cpid}: {out}"));
    assert_eq!(line[1], "python3");
    assert_eq!((line[2], line[4]), ("127.0.0.1", "127.0.0.1"));
    assert_eq!(line[5], port.to_string(), "the remote port: {line:?}");
    assert_eq!((line[6], line[7]), ("100", "200"), "KiB each way: {line:?}");
    assert!(line[8].parse::<u64>().is_ok(), "{line:?}");
    // -D keeps the client's side only (the server's remote port is the
    // client's).
    assert_eq!(
        out.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{out}"
    );
}

/// Every option of every tool compiles, alone and with all the others,
/// through oxbpf's verifier (`--bytecode`: nothing is loaded).
/// A block device of this machine (a disk or a loop device).
fn any_disk() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/block")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names.into_iter().next().expect("a block device")
}

#[test]
fn every_option_of_every_tool_compiles() {
    if oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs a mounted tracefs (tracepoint formats)");
        return;
    }
    let run = |args: &[String]| {
        Command::new(common::oxbpf_bin())
            .arg("tool")
            .args(args)
            .output()
            .unwrap()
    };
    let list = run(&["list".to_string()]);
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(names.len() >= 9, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        let help = run(&[name.clone(), "--help".into()]);
        let help = String::from_utf8_lossy(&help.stdout).into_owned();
        // `  -x, --failed ...` / `      --max-args <N> ...`
        let mut opts: Vec<(String, Option<String>)> = Vec::new();
        for l in help.lines() {
            let Some(long) = l.split_whitespace().find(|w| w.starts_with("--")) else {
                continue;
            };
            let long = long.trim_end_matches(',').to_string();
            if [
                "--help",
                "--duration",
                "--output",
                "--bytecode",
                "--flamegraph",
                "--folded",
                "--plot",
            ]
            .contains(&long.as_str())
            {
                continue;
            }
            // A value: `<DISK>` names a block device, `<PATH>` the file
            // its help names as the default, any other a number.
            let value = if l.contains("<DISK>") {
                Some(any_disk())
            } else if l.contains("<PATH>") {
                let d = l
                    .split("(default ")
                    .nth(1)
                    .and_then(|r| r.split(')').next());
                Some(d.unwrap_or_else(|| panic!("a default in: {l}")).to_string())
            } else {
                l.contains('<').then(|| "1".to_string())
            };
            opts.push((long, value));
        }
        // Each option alone, then all together but for those that the
        // tool declares exclusive of one taken already.
        let mut all = vec![name.clone(), "--bytecode".into()];
        let mut combos: Vec<Vec<String>> = Vec::new();
        for (o, value) in &opts {
            let mut one = vec![o.clone()];
            one.extend(value.clone());
            let mut args = vec![name.clone(), "--bytecode".into()];
            args.extend(one.iter().cloned());
            combos.push(args);
            let mut more = all.clone();
            more.extend(one);
            let out = run(&more);
            if out.status.success()
                || !String::from_utf8_lossy(&out.stderr).contains("cannot be used with")
            {
                all = more;
            }
        }
        combos.push(all);
        for args in combos {
            let out = run(&args);
            if !out.status.success() {
                failures.push(format!(
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exitsnoop_shows_exit_codes_and_signals() {
    let Some(_live) = live() else {
        return;
    };
    let t = start(&["exitsnoop", "--duration", "3"]);
    assert_eq!(
        columns(&t.header),
        ["PCOMM", "PID", "PPID", "TID", "AGE(s)", "EXIT_CODE"]
    );
    let mut coded = Command::new("sh")
        .args(["-c", "sleep 0.3; exit 7"])
        .spawn()
        .unwrap();
    let coded_pid = coded.id().to_string();
    let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
    let killed_pid = killed.id().to_string();
    std::thread::sleep(std::time::Duration::from_millis(200));
    killed.kill().unwrap();
    let _ = (coded.wait(), killed.wait());
    let out = t.finish();
    let find = |pid: &str| {
        out.lines()
            .find(|l| columns(l).get(1) == Some(&pid))
            .unwrap_or_else(|| panic!("no exit of {pid}: {out}"))
            .to_string()
    };
    let c = find(&coded_pid);
    let c: Vec<&str> = columns(&c);
    assert_eq!(
        (c[0], c[2], c[3]),
        (
            "sh",
            std::process::id().to_string().as_str(),
            coded_pid.as_str()
        )
    );
    assert_eq!(c[5], "7", "{c:?}");
    let age: f64 = c[4].parse().unwrap();
    assert!((0.2..10.0).contains(&age), "it lived ~0.3 s: {c:?}");
    let k = find(&killed_pid);
    assert!(k.ends_with("signal 9"), "SIGKILL: {k}");
}

#[test]
fn sigsnoop_shows_a_signal_and_its_target() {
    let Some(_live) = live() else {
        return;
    };
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let vpid = victim.id().to_string();
    let t = start(&["sigsnoop", "-s", "10", "--duration", "2"]);
    assert_eq!(columns(&t.header), ["PID", "COMM", "SIG", "TPID", "RESULT"]);
    let kill = Command::new("kill").args(["-USR1", &vpid]).spawn().unwrap();
    let kpid = kill.id().to_string();
    let _ = { kill }.wait();
    let _ = victim.wait();
    let out = t.finish();
    let lines: Vec<Vec<&str>> = out.lines().map(columns).filter(|c| !c.is_empty()).collect();
    assert!(
        lines.iter().any(|c| c[0] == kpid
            && c[1] == "kill"
            && c[2] == "10"
            && c[3] == vpid
            && c[4] == "0"),
        "kill's SIGUSR1 to the victim, delivered: {out}"
    );
    assert!(lines.iter().all(|c| c[2] == "10"), "-s 10 only: {out}");
}

#[test]
fn tcpstates_shows_a_client_sockets_life() {
    let Some(_live) = live() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = start(&["tcpstates", "-D", &port.to_string(), "--duration", "2"]);
    assert_eq!(columns(&t.header)[0], "SKADDR");
    let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s, _) = listener.accept().unwrap();
    drop(c);
    drop(s);
    let out = t.finish();
    // The client's socket (remote port = the listener's): CLOSE ->
    // SYN_SENT in the test's own process, then ESTABLISHED, then the
    // close's states down to CLOSE.
    let changes: Vec<(String, String, String)> = out
        .lines()
        .map(columns)
        .filter(|c| c.len() >= 11 && c[6] == port.to_string())
        .map(|c| (c[1].to_string(), c[7].to_string(), c[9].to_string()))
        .collect();
    let me = std::process::id().to_string();
    assert!(
        changes.contains(&(me, "CLOSE".into(), "SYN_SENT".into())),
        "{out}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.1 == "SYN_SENT" && c.2 == "ESTABLISHED"),
        "{out}"
    );
    assert!(changes.iter().any(|c| c.2 == "FIN_WAIT1"), "{out}");
}

#[test]
fn capable_shows_granted_and_refused_checks() {
    let Some(_live) = live() else {
        return;
    };
    // CAP_SYS_NICE (23) is checked to lower a nice value: granted to
    // root, refused to nobody.
    let t = start(&["capable", "-c", "23", "--duration", "3"]);
    assert_eq!(
        columns(&t.header),
        ["UID", "PID", "COMM", "CAP", "NAME", "VERDICT"]
    );
    // `nice -n -1` (coreutils) lowers its nice value, then runs `true`:
    // after a pause, so that the tool is reading by then.
    let root = Command::new("sh")
        .args(["-c", "sleep 0.5; exec nice -n -1 true"])
        .spawn()
        .unwrap();
    let nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            "sleep 0.5; exec nice -n -1 true",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (rpid, npid) = (root.id().to_string(), nobody.id().to_string());
    let _ = ({ root }.wait(), { nobody }.wait());
    let out = t.finish();
    let lines: Vec<Vec<&str>> = out.lines().map(columns).filter(|c| c.len() == 6).collect();
    assert!(
        lines.iter().any(|c| c[0] == "0"
            && c[1] == rpid
            && c[3] == "23"
            && c[4] == "CAP_SYS_NICE"
            && c[5] == "0"),
        "root's check granted: {out}"
    );
    assert!(
        lines
            .iter()
            .any(|c| c[0] == "65534" && c[1] == npid && c[4] == "CAP_SYS_NICE" && c[5] != "0"),
        "nobody's check refused: {out}"
    );
}

/// A process spinning for `secs` seconds on CPU `cpu` only.
fn busy_on(cpu: usize, secs: u32) -> Child {
    Command::new("taskset")
        .args([
            "-c".to_string(),
            cpu.to_string(),
            "python3".into(),
            "-c".into(),
            format!("import time\nt = time.time()\nwhile time.time() - t < {secs}: pass\n"),
        ])
        .spawn()
        .unwrap()
}

/// A loop device over a file of the test's, detached (and the file
/// removed) when dropped, however the test ends.
struct LoopDevice {
    dev: String,
    file: std::path::PathBuf,
}

impl LoopDevice {
    fn new(mib: u64) -> LoopDevice {
        let file = std::env::temp_dir().join(format!("oxbpf-loop-{}.img", std::process::id()));
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(mib << 20).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .expect("losetup (util-linux) sets up a loop device");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(dev.starts_with("/dev/loop"), "{dev}");
        LoopDevice { dev, file }
    }

    /// `loop3`.
    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }

    /// Writes `count` blocks of `bs` bytes with O_DIRECT (each write one
    /// request, waited for) by a dd process; its pid.
    fn write_direct(&self, bs: usize, count: usize, seek: usize) -> u32 {
        let mut dd = Command::new("dd")
            .args([
                "if=/dev/zero".to_string(),
                format!("of={}", self.dev),
                format!("bs={bs}"),
                format!("count={count}"),
                format!("seek={seek}"),
                "oflag=direct".into(),
                "conv=notrunc".into(),
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = dd.id();
        assert!(dd.wait().unwrap().success());
        pid
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The counts of a histogram's buckets (`[64K, 128K)  8 |@@@|` or
/// `[1]  3 |@|`) in the lines after `label` until a blank line, by
/// bucket text.
/// Histograms as libbpf-tools prints them (`print_log2_hist`: `lo -> hi :
/// count |***|`, `print_linear_hist`: `value : count |***|`): the rows of
/// every one after a line starting with `key` (a key may have several: a
/// process's name changes when it execs), or of the first one for `""`,
/// as (lowest value, count).
fn libbpf_hist(out: &str, key: &str) -> Vec<(u64, u64)> {
    let mut rows = Vec::new();
    let mut lines = out.lines().peekable();
    loop {
        if !key.is_empty() && !lines.any(|l| l.starts_with(key)) {
            return rows;
        }
        if !lines.any(|l| {
            l.trim_end().ends_with(": count    distribution")
                || l.trim_end().ends_with(": count     distribution")
        }) {
            return rows;
        }
        while let Some(row) = lines.peek().and_then(|l| {
            let (range, rest) = l.split_once(" : ")?;
            let lo = range.split("->").next()?.trim().parse().ok()?;
            let n = rest.split_whitespace().next()?.parse().ok()?;
            Some((lo, n))
        }) {
            rows.push(row);
            lines.next();
        }
        if key.is_empty() {
            return rows;
        }
    }
}

fn buckets(out: &str, label: &str) -> Vec<(String, u64)> {
    out.lines()
        .skip_while(|l| !l.starts_with(label))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let (b, rest) = l.split_once([')', ']'])?;
            let n = rest.split_whitespace().next()?.parse().ok()?;
            Some((b.trim_start_matches('[').to_string(), n))
        })
        .collect()
}

#[test]
fn block_io_tools_see_direct_writes_of_known_sizes() {
    let Some(_live) = live() else {
        return;
    };
    let lo = LoopDevice::new(16);
    let disk = lo.name().to_string();
    let snoop = start(&["biosnoop", "-d", &disk, "--duration", "4"]);
    assert_eq!(
        columns(&snoop.header),
        [
            "TIME(s)", "COMM", "PID", "DISK", "T", "SECTOR", "BYTES", "LAT(ms)"
        ]
    );
    let lat = start(&["biolatency", "-d", &disk, "-F", "--duration", "4"]);
    assert!(
        lat.header.starts_with("Tracing block device I/O"),
        "{}",
        lat.header
    );
    let size = start(&["bitesize", "-d", &disk, "-c", "dd", "--duration", "4"]);
    let big = lo.write_direct(65536, 8, 0);
    let small = lo.write_direct(16384, 4, 64);
    let (snoop, lat, size) = (snoop.finish(), lat.finish(), size.finish());

    // biosnoop: one line per write, with dd's pid, the disk, W, the byte
    // count and the sector (seek is in blocks of bs).
    let rows: Vec<Vec<&str>> = snoop
        .lines()
        .map(columns)
        .filter(|c| c.len() == 8)
        .collect();
    let of =
        |pid: u32| -> Vec<&Vec<&str>> { rows.iter().filter(|c| c[2] == pid.to_string()).collect() };
    assert_eq!(of(big).len(), 8, "{snoop}");
    assert_eq!(of(small).len(), 4, "{snoop}");
    for (pid, bytes) in [(big, "65536"), (small, "16384")] {
        for c in of(pid) {
            assert_eq!(
                (c[1], c[3], c[4], c[6]),
                ("dd", disk.as_str(), "W", bytes),
                "{c:?}"
            );
        }
    }
    let sectors: Vec<u64> = of(big).iter().map(|c| c[5].parse().unwrap()).collect();
    assert_eq!(sectors, (0..8).map(|i| i * 128).collect::<Vec<_>>());
    assert_eq!(of(small)[0][5], (64 * 16384 / 512).to_string());

    // biolatency -F: the writes under a write's flags (W…), 12 in all.
    let label = lat
        .lines()
        .find(|l| l.starts_with("flags = W"))
        .unwrap_or_else(|| panic!("no write histogram: {lat}"));
    let n: u64 = libbpf_hist(&lat, label).iter().map(|b| b.1).sum();
    assert_eq!(n, 12, "{lat}");
    assert!(
        lat.contains("     usecs               : count    distribution"),
        "{lat}"
    );

    // bitesize: dd's sizes in kilobytes, 8 in 64 -> 127 and 4 in 16 -> 31.
    let b = libbpf_hist(&size, "Process Name = dd");
    assert!(b.contains(&(64, 8)), "{size}");
    assert!(b.contains(&(16, 4)), "{size}");
    assert!(
        size.contains("     Kbytes              : count    distribution"),
        "{size}"
    );
}

#[test]
fn biostacks_and_per_disk_latency() {
    let Some(_live) = live() else {
        return;
    };
    let lo = LoopDevice::new(16);
    let disk = lo.name().to_string();
    let stacks = start(&["biostacks", "-d", &disk, "--duration", "3"]);
    let lat = start(&["biolatency", "-D", "-Q", "-d", &disk, "--duration", "3"]);
    lo.write_direct(4096, 5, 0);
    let (stacks, lat) = (stacks.finish(), lat.finish());
    // The stack that started the writes is the direct-IO path from dd's
    // system call.
    assert!(stacks.contains("@usecs["), "{stacks}");
    assert!(
        stacks.lines().any(|l| l.contains("blkdev_direct_IO")
            || l.contains("__blkdev_direct_IO")
            || l.contains("submit_bio")),
        "the block layer's entry in the stacks: {stacks}"
    );
    let label = format!("disk = {disk}\t");
    let n: u64 = libbpf_hist(&lat, &label).iter().map(|b| b.1).sum();
    assert!(n >= 5, "five writes on {disk} at least: {lat}");
}

/// A C program whose one busy function (a known name) takes its CPU time,
/// or that sleeps in a known function; frame pointers, so that its user
/// stacks unwind.
fn c_workload(name: &str, src: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("oxbpf-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join(name);
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let st = Command::new("gcc")
        .args(["-O0", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&bin)
        .arg(&c)
        .status()
        .expect("gcc builds the workload");
    assert!(st.success());
    bin
}

#[test]
fn profile_draws_the_busy_function_in_a_flame_graph() {
    let Some(_live) = live() else {
        return;
    };
    let bin = c_workload(
        "oxspin",
        "#include <stdio.h>\n#include <time.h>\nvolatile unsigned long n;\n__attribute__((noinline)) void oxbpf_busy_spin(void) { for (unsigned long i = 0; i < 20000000UL; i++) n += i; }\nint main(void) { getchar(); time_t t = time(0); while (time(0) - t < 4) oxbpf_busy_spin(); return 0; }\n",
    );
    // It starts spinning when told, once the tool is attached.
    let mut spin = Command::new(&bin).stdin(Stdio::piped()).spawn().unwrap();
    let dir = bin.parent().unwrap().to_path_buf();
    let (svg, folded) = (dir.join("profile.svg"), dir.join("profile.folded"));
    let t = start(&[
        "profile",
        "-p",
        &spin.id().to_string(),
        "-F",
        "99",
        "--flamegraph",
        svg.to_str().unwrap(),
        "--folded",
        folded.to_str().unwrap(),
        "--duration",
        "2",
    ]);
    assert!(t.header.starts_with("Sampling at 99 Hertz"), "{}", t.header);
    drop(spin.stdin.take());
    let out = t.finish();
    let _ = (spin.kill(), spin.wait());
    // The stacks went to the files, not to the output.
    assert!(!out.contains("@samples"), "{out}");
    let folded = std::fs::read_to_string(&folded).unwrap();
    let mut samples = 0;
    for l in folded.lines() {
        let (stack, n) = l.rsplit_once(' ').unwrap();
        assert!(stack.starts_with("oxspin;"), "{l}");
        // Distinct stacks that meet in one bucket of the stack map: the
        // later ones are missed (as in bpftrace and libbpf-tools), and say so.
        if stack.contains("[Missed") {
            assert!(stack == "oxspin;[Missed User Stack]", "{l}");
            continue;
        }
        if stack.contains("main;oxbpf_busy_spin") {
            samples += n.parse::<u64>().unwrap();
        }
    }
    // 2 s at 99 Hz on the one CPU it runs on: ~198 samples, most in the
    // busy function.
    assert!(samples >= 100, "{folded}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "an SVG");
    assert!(
        svg.contains("oxbpf_busy_spin"),
        "the busy function is drawn"
    );
}

#[test]
fn offcputime_shows_a_sleeping_threads_stack() {
    let Some(_live) = live() else {
        return;
    };
    let bin = c_workload(
        "oxnap",
        "#include <stdio.h>\n#include <time.h>\n__attribute__((noinline)) void oxbpf_nap(void) { struct timespec ts = {0, 100000000}; nanosleep(&ts, 0); }\nint main(void) { getchar(); for (int i = 0; i < 40; i++) oxbpf_nap(); return 0; }\n",
    );
    // It starts napping when told, once the tool is attached.
    let mut nap = Command::new(&bin).stdin(Stdio::piped()).spawn().unwrap();
    let dir = bin.parent().unwrap().to_path_buf();
    let folded = dir.join("offcpu.folded");
    let t = start(&[
        "offcputime",
        "-p",
        &nap.id().to_string(),
        "--folded",
        folded.to_str().unwrap(),
        "--duration",
        "2",
    ]);
    assert!(t.header.starts_with("Tracing off-CPU time"), "{}", t.header);
    drop(nap.stdin.take());
    t.finish();
    let _ = (nap.kill(), nap.wait());
    let folded = std::fs::read_to_string(&folded).unwrap();
    // About 2 s asleep in nanosleep, summed in microseconds.
    let asleep: u64 = folded
        .lines()
        .filter(|l| l.starts_with("oxnap;") && l.contains("do_nanosleep"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert!(
        (1_500_000..=2_500_000).contains(&asleep),
        "{asleep} us: {folded}"
    );
    // Without the files, the stacks print as libbpf-tools' offcputime
    // prints them: blocks of frames (the kernel's, then the thread's,
    // innermost first), `-  COMM (TID)`, the microseconds.
    let mut nap = Command::new(&bin).stdin(Stdio::piped()).spawn().unwrap();
    let t = start(&["offcputime", "-p", &nap.id().to_string(), "--duration", "2"]);
    drop(nap.stdin.take());
    let out = t.finish();
    let _ = (nap.kill(), nap.wait());
    let tail = format!("    -                oxnap ({})", nap.id());
    let mut asleep = 0;
    for block in out.split("\n\n") {
        let lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
        let Some(at) = lines.iter().position(|l| *l == tail) else {
            continue;
        };
        let frames: Vec<&str> = lines[..at].iter().map(|l| l.trim()).collect();
        assert!(lines[..at].iter().all(|l| l.starts_with("    ")), "{block}");
        let us: u64 = lines[at + 1].trim().parse().unwrap();
        // (libc's clock_nanosleep keeps no frame pointer: the unwinder
        // goes from it to main, past oxbpf_nap.)
        if let (Some(k), Some(u)) = (
            frames.iter().position(|f| *f == "do_nanosleep"),
            frames.iter().position(|f| *f == "main"),
        ) {
            assert!(k < u, "kernel frames first: {block}");
            asleep += us;
        }
    }
    assert!(
        (1_500_000..=2_500_000).contains(&asleep),
        "{asleep} us under do_nanosleep .. main: {out}"
    );
}

#[test]
fn statsnoop_shows_paths_results_and_errors() {
    let Some(_live) = live() else {
        return;
    };
    let t = start(&[
        "statsnoop",
        "-p",
        &std::process::id().to_string(),
        "--duration",
        "2",
    ]);
    assert_eq!(columns(&t.header), ["PID", "COMM", "RET", "ERR", "PATH"]);
    let here = std::env::temp_dir().join(format!("oxbpf-stat-{}", std::process::id()));
    std::fs::write(&here, "x").unwrap();
    assert!(std::fs::metadata(&here).is_ok());
    assert!(std::fs::metadata("/nonexistent/oxbpf-stat-marker").is_err());
    let out = t.finish();
    let _ = std::fs::remove_file(&here);
    let me = std::process::id().to_string();
    let ok = out
        .lines()
        .find(|l| l.ends_with(here.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{out}"));
    let c = columns(ok);
    assert_eq!((c[0], c[2], c[3]), (me.as_str(), "0", "0"), "{ok}");
    let bad = out
        .lines()
        .find(|l| l.ends_with("/nonexistent/oxbpf-stat-marker"))
        .unwrap_or_else(|| panic!("{out}"));
    let c = columns(bad);
    assert_eq!(
        (c[0], c[2], c[3]),
        (me.as_str(), "-1", "2"),
        "ENOENT: {bad}"
    );
}

#[test]
fn mountsnoop_shows_a_mount_and_its_unmount() {
    let Some(_live) = live() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("oxbpf-mnt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap().to_string();
    let t = start(&["mountsnoop", "--duration", "2"]);
    assert_eq!(columns(&t.header), ["COMM", "PID", "TID", "MNT_NS", "CALL"]);
    let mut m = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "oxbpfsrc", &d])
        .spawn()
        .unwrap();
    let mount_pid = m.id();
    assert!(m.wait().unwrap().success());
    assert!(Command::new("umount").arg(&d).status().unwrap().success());
    let out = t.finish();
    let _ = std::fs::remove_dir(&dir);
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/mnt")
        .unwrap()
        .ino()
        .to_string();
    let line = out
        .lines()
        .find(|l| l.contains(&format!("mount(\"oxbpfsrc\", \"{d}\", \"tmpfs\", ")))
        .unwrap_or_else(|| panic!("{out}"));
    let c = columns(line);
    assert_eq!(
        (c[0], c[1], c[3]),
        ("mount", mount_pid.to_string().as_str(), ns.as_str()),
        "{line}"
    );
    assert!(line.ends_with("\"size=1m\") = 0"), "{line}");
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("umount(\"{d}\", 0x0) = 0"))),
        "{out}"
    );
}

#[test]
fn tcpaccept_shows_the_acceptor_and_both_ends() {
    let Some(_live) = live() else {
        return;
    };
    let t = start(&[
        "tcpaccept",
        "-p",
        &std::process::id().to_string(),
        "--duration",
        "2",
    ]);
    assert_eq!(
        columns(&t.header),
        ["PID", "COMM", "IP", "RADDR", "RPORT", "LADDR", "LPORT"]
    );
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = l.local_addr().unwrap().port();
    let c = std::net::TcpStream::connect(("127.0.0.1", lport)).unwrap();
    let rport = c.local_addr().unwrap().port();
    let (_s, _) = l.accept().unwrap();
    let out = t.finish();
    let want = [
        std::process::id().to_string(),
        "4".into(),
        "127.0.0.1".into(),
        rport.to_string(),
        "127.0.0.1".into(),
        lport.to_string(),
    ];
    assert!(
        out.lines().any(|line| {
            let c = columns(line);
            c.len() == 7 && c[0] == want[0] && c[2..] == want[1..]
        }),
        "{want:?} in: {out}"
    );
}

#[test]
fn tcpretrans_sees_a_connection_whose_packets_stop() {
    let Some(_live) = live() else {
        return;
    };
    let ns = format!("oxbpf-rt-{}", std::process::id());
    assert!(
        Command::new("ip")
            .args(["netns", "add", &ns])
            .status()
            .unwrap()
            .success()
    );
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _ns = Ns(ns.clone());
    let t = start(&["tcpretrans", "--duration", "4"]);
    assert_eq!(
        columns(&t.header),
        [
            "TIME",
            "PID",
            "IP",
            "LADDR:LPORT",
            "T>",
            "RADDR:RPORT",
            "STATE"
        ]
    );
    // In the namespace: a connection over lo, then lo goes down and the
    // client's data has to be resent (the first resend after ~200 ms).
    let script = "import socket, subprocess, time\n\
subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)\n\
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
c = socket.create_connection(l.getsockname()); s, _ = l.accept()\n\
print(c.getsockname()[1], l.getsockname()[1], flush=True)\n\
subprocess.run(['ip', 'link', 'set', 'lo', 'down'], check=True)\n\
c.send(b'x' * 100)\n\
time.sleep(1.5)\n";
    let out = Command::new("ip")
        .args(["netns", "exec", &ns, "python3", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ports = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (cport, sport) = ports.split_once(' ').unwrap();
    let text = t.finish();
    let want = format!("127.0.0.1:{cport} R> 127.0.0.1:{sport} ESTABLISHED");
    assert!(text.contains(&want), "{want} in:\n{text}");
}

/// A memory cgroup limited to `mib` MiB without swap (cgroup v2's memory
/// controller where it has one, else v1's), removed when dropped.
struct MemCgroup {
    dir: std::path::PathBuf,
    procs: std::path::PathBuf,
}

impl MemCgroup {
    fn new(mib: u64) -> MemCgroup {
        let name = format!("oxbpf-mem-{}", std::process::id());
        let limit = (mib << 20).to_string();
        let v2 = oxbpf_sys::net::cgroup2_mount().filter(|m| {
            std::fs::read_to_string(m.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
        });
        let cg = if let Some(root) = v2 {
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory");
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("memory.max"), &limit).unwrap();
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            dir
        } else {
            let root = oxbpf_sys::net::cgroup_hierarchies()
                .into_iter()
                .find(|(n, _)| n == "memory")
                .expect("a memory cgroup controller (v2 or v1)")
                .1;
            let dir = root.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("memory.limit_in_bytes"), &limit).unwrap();
            let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), &limit);
            dir
        };
        MemCgroup {
            procs: cg.join("cgroup.procs"),
            dir: cg,
        }
    }

    /// Runs `python3 -c CODE` inside the cgroup; its pid and status.
    fn run_python(&self, code: &str) -> (u32, std::process::ExitStatus) {
        let mut c = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "echo $$ > {} && exec python3 -c \"$0\"",
                    self.procs.display()
                ),
                code,
            ])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = c.id();
        (pid, c.wait().unwrap())
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

#[test]
fn oomkill_and_drsnoop_see_a_cgroups_memory_run_out() {
    let Some(_live) = live() else {
        return;
    };
    let cg = MemCgroup::new(48);
    let oom = start(&["oomkill", "--duration", "5"]);
    assert!(
        oom.header.starts_with("Tracing OOM kills"),
        "{}",
        oom.header
    );
    let dr = start(&["drsnoop", "--duration", "5"]);
    assert_eq!(
        columns(&dr.header),
        ["COMM", "TID", "LAT(ms)", "PAGES", "KIND"]
    );
    // 400 MiB written in a 48 MiB cgroup without swap: it reclaims,
    // then the OOM killer kills it.
    let (pid, st) = cg.run_python("x = b'a' * (400 << 20)");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9), "killed by the OOM killer: {st}");
    let (oom, dr) = (oom.finish(), dr.finish());
    let want = format!("OOM kill of PID {pid} (\"python3\")");
    let line = oom
        .lines()
        .find(|l| l.contains(&want))
        .unwrap_or_else(|| panic!("{want} in: {oom}"));
    assert!(
        line.contains(&format!("Triggered by PID {pid} (\"python3\")")),
        "{line}"
    );
    // Its anonymous memory is near the limit when it is killed.
    let anon: u64 = line
        .split("anon-rss ")
        .nth(1)
        .and_then(|r| r.split("kB").next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((20_000..=49_152).contains(&anon), "{line}");
    assert!(
        dr.lines().any(|l| {
            let c = columns(l);
            c.len() == 5 && c[0] == "python3" && c[1] == pid.to_string() && c[4] == "memcg"
        }),
        "the cgroup's reclaim by python3 ({pid}): {dr}"
    );
}

#[test]
fn softirqs_and_hardirqs_name_what_ran() {
    let Some(_live) = live() else {
        return;
    };
    let soft = start(&["softirqs", "-C", "--duration", "2"]);
    let hard = start(&["hardirqs", "--duration", "2"]);
    // Traffic over loopback runs NET_RX.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut s, _) = l.accept().unwrap();
    use std::io::Write;
    for _ in 0..100 {
        c.write_all(&[0u8; 1000]).unwrap();
        let mut b = [0u8; 1000];
        s.read_exact(&mut b).unwrap();
    }
    // A write to the disk, flushed: the disk's completion interrupt.
    let file = std::env::current_dir()
        .unwrap()
        .join(format!("oxbpf-irq-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(&vec![1u8; 1 << 20]).unwrap();
        f.sync_all().unwrap();
    }
    let _ = std::fs::remove_file(&file);
    let (soft, hard) = (soft.finish(), hard.finish());
    let kinds = [
        "hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched", "hrtimer",
        "rcu",
    ];
    // libbpf-tools' columns: SOFTIRQ TOTAL_usecs TOTAL_count, the
    // rows under the header until a blank line.
    fn rows<'a>(out: &'a str, header: &[&str]) -> Vec<Vec<&'a str>> {
        out.lines()
            .skip_while(|l| columns(l) != header)
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(columns)
            .collect()
    }
    let soft_rows = rows(&soft, &["SOFTIRQ", "TOTAL_usecs", "TOTAL_count"]);
    let mut seen = Vec::new();
    for r in &soft_rows {
        assert!(kinds.contains(&r[0]), "{r:?}");
        assert_eq!(r.len(), 3, "{soft}");
        assert!(r[2].parse::<u64>().unwrap() > 0, "{soft}");
        seen.push(r[0]);
    }
    assert!(seen.contains(&"net_rx"), "{soft}");
    assert!(seen.contains(&"timer"), "{soft}");
    // Every handler counted is one of /proc/interrupts': HARDIRQ
    // TOTAL_count TOTAL_usecs MAX_usecs, the longest no more than the total.
    let table = std::fs::read_to_string("/proc/interrupts").unwrap();
    let hard_rows = rows(
        &hard,
        &["HARDIRQ", "TOTAL_count", "TOTAL_usecs", "MAX_usecs"],
    );
    for r in &hard_rows {
        let n: Vec<u64> = r[r.len() - 3..]
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(n[0] > 0 && n[2] <= n[1], "{hard}");
    }
    let names: Vec<String> = hard_rows
        .iter()
        .map(|r| r[..r.len() - 3].join(" "))
        .collect();
    assert!(!names.is_empty(), "the disk's interrupt at least: {hard}");
    for n in &names {
        assert!(table.contains(n), "{n} is not in /proc/interrupts");
    }
}

#[test]
fn cpudist_on_and_off_cpu_per_process() {
    let Some(_live) = live() else {
        return;
    };
    let nap = c_workload(
        "oxnap2",
        "#include <time.h>\nint main(void) { struct timespec ts = {0, 100000000}; for (int i = 0; i < 30; i++) nanosleep(&ts, 0); return 0; }\n",
    );
    let mut n = Command::new(&nap).spawn().unwrap();
    let off = start(&["cpudist", "-O", "-P", "--duration", "2"]);
    assert!(
        off.header.starts_with("Tracing off-CPU time"),
        "{}",
        off.header
    );
    let on = start(&["cpudist", "-P", "--duration", "2"]);
    let busy = Command::new("python3")
        .args([
            "-c",
            "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\n",
        ])
        .spawn()
        .unwrap();
    let busy_pid = busy.id();
    let _ = { busy }.wait();
    let (off, on) = (off.finish(), on.finish());
    let _ = (n.kill(), n.wait());
    // Off CPU: ~100 ms naps, in the [64K, 128K) microsecond bucket.
    let b = libbpf_hist(&off, &format!("pid = {} oxnap2", n.id()));
    let naps: u64 = b.iter().filter(|(lo, _)| *lo == 65536).map(|b| b.1).sum();
    assert!(naps >= 10, "{off}");
    // On CPU: the busy process ran, in slices of its own.
    let b = libbpf_hist(&on, &format!("pid = {busy_pid} python3"));
    assert!(b.iter().map(|b| b.1).sum::<u64>() > 0, "{on}");
    assert!(
        on.contains("     usecs               : count    distribution"),
        "{on}"
    );
}

#[test]
fn runqlen_sees_a_queue_on_a_shared_cpu() {
    let Some(_live) = live() else {
        return;
    };
    let (mut a, mut b) = (busy_on(0, 3), busy_on(0, 3));
    let t = start(&["runqlen", "-C", "--duration", "2"]);
    assert!(
        t.header
            .starts_with("Sampling run queue length at 99 Hertz"),
        "{}",
        t.header
    );
    let out = t.finish();
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
    // On CPU 0 one runs while the other waits: length 1 (at least).
    let queued: u64 = libbpf_hist(&out, "cpu = 0")
        .iter()
        .filter(|(len, _)| *len > 0)
        .map(|b| b.1)
        .sum();
    assert!(
        out.contains("     runqlen       : count     distribution"),
        "{out}"
    );
    assert!(queued > 50, "{out}");
}

#[test]
fn wakeuptime_names_the_waker_and_its_stack() {
    let Some(_live) = live() else {
        return;
    };
    let bin = c_workload(
        "oxwake",
        "#include <pthread.h>\n#include <unistd.h>\n#include <time.h>\nint p[2];\nvoid *reader(void *a) { char c; for (int i = 0; i < 10; i++) read(p[0], &c, 1); return a; }\nint main(void) { pipe(p); pthread_t t; pthread_create(&t, 0, reader, 0); struct timespec ts = {0, 100000000}; for (int i = 0; i < 10; i++) { nanosleep(&ts, 0); write(p[1], \"x\", 1); } pthread_join(t, 0); return 0; }\n",
    );
    let mut w = Command::new(&bin).spawn().unwrap();
    let folded = bin.with_file_name("wake.folded");
    let t = start(&[
        "wakeuptime",
        "-p",
        &w.id().to_string(),
        "--folded",
        folded.to_str().unwrap(),
        "--duration",
        "2",
    ]);
    t.finish();
    let _ = (w.kill(), w.wait());
    let f = std::fs::read_to_string(&folded).unwrap();
    // The reader blocked on the pipe, woken by the writer's write(2).
    let us: u64 = f
        .lines()
        .filter(|l| l.starts_with("oxwake;oxwake;") && l.contains("pipe_write"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert!(us >= 500_000, "{us} us: {f}");
}

#[test]
fn futexctn_sees_a_contended_mutex() {
    let Some(_live) = live() else {
        return;
    };
    let bin = c_workload(
        "oxlock",
        "#include <pthread.h>\n#include <stdio.h>\n#include <time.h>\npthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;\nvoid *worker(void *a) { struct timespec ts = {0, 20000000}; for (int i = 0; i < 20; i++) { pthread_mutex_lock(&m); nanosleep(&ts, 0); pthread_mutex_unlock(&m); } return a; }\nint main(void) { struct timespec w = {0, 500000000}; nanosleep(&w, 0); printf(\"%p\\n\", (void *)&m); fflush(stdout); pthread_t t[3]; for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, worker, 0); for (int i = 0; i < 3; i++) pthread_join(t[i], 0); return 0; }\n",
    );
    let mut w = Command::new(&bin).stdout(Stdio::piped()).spawn().unwrap();
    let t = start(&[
        "futexctn",
        "-s",
        "-p",
        &w.id().to_string(),
        "--duration",
        "3",
    ]);
    let mut addr = String::new();
    BufReader::new(w.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let out = t.finish();
    let _ = w.wait();
    // libbpf-tools' line: `oxlock[PID] lock 0xADDR contended N times, AVG
    // avg usecs [max: MAX usecs, min MIN usecs]`, then the histogram.
    let label = format!("oxlock[{}] lock {} contended ", w.id(), addr.trim());
    let line = out
        .lines()
        .find(|l| l.starts_with(&label))
        .unwrap_or_else(|| panic!("{label} in: {out}"));
    let c = columns(line);
    let n: u64 = c[4].parse().unwrap();
    let (avg, max, min): (u64, u64, u64) = (
        c[6].parse().unwrap(),
        c[10].parse().unwrap(),
        c[13].parse().unwrap(),
    );
    assert!(min <= avg && avg <= max, "{line}");
    let waits: u64 = libbpf_hist(&out, &label).iter().map(|b| b.1).sum();
    assert_eq!(
        waits, n,
        "the histogram counts the waits the line says: {out}"
    );
    // 60 critical sections of 20 ms among 3 threads: most lock calls wait.
    assert!(waits >= 20, "{label} in: {out}");
}

/// Starts each tool (`--duration S` added) and returns them once all
/// are attached.
fn start_all(tools: &[&[&str]], secs: &str) -> Vec<Running> {
    tools
        .iter()
        .map(|t| {
            let mut a = t.to_vec();
            a.extend(["--duration", secs]);
            start(&a)
        })
        .collect()
}

#[test]
fn process_tools_see_a_workloads_sleeps_forks_uid_changes_syncs_and_threads() {
    let Some(_live) = live() else {
        return;
    };
    let mut t = start_all(
        &[
            &["naptime"],
            &["pidpersec"],
            &["setuids"],
            &["syncsnoop"],
            &["threadsnoop"],
        ],
        "4",
    )
    .into_iter();
    let (nap, pps, uids, sync, threads) = (
        t.next().unwrap(),
        t.next().unwrap(),
        t.next().unwrap(),
        t.next().unwrap(),
        t.next().unwrap(),
    );
    let dir = std::env::temp_dir();
    let script = format!(
        "import os, subprocess, threading\n\
subprocess.run(['sleep', '0.3'])\n\
for i in range(20):\n    pid = os.fork()\n    if pid == 0: os._exit(0)\n    os.waitpid(pid, 0)\n\
pid = os.fork()\n\
if pid == 0:\n    os.setresuid(65534, 65534, 65534)\n    os._exit(0)\n\
os.waitpid(pid, 0)\n\
fd = os.open('{}/oxbpf-sync-{}', os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'x')\nos.fsync(fd)\nos.fdatasync(fd)\n\
t = threading.Thread(target=print); t.start(); t.join()\n",
        dir.display(),
        std::process::id()
    );
    let w = Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let py = w.id().to_string();
    assert!({ w }.wait_with_output().unwrap().status.success());
    let _ = std::fs::remove_file(dir.join(format!("oxbpf-sync-{}", std::process::id())));
    let (nap, pps, uids, sync, threads) = (
        nap.finish(),
        pps.finish(),
        uids.finish(),
        sync.finish(),
        threads.finish(),
    );

    // naptime: sleep(1), child of the workload, asked for 0.3 s.
    assert!(
        nap.lines().any(|l| {
            let c = columns(l);
            c.len() == 6 && c[1] == py && c[2] == "python3" && c[4] == "sleep" && c[5] == "0.300"
        }),
        "{nap}"
    );
    // pidpersec: at least the workload's 22 new processes.
    let total: u64 = pps
        .lines()
        .filter_map(|l| l.split("PIDs/sec: ").nth(1)?.trim().parse::<u64>().ok())
        .sum();
    assert!(total >= 22, "{pps}");
    // setuids: root's child gives up its uids.
    assert!(
        uids.lines().any(|l| {
            let c = columns(l);
            c.len() >= 5
                && c[2] == "python3"
                && c[3] == "0"
                && c[4] == "setresuid"
                && l.ends_with("r=65534 e=65534 s=65534 (0)")
        }),
        "{uids}"
    );
    // syncsnoop: fsync and fdatasync of fd 3 by the workload.
    for call in ["fsync(fd 3)", "fdatasync(fd 3)"] {
        assert!(
            sync.lines()
                .any(|l| columns(l).get(1) == Some(&py.as_str()) && l.ends_with(call)),
            "{call}: {sync}"
        );
    }
    // threadsnoop: Python's thread start routine.
    assert!(
        threads.lines().any(|l| {
            let c = columns(l);
            c.len() == 4 && c[1] == py && c[2] == "python3" && c[3] == "pythread_wrapper"
        }),
        "{threads}"
    );
}

#[test]
fn cpuwalk_and_loads() {
    let Some(_live) = live() else {
        return;
    };
    let last = std::thread::available_parallelism().map_or(1, |n| n.get()) - 1;
    let mut busy = busy_on(last, 3);
    let walk = start(&["cpuwalk", "-p", &busy.id().to_string(), "--duration", "2"]);
    let loads = start(&["loads", "--duration", "2"]);
    let (walk, loads) = (walk.finish(), loads.finish());
    let _ = (busy.kill(), busy.wait());
    // Every sample of the pinned process is on its CPU.
    let b = buckets(&walk, "@cpu:");
    let on: u64 = b
        .iter()
        .filter(|(k, _)| *k == format!("{last}, {}", last + 1))
        .map(|b| b.1)
        .sum();
    let all: u64 = b.iter().map(|b| b.1).sum();
    assert!(on > 100 && on == all, "{walk}");
    // loads: a time and /proc/loadavg's fields, once a second.
    let lines: Vec<&str> = loads.lines().filter(|l| l.contains('/')).collect();
    assert!(!lines.is_empty(), "{loads}");
    for l in lines {
        let c = columns(l);
        assert_eq!(c.len(), 6, "{l}");
        for f in &c[1..4] {
            assert!(f.parse::<f64>().is_ok(), "{l}");
        }
    }
}

#[test]
fn name_lookup_drop_and_tls_tools() {
    let Some(_live) = live() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("oxbpf-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(dir.join("k.pem"))
        .arg("-out")
        .arg(dir.join("c.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl makes a certificate");
    assert!(st.success());
    let mut t = start_all(
        &[
            &["gethostlatency"],
            &["tcpdrop", "-s"],
            &["sslsnoop"],
            &["ssllatency"],
        ],
        "4",
    )
    .into_iter();
    let (gh, drop, snoop, lat) = (
        t.next().unwrap(),
        t.next().unwrap(),
        t.next().unwrap(),
        t.next().unwrap(),
    );
    // A lookup; a connection to a closed port (its SYN is dropped: no
    // socket); a TLS session with itself over loopback.
    let script = format!(
        "import socket, ssl, threading\n\
socket.getaddrinfo('localhost', 80)\n\
c = socket.socket(); c.bind(('127.0.0.1', 0)); print(c.getsockname()[1], flush=True)\n\
try: c.connect(('127.0.0.1', 9))\nexcept OSError: pass\n\
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain('{0}/c.pem', '{0}/k.pem')\n\
cctx = ssl.create_default_context(cafile='{0}/c.pem')\n\
l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()\n\
def serve():\n    s, _ = l.accept()\n    with sctx.wrap_socket(s, server_side=True) as t:\n        t.sendall(t.recv(5))\n\
th = threading.Thread(target=serve); th.start()\n\
with cctx.wrap_socket(socket.create_connection(l.getsockname()), server_hostname='localhost') as t:\n    t.sendall(b'hello'); assert t.recv(5) == b'hello'\n\
th.join()\n",
        dir.display()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (gh, drop, snoop, lat) = (gh.finish(), drop.finish(), snoop.finish(), lat.finish());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        gh.lines().any(|l| {
            let c = columns(l);
            c.len() == 5 && c[2] == "python3" && c[4] == "localhost"
        }),
        "{gh}"
    );
    assert!(
        drop.lines().any(|l| {
            let c = columns(l);
            l.contains(&format!("127.0.0.1:{port} >"))
                && c.contains(&"127.0.0.1:9")
                && l.ends_with("(NO_SOCKET)")
        }),
        "127.0.0.1:{port} > 127.0.0.1:9 (NO_SOCKET) in: {drop}"
    );
    for f in ["SSL_do_handshake", "SSL_write_ex", "SSL_read_ex"] {
        assert!(
            snoop.lines().any(|l| {
                let c = columns(l);
                c.len() == 6 && c[2] == "python3" && c[5] == f && c[3] == "1"
            }),
            "{f} returning 1 in: {snoop}"
        );
    }
    assert!(lat.contains("@lat[SSL_do_handshake]:"), "{lat}");
    assert!(
        lat.contains("@lat[SSL_read_ex]:") && lat.contains("@lat[SSL_write_ex]:"),
        "{lat}"
    );
}

#[test]
fn writeback_and_bashreadline() {
    let Some(_live) = live() else {
        return;
    };
    let wb = start(&["writeback", "--duration", "3"]);
    assert_eq!(columns(wb.header.as_str())[0], "Tracing");
    let br = start(&["bashreadline", "--duration", "3"]);
    // Dirty pages on the disk's file system, then sync(1): a writeback
    // for the sync.
    let file = std::env::current_dir()
        .unwrap()
        .join(format!("oxbpf-wb-{}", std::process::id()));
    std::fs::write(&file, vec![7u8; 8 << 20]).unwrap();
    assert!(Command::new("sync").status().unwrap().success());
    let _ = std::fs::remove_file(&file);
    // An interactive bash on a terminal (script(1) gives it one).
    let mut sh = Command::new("script")
        .args(["-qfc", "bash --norc --noprofile -i", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut i = sh.stdin.take().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = i.write_all(b"echo oxbpf-readline-marker\n");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = i.write_all(b"exit\n");
    }
    let _ = sh.wait();
    let (wb, br) = (wb.finish(), br.finish());
    assert!(
        wb.lines().any(|l| columns(l).get(3) == Some(&"sync")),
        "a writeback for the sync: {wb}"
    );
    assert!(
        br.lines()
            .any(|l| l.ends_with(" echo oxbpf-readline-marker")),
        "{br}"
    );
}

#[test]
fn interval_tools_write_ndjson_and_histograms_plot() {
    let Some(_live) = live() else {
        return;
    };
    // --json: every line a record; a map record per interval.
    let t = start(&["syscount", "-i", "1", "--json", "--duration", "2.5"]);
    let first: serde_json::Value = serde_json::from_str(&t.header).unwrap();
    assert_eq!(first["type"], "printf", "{}", t.header);
    let out = t.finish();
    let recs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let maps = recs.iter().filter(|r| r["type"] == "map").count();
    assert!(maps >= 2, "a map record per interval: {out}");
    // --plot: the histogram drawn, with the values the text shows.
    let lo = LoopDevice::new(16);
    let svg = std::env::temp_dir().join(format!("oxbpf-plot-{}.svg", std::process::id()));
    let t = start(&[
        "biolatency",
        "-d",
        lo.name(),
        "--plot",
        svg.to_str().unwrap(),
        "--duration",
        "2",
    ]);
    lo.write_direct(4096, 9, 0);
    let out = t.finish();
    let n: u64 = libbpf_hist(&out, "").iter().map(|b| b.1).sum();
    assert_eq!(n, 9, "{out}");
    let page = std::fs::read_to_string(&svg).unwrap();
    let _ = std::fs::remove_file(&svg);
    assert!(page.starts_with("<?xml") && page.contains("<svg"), "{page}");
    assert!(page.contains("@lat (9 values)"), "{page}");
    assert!(page.matches("<rect x=").count() >= 1, "{page}");
    // A script without histograms: --plot is refused before loading.
    let bad = Command::new(common::oxbpf_bin())
        .args(["tool", "softirqs", "--plot", "/tmp/x.svg"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--plot draws histograms"));
}

#[test]
fn runqlat_per_process() {
    let Some(_live) = live() else {
        return;
    };
    let (mut a, mut b) = (busy_on(0, 3), busy_on(0, 3));
    let out = start(&["runqlat", "-P", "--duration", "2"]).finish();
    let _ = (a.kill(), b.kill(), a.wait(), b.wait());
    // Each process waits for the other's slices: milliseconds.
    for p in [a.id(), b.id()] {
        let waits: u64 = libbpf_hist(&out, &format!("pid = {p} "))
            .iter()
            .filter(|(lo, _)| *lo >= 1024)
            .map(|b| b.1)
            .sum();
        assert!(waits > 0, "{p}: {out}");
    }
}
