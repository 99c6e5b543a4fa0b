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
/// `newlstat`, `newuname`), and calls `work(i)` for i = 1..3, which
/// returns 2i.
const WORKLOAD: &str = r#"
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
__attribute__((noinline)) long work(long i) { asm volatile(""); return 2 * i; }
int main(void) {
    long s = 0;
    struct stat st;
    struct utsname u;
    for (int i = 0; i < 7; i++) s += getppid();
    syscall(SYS_fstat, 0, &st);
    syscall(SYS_stat, "/", &st);
    syscall(SYS_lstat, "/", &st);
    syscall(SYS_uname, &u);
    for (long i = 1; i <= 3; i++) s += work(i);
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
        let st = Command::new("gcc")
            .args(["-O1", "-g", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("gcc (Debian: gcc) builds the workload");
        assert!(st.success());
    }
    bin
}

enum Want {
    /// The same output as bpftrace's.
    Bpftrace,
    /// This text (bpftrace 0.17 lacks the feature or differs on purpose,
    /// as said).
    Text(&'static str),
}

struct Case {
    name: &'static str,
    script: &'static str,
    params: &'static [&'static str],
    /// Run under `-c WORKLOAD`.
    workload: bool,
    want: Want,
}

const fn case(name: &'static str, script: &'static str, want: Want) -> Case {
    Case {
        name,
        script,
        params: &[],
        workload: false,
        want,
    }
}

const CASES: &[Case] = &[
    case(
        "printf conversions",
        r#"BEGIN { printf("%d %u %x %5d|%-5d|%05d %s %c\n", -3, 3, 255, 42, 42, 42, "str", 65); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "printf with a large record",
        r#"BEGIN { printf("%s|%s|%s|%s|%s|%s|%d\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa1", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbb2", "ccccccccccccccccccccccccccccc3", "ddddddddddddddddddddddddddddd4", "eeeeeeeeeeeeeeeeeeeeeeeeeeeee5", "fffffffffffffffffffffffffffff6", 7); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "printf widths and lengths",
        r#"BEGIN { printf("%s|%10s|%-10s|\n", "a", "bc", "de"); printf("%lu %ld %llx\n", -1, -1, -1); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "count sum and scalar maps",
        r#"BEGIN { @a = count(); @a = count(); @b[1] = sum(5); @b[2] = sum(3); @c["x"] = 7; exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "the unnamed map",
        r#"BEGIN { @[1] = count(); @[2] = count(); @[2] = count(); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "hist buckets and bars",
        r#"BEGIN { @h = hist(0); @h = hist(1); @h = hist(2); @h = hist(1000); @h = hist(-5); @h = hist(1 << 20); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "lhist buckets",
        r#"BEGIN { @l = lhist(15, 0, 100, 10); @l = lhist(150, 0, 100, 10); @l = lhist(-1, 0, 100, 10); @l = lhist(55, 0, 100, 10); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "avg stats min max",
        r#"BEGIN { @f = avg(10); @f = avg(5); @g = stats(4); @g = stats(8); @h = min(3); @h = min(1); @i = max(9); @i = max(2); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "two-part keys",
        r#"BEGIN { @j[1, "a"] = count(); @j[1, "a"] = count(); @j[2, "b"] = count(); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "arithmetic",
        r#"BEGIN { $x = 7; $y = 3; printf("%d %d %d %d %d %d %d\n", $x + $y, $x - $y, $x * $y, $x / $y, $x % $y, $x << 2, $x >> 1); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "comparisons and logic",
        r#"BEGIN { printf("%d %d %d %d %d\n", 1 < 2, 2 <= 1, 3 == 3, !0, 1 && 0 || 1); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "if else and ternary",
        r#"BEGIN { $a = 5; if ($a > 3) { printf("big\n"); } else { printf("small\n"); } printf("%d\n", $a > 10 ? 1 : 2); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "while and unroll",
        r#"BEGIN { $i = 0; $s = 0; while ($i < 10) { $s += $i; $i++; } unroll(3) { $s += 100; } printf("%d %d\n", $i, $s); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "string comparison",
        r#"BEGIN { $s = "abc"; if ($s == "abc") { printf("eq\n"); } if ($s != "abd") { printf("ne\n"); } exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "map reads",
        r#"BEGIN { @x = 5; @y = @x * 2; @z[@y] = 1; exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "delete print clear",
        r#"BEGIN { @a[1] = 1; @a[2] = 2; delete(@a[1]); @b[1] = count(); print(@b); clear(@b); exit(); }"#,
        Want::Bpftrace,
    ),
    case(
        "END after exit",
        r#"BEGIN { @x = 1; exit(); } END { printf("end %d\n", @x); }"#,
        Want::Bpftrace,
    ),
    case(
        "interval ticks",
        r#"interval:ms:100 { @n++; if (@n == 3) { exit(); } }"#,
        Want::Bpftrace,
    ),
    case(
        "dead code after exit",
        r#"BEGIN { if (1) { exit(); } else { exit(); } printf("never\n"); }"#,
        Want::Bpftrace,
    ),
    // bpftrace 0.17 divides unsigned (a known bug, fixed in later
    // releases): -10 / 3 prints 1431655762 there. oxbpf divides as C does.
    case(
        "signed division",
        r#"BEGIN { $a = -10; printf("%d %d\n", $a / 3, $a % 3); @s = sum(-5); exit(); }"#,
        Want::Text("Attaching 1 probe...\n-3 -1\n\n\n@s: -5\n"),
    ),
    // config blocks arrived in bpftrace 0.21.
    case(
        "config max_map_keys",
        "config = { max_map_keys = 2 } BEGIN { @a[1] = 1; @a[2] = 2; @a[3] = 3; exit(); }",
        Want::Text("Attaching 1 probe...\n\n\n@a[1]: 1\n@a[2]: 2\n"),
    ),
    // for loops over ranges arrived in bpftrace 0.22.
    case(
        "for over a range",
        r#"BEGIN { $s = 0; for ($i : 0..5) { if ($i == 3) { continue; } $s += $i; } printf("%d\n", $s); exit(); }"#,
        Want::Text("Attaching 1 probe...\n7\n\n\n"),
    ),
    Case {
        name: "positional parameters",
        script: r#"BEGIN { printf("%d %d\n", $1 + 1, $#); exit(); }"#,
        params: &["41", "x"],
        workload: false,
        want: Want::Bpftrace,
    },
    Case {
        name: "tracepoint counts a workload's syscalls",
        script: r#"tracepoint:syscalls:sys_enter_getppid /comm == "oxgp"/ { @calls = count(); @by[comm] = count(); }"#,
        params: &[],
        workload: true,
        want: Want::Bpftrace,
    },
    // Every system call of the workload, entry and exit, by tracepoint:
    // oxbpf reads them from the raw sys_enter/sys_exit tracepoints by
    // number, bpftrace from the perf tracepoints; the counts must agree.
    Case {
        name: "every system call entry, by tracepoint",
        script: r#"tracepoint:syscalls:sys_enter_* /comm == "oxgp"/ { @enter[probe] = count(); }"#,
        params: &[],
        workload: true,
        want: Want::Bpftrace,
    },
    // (bpftrace 0.17 refuses more than 512 programs: one direction a run.)
    Case {
        name: "every system call exit, by tracepoint",
        script: r#"tracepoint:syscalls:sys_exit_* /comm == "oxgp"/ { @exit[probe] = count(); }"#,
        params: &[],
        workload: true,
        want: Want::Bpftrace,
    },
    Case {
        name: "system call arguments and return values",
        script: r#"tracepoint:syscalls:sys_enter_newuname /comm == "oxgp"/ { @u = count(); } tracepoint:syscalls:sys_enter_getppid /comm == "oxgp"/ { @nr[args->__syscall_nr] = count(); } tracepoint:syscalls:sys_exit_newfstat /comm == "oxgp"/ { @ret[args->ret] = count(); }"#,
        params: &[],
        workload: true,
        want: Want::Bpftrace,
    },
    Case {
        name: "cpid filters on the -c command",
        script: r#"tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @calls = count(); }"#,
        params: &[],
        workload: true,
        want: Want::Bpftrace,
    },
    // bpftrace 0.17 prints this uprobe's func as the raw address
    // (0x5…149: it does not symbolize the PIE workload); the language
    // says func is the traced function's name.
    Case {
        name: "func names the probed function",
        script: r#"uprobe:WORKLOAD:work { @[func] = count(); }"#,
        params: &[],
        workload: true,
        want: Want::Text("Attaching 1 probe...\n\n\n@[work]: 3\n"),
    },
    Case {
        name: "tracepoint arguments",
        script: r#"tracepoint:syscalls:sys_enter_execve /str(args->filename) == "WORKLOAD"/ { printf("exec %s\n", str(args->filename)); }"#,
        params: &[],
        workload: true,
        want: Want::Bpftrace,
    },
    Case {
        name: "uprobe arguments and uretprobe values",
        script: r#"uprobe:WORKLOAD:work { @args[arg0] = count(); } uretprobe:WORKLOAD:work { @ret = sum(retval); @h = hist(retval); }"#,
        params: &[],
        workload: true,
        want: Want::Bpftrace,
    },
];

fn run(bin: &str, c: &Case, workload: &Path) -> String {
    let script = c
        .script
        .replace("WORKLOAD", &workload.display().to_string());
    let mut cmd = Command::new(bin);
    if bin.ends_with("oxbpf") {
        cmd.arg("trace");
    }
    cmd.arg("-e").arg(&script);
    if c.workload {
        cmd.arg("-c").arg(workload);
    }
    cmd.args(c.params);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return format!(
            "{stdout}\n[exit {:?}: {}]",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
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
    if !common::kernel_available() || oxbpf_sys::perf::tracefs_root().is_none() {
        common::skip("needs root, bpf(2) and a mounted tracefs");
        return;
    }
    let have_bpftrace = bpftrace_present();
    let before = oxbpf_sys::object_ids().unwrap();
    let workload = workload();
    let oxbpf = common::oxbpf_bin();
    let mut failures = Vec::new();
    let (mut compared, mut identical) = (0, 0);
    for c in CASES {
        let ours = run(oxbpf.to_str().unwrap(), c, &workload);
        let want = match &c.want {
            Want::Text(t) => t.to_string(),
            Want::Bpftrace if have_bpftrace => {
                compared += 1;
                run("bpftrace", c, &workload)
            }
            Want::Bpftrace => continue,
        };
        if normalize(&ours) == normalize(&want) {
            identical += usize::from(matches!(c.want, Want::Bpftrace));
        } else {
            failures.push(format!(
                "{}:\n--- expected\n{want}--- oxbpf\n{ours}",
                c.name
            ));
        }
    }
    println!(
        "{} scripts; {compared} compared with bpftrace, {identical} identical",
        CASES.len()
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
