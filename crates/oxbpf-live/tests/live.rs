//! Live tests: programs attached to the running kernel, triggered by
//! workloads of our own, checked on what arrived — and on what is left
//! behind (every program, map and link id the kernel had before a test is
//! all it has after). They need root, bpf(2) and tracefs; in CI (`CI` set)
//! a missing prerequisite fails instead of skipping.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{KERNEL, Veth, assert_nothing_left, kernel_objects, live, object};
use oxbpf_live::{LiveError, Session};

fn getppid_calls(n: usize) {
    for _ in 0..n {
        // SAFETY: getppid has no preconditions and cannot fail.
        unsafe {
            libc::getppid();
        }
    }
}

#[test]
fn tracepoint_counts_syscalls_per_process() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let mut s = Session::load(object("syscount.o"), &Default::default()).unwrap();
        s.attach("count_getppid").unwrap();
        getppid_calls(1000);
        let me = std::process::id();
        let counts = s.map("counts").unwrap();
        let got = counts
            .lookup(&me.to_le_bytes())
            .unwrap()
            .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()));
        assert_eq!(got, Some(1000), "getppid calls counted for pid {me}");
        // Detached: further calls are not counted.
        s.detach_all();
        getppid_calls(10);
        let after = s
            .map("counts")
            .unwrap()
            .lookup(&me.to_le_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(u64::from_le_bytes(after[..8].try_into().unwrap()), 1000);
    }
    assert_nothing_left(&before);
}

#[test]
fn raw_tracepoint_reports_exec_through_the_ring_buffer() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let mut s = Session::load(object("syscount.o"), &Default::default()).unwrap();
        assert_eq!(s.attach_all().unwrap(), 2);
        let mut rb = s.ring_buffer("events").unwrap();
        let child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        let mut child = child;
        child.wait().unwrap();
        let mut seen = Vec::new();
        for _ in 0..50 {
            rb.wait(Duration::from_millis(20));
            rb.consume(|r| {
                let pid = u32::from_le_bytes(r[..4].try_into().unwrap());
                let comm = &r[8..24];
                let end = comm.iter().position(|&b| b == 0).unwrap_or(16);
                seen.push((pid, String::from_utf8_lossy(&comm[..end]).into_owned()));
            });
            if seen.iter().any(|(p, _)| *p == pid) {
                break;
            }
        }
        assert!(
            seen.iter().any(|(p, c)| *p == pid && c == "true"),
            "no exec event for /bin/true (pid {pid}); saw {seen:?}"
        );
    }
    assert_nothing_left(&before);
}

#[test]
fn missing_hooks_are_named_and_leave_nothing_behind() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let mut obj = object("syscount.o");
        obj.programs[0].section = "tracepoint/syscalls/sys_enter_no_such_call".into();
        obj.programs[1].section = "raw_tp/no_such_tracepoint".into();
        let mut s = Session::load(obj, &Default::default()).unwrap();
        let e = s.attach("count_getppid").unwrap_err();
        assert!(matches!(e, LiveError::Tracepoint { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(
                "program `count_getppid`: tracepoint syscalls:sys_enter_no_such_call does not exist"
            ),
            "{e}"
        );
        let e = s.attach("on_exec").unwrap_err();
        assert_eq!(
            e.to_string(),
            "program `on_exec` (raw tracepoint no_such_tracepoint): the kernel has no tracepoint `no_such_tracepoint`"
        );
        assert!(s.attachments().is_empty());
    }
    assert_nothing_left(&before);
}

#[test]
fn function_probes_attach_where_the_kernel_can_and_say_why_not_elsewhere() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    let trampolines = oxbpf_sys::vmlinux::trampolines();
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let unlink = || {
        let p = std::env::temp_dir().join(format!("oxbpf-unlink-{}", std::process::id()));
        std::fs::write(&p, b"x").unwrap();
        std::fs::remove_file(&p).unwrap();
    };
    {
        // fentry/fexit alone: loaded and counting, or refused by name.
        let mut obj = object("fentry.o");
        obj.programs.retain(|p| p.section.starts_with('f'));
        match (
            Session::load(obj.clone(), &Default::default()),
            &trampolines,
        ) {
            (Ok(mut s), Ok(())) => {
                assert_eq!(s.attach_all().unwrap(), 2);
                unlink();
                assert!(bss_u64(&s, &obj, "entries") >= 1);
                assert!(bss_u64(&s, &obj, "returns") >= 1);
            }
            (Err(e), Err(why)) => {
                let e = e.to_string();
                assert!(
                    e.contains("unlink_entry") && e.contains("fentry do_unlinkat"),
                    "{e}"
                );
                assert!(e.contains(why.as_str()) && e.contains("trampolines"), "{e}");
            }
            (r, t) => panic!("load {:?} but trampoline probe {t:?}", r.err()),
        }
        // kprobes alone: attach, or the missing PMU named at attach.
        let mut obj = object("fentry.o");
        obj.programs.retain(|p| p.section.starts_with('k'));
        let mut s = Session::load(obj.clone(), &Default::default()).unwrap();
        // kprobe.multi: an fprobe link, where the kernel has fprobes.
        let fprobe = oxbpf_sys::kconfig::values()
            .get("CONFIG_FPROBE")
            .is_some_and(|v| v == "y");
        match s.attach("unlink_multi") {
            Ok(a) => {
                assert!(fprobe);
                assert_eq!(a.hook.to_string(), "kprobe.multi do_unlinkat*");
                unlink();
                assert!(bss_u64(&s, &obj, "entries") >= 1);
            }
            Err(e) => {
                assert!(!fprobe, "{e}");
                assert_eq!(
                    e.to_string(),
                    "program `unlink_multi` (kprobe.multi do_unlinkat*): this kernel has no fprobe (kprobe.multi and kprobe.session need CONFIG_FPROBE)"
                );
            }
        }
        match s.attach("unlink_kprobe") {
            Ok(_) => assert!(kprobes),
            Err(e) => {
                assert!(!kprobes, "{e}");
                assert_eq!(
                    e.to_string(),
                    "program `unlink_kprobe` (kprobe do_unlinkat): this kernel has no kprobes (no kprobe PMU in /sys/bus/event_source/devices)"
                );
            }
        }
    }
    // With --auto each pair keeps the one the kernel supports (and both
    // stay when it supports neither, so that attaching says why).
    let opts = oxbpf_live::Options {
        auto: true,
        ..Default::default()
    };
    if trampolines.is_err() && kprobes {
        let s = Session::load(object("fentry.o"), &opts).unwrap();
        assert_eq!(
            s.programs().collect::<Vec<_>>(),
            ["unlink_kprobe", "unlink_kretprobe", "unlink_multi"]
        );
    }
    if let Ok(s) = Session::load(object("fentry.o"), &opts) {
        assert_eq!(s.choices().len(), 2, "{:?}", s.choices());
    }
    assert_nothing_left(&before);
}

// Probe targets in this test binary (kept out of line and unmangled, so
// they are functions in its symbol table).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn oxbpf_live_target_add(a: u64, b: u64) -> u64 {
    std::hint::black_box(a.wrapping_mul(3).wrapping_add(b))
}

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn oxbpf_live_target_sub(a: u64, b: u64) -> u64 {
    std::hint::black_box(a.wrapping_mul(5).wrapping_sub(b))
}

/// (a, b, ret, ip, pid, kind) of every record in the `calls` ring buffer.
fn calls(rb: &mut oxbpf_sys::ringbuf::RingBuf) -> Vec<(u64, u64, u64, u64, u32, u32)> {
    let mut out = Vec::new();
    rb.consume(|r| {
        let u = |i: usize| u64::from_le_bytes(r[i * 8..i * 8 + 8].try_into().unwrap());
        let pid = u32::from_le_bytes(r[32..36].try_into().unwrap());
        let kind = u32::from_le_bytes(r[36..40].try_into().unwrap());
        out.push((u(0), u(1), u(2), u(3), pid, kind));
    });
    out
}

#[test]
fn uprobes_see_arguments_and_return_values() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let exe = std::env::current_exe().unwrap().display().to_string();
    let before = kernel_objects();
    {
        let mut s = Session::load(object("uprobes.o"), &Default::default()).unwrap();
        for (prog, ret) in [("on_enter", false), ("on_return", true)] {
            let hook = oxbpf_live::Hook::Uprobe {
                path: exe.clone(),
                symbol: "oxbpf_live_target_add".into(),
                offset: 0,
                ret,
            };
            s.attach_to(prog, hook).unwrap();
        }
        let mut rb = s.ring_buffer("calls").unwrap();
        assert_eq!(oxbpf_live_target_add(5, 7), 22);
        assert_eq!(oxbpf_live_target_add(11, 13), 46);
        let me = std::process::id();
        let got: Vec<_> = calls(&mut rb).into_iter().filter(|c| c.4 == me).collect();
        let entries: Vec<(u64, u64)> = got
            .iter()
            .filter(|c| c.5 == 0)
            .map(|c| (c.0, c.1))
            .collect();
        let returns: Vec<u64> = got.iter().filter(|c| c.5 == 1).map(|c| c.2).collect();
        assert_eq!(entries, [(5, 7), (11, 13)], "{got:?}");
        assert_eq!(returns, [22, 46], "{got:?}");
        // Both entry records carry the same instruction pointer: the
        // function's first instruction.
        assert_eq!(got[0].3, got.iter().filter(|c| c.5 == 0).nth(1).unwrap().3);
    }
    assert_nothing_left(&before);
}

#[test]
fn uprobe_multi_attaches_every_matching_function() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let exe = std::env::current_exe().unwrap().display().to_string();
    let before = kernel_objects();
    {
        let mut s = Session::load(object("uprobes.o"), &Default::default()).unwrap();
        let hook = oxbpf_live::Hook::UprobeMulti {
            path: exe.clone(),
            pattern: "oxbpf_live_target_*".into(),
            ret: false,
        };
        s.attach_to("on_multi", hook).unwrap();
        let mut rb = s.ring_buffer("calls").unwrap();
        oxbpf_live_target_add(1, 2);
        oxbpf_live_target_sub(3, 4);
        oxbpf_live_target_add(5, 6);
        let me = std::process::id();
        let got: Vec<_> = calls(&mut rb)
            .into_iter()
            .filter(|c| c.4 == me && c.5 == 2)
            .collect();
        let args: Vec<(u64, u64)> = got.iter().map(|c| (c.0, c.1)).collect();
        assert_eq!(args, [(1, 2), (3, 4), (5, 6)], "{got:?}");
        assert_ne!(got[0].3, got[1].3, "two functions, two addresses");
        assert_eq!(got[0].3, got[2].3);
        // A pattern that matches nothing is an error naming it.
        let none = oxbpf_live::Hook::UprobeMulti {
            path: exe.clone(),
            pattern: "no_such_function_*".into(),
            ret: false,
        };
        let e = s.attach_to("on_multi", none).unwrap_err();
        assert!(
            e.to_string().contains("matches `no_such_function_*`"),
            "{e}"
        );
        let missing = oxbpf_live::Hook::Uprobe {
            path: exe.clone(),
            symbol: "no_such_symbol".into(),
            offset: 0,
            ret: false,
        };
        let e = s.attach_to("on_enter", missing).unwrap_err();
        assert!(
            e.to_string().contains("no function `no_such_symbol`"),
            "{e}"
        );
    }
    assert_nothing_left(&before);
}

#[test]
fn tp_btf_with_core_reads_sees_exec() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let mut s = Session::load(object("exec_btf.o"), &Default::default()).unwrap();
        assert_eq!(s.attach_all().unwrap(), 1);
        assert_eq!(
            s.attachments()[0].hook.to_string(),
            "BTF tracepoint sched_process_exec"
        );
        let mut rb = s.ring_buffer("execs").unwrap();
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut seen = Vec::new();
        for _ in 0..50 {
            rb.wait(Duration::from_millis(20));
            rb.consume(|r| {
                let pid = u32::from_le_bytes(r[..4].try_into().unwrap());
                let old = u32::from_le_bytes(r[4..8].try_into().unwrap());
                let text = |b: &[u8]| {
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    String::from_utf8_lossy(&b[..end]).into_owned()
                };
                seen.push((pid, old, text(&r[8..24]), text(&r[24..88])));
            });
            if seen.iter().any(|e| e.0 == pid) {
                break;
            }
        }
        assert!(
            seen.iter().any(|(p, old, comm, file)| *p == pid
                && *old == pid
                && comm == "true"
                && file == "/bin/true"),
            "no exec of /bin/true (pid {pid}) in {seen:?}"
        );
    }
    assert_nothing_left(&before);
}

/// A global of `.bss` as the program left it.
fn bss_u64(s: &Session, obj: &oxbpf_obj::Object, name: &str) -> u64 {
    let off = obj.symbol_offsets[&(".bss".to_string(), name.to_string())] as usize;
    let v = s
        .map(".bss")
        .unwrap()
        .lookup(&0u32.to_le_bytes())
        .unwrap()
        .unwrap();
    let mut b = [0u8; 8];
    let n = (v.len() - off).min(8);
    b[..n].copy_from_slice(&v[off..off + n]);
    u64::from_le_bytes(b)
}

#[test]
fn ksym_externs_resolve_against_the_running_kernel() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let obj = object("ksyms.o");
        let kinds: Vec<_> = obj
            .ksyms
            .iter()
            .map(|k| (k.name.as_str(), k.kind, k.weak))
            .collect();
        use oxbpf_obj::KsymKind::*;
        for want in [
            ("runqueues", Typed, true),
            ("_stext", Typeless, false),
            ("oxbpf_no_such_variable", Typed, true),
            ("bpf_task_acquire", Func, true),
            ("oxbpf_no_such_kfunc", Func, true),
        ] {
            assert!(kinds.contains(&want), "{want:?} not in {kinds:?}");
        }
        let mut s = Session::load(obj.clone(), &Default::default()).unwrap();
        assert_eq!(s.attach_all().unwrap(), 1);
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut execs = 0;
        for _ in 0..100 {
            execs = bss_u64(&s, &obj, "execs") as u32;
            if execs > 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(execs > 0, "no exec seen");
        let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
        let addr = kallsyms
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.get(2) == Some(&"_stext")).then(|| u64::from_str_radix(f[0], 16).unwrap())
            })
            .unwrap();
        assert_eq!(bss_u64(&s, &obj, "text_addr"), addr);
        // The kernel resolves a typed variable through kallsyms: without
        // CONFIG_KALLSYMS_ALL (this machine) the weak `runqueues` is absent.
        let listed = kallsyms
            .lines()
            .any(|l| l.split_whitespace().nth(2) == Some("runqueues"));
        assert_eq!(bss_u64(&s, &obj, "has_runqueues") == 1, listed);
        assert_eq!(bss_u64(&s, &obj, "rq_cpu_matches") == 1, listed);
        assert_eq!(bss_u64(&s, &obj, "has_task_acquire") as u32, 1);
        assert_eq!(bss_u64(&s, &obj, "has_missing_kfunc") as u32, 0);
        assert_eq!(bss_u64(&s, &obj, "has_missing_variable") as u32, 0);
        assert_eq!(bss_u64(&s, &obj, "has_missing_symbol") as u32, 0);
        // Other execs may race ours; the last one seen is some real process.
        let acquired = bss_u64(&s, &obj, "acquired_pid") as u32;
        assert!(
            acquired > 1,
            "bpf_task_acquire gave pid {acquired} (ours was {pid})"
        );
    }
    assert_nothing_left(&before);
}

#[test]
fn a_strong_ksym_the_kernel_lacks_is_named() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        for (name, says) in [
            ("oxbpf_no_such_kfunc", "is not in the kernel's BTF"),
            ("oxbpf_no_such_variable", "is not in the kernel's BTF"),
            ("oxbpf_no_such_symbol", "is not in /proc/kallsyms"),
        ] {
            let mut obj = object("ksyms.o");
            obj.ksyms
                .iter_mut()
                .filter(|k| k.name == name)
                .for_each(|k| k.weak = false);
            let e = Session::load(obj, &Default::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("on_exec_ksyms")
                    && e.contains(name)
                    && e.contains(says)
                    && e.contains("__weak"),
                "{e}"
            );
        }
    }
    assert_nothing_left(&before);
}

#[test]
fn maps_pinned_by_name_are_reused_across_sessions() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let root = PathBuf::from(format!(
        "/sys/fs/bpf/oxbpf-pin-by-name-{}",
        std::process::id()
    ));
    let _ = std::fs::create_dir(&root);
    let pin = root.join("oxbpf_getppid_totals");
    let opts = oxbpf_live::Options {
        pin_root: Some(root.clone()),
        ..Default::default()
    };
    let me = std::process::id().to_le_bytes();
    let total = |s: &Session| {
        s.map("oxbpf_getppid_totals")
            .unwrap()
            .lookup(&me)
            .unwrap()
            .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()))
    };
    let before = kernel_objects();
    {
        let mut s = Session::load(object("pinned.o"), &opts).unwrap();
        assert!(!s.pinned_maps()[0].reused);
        s.attach_all().unwrap();
        getppid_calls(5);
        assert_eq!(total(&s), Some(5));
    }
    assert!(pin.exists(), "the pin went away with the session");
    {
        let mut s = Session::load(object("pinned.o"), &opts).unwrap();
        let p = &s.pinned_maps()[0];
        assert!(p.reused && p.path == pin.to_string_lossy(), "{p:?}");
        assert_eq!(total(&s), Some(5), "the pinned map was not reused");
        s.attach_all().unwrap();
        getppid_calls(3);
        assert_eq!(total(&s), Some(8));
    }
    // A definition that no longer matches the pinned map is refused by name.
    let mut obj = object("pinned.o");
    obj.maps[0].max_entries = 2048;
    let e = Session::load(obj, &opts).unwrap_err().to_string();
    assert!(
        e.contains("oxbpf_getppid_totals") && e.contains("max_entries 1024 there, 2048 here"),
        "{e}"
    );
    std::fs::remove_file(&pin).unwrap();
    // A load that fails takes back the pin it made.
    let mut obj = object("pinned.o");
    obj.programs[0].insns[0] = oxbpf_obj::RawInsn {
        code: 0x95,
        ..Default::default()
    };
    assert!(Session::load(obj, &opts).is_err());
    assert!(!pin.exists(), "a failed load left its pin behind");
    std::fs::remove_dir(&root).unwrap();
    assert_nothing_left(&before);
}

#[test]
fn auto_loads_the_best_alternate_the_kernel_supports() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    let hits = |s: &Session| -> Vec<u64> { (0..3).map(|i| counter_of(s, "hits", i)).collect() };
    let exec = || std::process::Command::new("/bin/true").status().unwrap();
    {
        // This kernel has BTF: tp_btf wins, the other two are not loaded.
        let opts = oxbpf_live::Options {
            auto: true,
            ..Default::default()
        };
        let mut s = Session::load(object("alternates.o"), &opts).unwrap();
        let c = s.choices();
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].event, "tracepoint sched_process_exec");
        assert_eq!(c[0].chosen.as_ref().unwrap().0, "exec_btf");
        let dropped: Vec<&str> = c[0].dropped.iter().map(|d| d.0.as_str()).collect();
        assert_eq!(dropped, ["exec_raw", "exec_tp"]);
        assert_eq!(s.programs().collect::<Vec<_>>(), ["exec_btf"]);
        let e = s.attach("exec_raw").unwrap_err().to_string();
        assert_eq!(
            e,
            "program `exec_raw` (raw_tp/sched_process_exec): not loaded, an alternate was chosen instead: `exec_btf` is preferred and supported"
        );
        assert_eq!(s.attach_all().unwrap(), 1);
        exec();
        let h = hits(&s);
        assert!(h[0] >= 1 && h[1] == 0 && h[2] == 0, "{h:?}");
    }
    {
        // Without --auto every alternate attaches and counts.
        let mut s = Session::load(object("alternates.o"), &Default::default()).unwrap();
        assert_eq!(s.attach_all().unwrap(), 3);
        exec();
        let h = hits(&s);
        assert!(h.iter().all(|&n| n >= 1), "{h:?}");
    }
    // The trampoline probe behind fentry-vs-kprobe choices leaves nothing.
    if let Err(why) = oxbpf_sys::vmlinux::trampolines() {
        assert!(
            why.contains("trampolines") || why.contains("fentry"),
            "{why}"
        );
    }
    assert_nothing_left(&before);
}

#[test]
fn sk_msg_and_sk_skb_see_the_traffic_of_sockets_in_their_sockmap() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let mut s = Session::load(object("sockmap.o"), &Default::default()).unwrap();
        assert_eq!(s.attach_all().unwrap(), 2);
        let hooks: Vec<String> = s.attachments().iter().map(|a| a.hook.to_string()).collect();
        assert_eq!(
            hooks,
            ["sockmap sk_msg_verdict", "sockmap sk_skb_stream_verdict"]
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let socks = s.map("socks").unwrap();
        for (k, fd) in [(0u32, client.as_raw_fd()), (1, server.as_raw_fd())] {
            socks
                .update(&k.to_le_bytes(), &(fd as u32).to_le_bytes(), 0)
                .unwrap();
        }
        client.write_all(b"hello, sockmap").unwrap();
        let mut got = [0u8; 14];
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello, sockmap");
        let c: Vec<u64> = (0..4).map(|i| counter(&s, i)).collect();
        assert_eq!(c, [1, 14, 1, 14], "messages, bytes, skbs, bytes");
    }
    // Naming a map that is not a sockmap says which ones there are.
    let opts = oxbpf_live::Options {
        sockmap: Some("counts".into()),
        ..Default::default()
    };
    let mut s = Session::load(object("sockmap.o"), &opts).unwrap();
    let e = s.attach("count_msg").unwrap_err().to_string();
    assert!(
        e.contains("`counts` is not a sockmap") && e.contains("it has: socks"),
        "{e}"
    );
    drop(s);
    assert_nothing_left(&before);
}

#[test]
fn interval_timers_tick_on_one_cpu_at_their_period() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let obj = object("interval.o");
        let mut s = Session::load(obj.clone(), &Default::default()).unwrap();
        let a = s
            .attach_interval("tick", Duration::from_millis(10))
            .unwrap();
        assert_eq!(a.hook.to_string(), "interval 10ms");
        std::thread::sleep(Duration::from_millis(300));
        s.detach_all();
        let ticks = bss_u64(&s, &obj, "ticks");
        let span = bss_u64(&s, &obj, "last_ns") - bss_u64(&s, &obj, "first_ns");
        // One timer, not one per CPU: ticks are `period` apart.
        assert!(ticks >= 5, "{ticks} ticks in 300 ms");
        let gap = span / (ticks - 1);
        assert!(
            (7_000_000..=20_000_000).contains(&gap),
            "{ticks} ticks, {gap} ns apart"
        );
        let e = s
            .attach_interval("tick", Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(e.contains("interval of zero"), "{e}");
    }
    assert_nothing_left(&before);
}

#[test]
fn rodata_filters_are_set_before_load() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        // No pid reaches u32::MAX: the filter drops every exec.
        let mut obj = object("exec_btf.o");
        obj.set_global("min_pid", &u32::MAX.to_string()).unwrap();
        let e = obj.set_global("no_such_global", "1").unwrap_err();
        assert!(e.to_string().contains("there are: min_pid"), "{e}");
        let mut s = Session::load(obj, &Default::default()).unwrap();
        s.attach_all().unwrap();
        let mut rb = s.ring_buffer("execs").unwrap();
        std::process::Command::new("/bin/true").status().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut n = 0;
        rb.consume(|_| n += 1);
        assert_eq!(n, 0, "the rodata filter let execs through");
    }
    assert_nothing_left(&before);
}

/// Spins for `ms` milliseconds (a profiler's target).
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn oxbpf_live_busy_loop(ms: u64) -> u64 {
    let end = std::time::Instant::now() + Duration::from_millis(ms);
    let mut x = 0u64;
    while std::time::Instant::now() < end {
        for i in 0..1000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    x
}

#[test]
fn perf_event_sampling_finds_a_busy_loop_in_its_stacks() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let me = std::process::id();
    let before = kernel_objects();
    {
        let mut obj = object("profile.o");
        obj.set_global("target_pid", &me.to_string()).unwrap();
        let opts = oxbpf_live::Options {
            sampling: oxbpf_live::Sampling {
                event: 0,
                rate: oxbpf_sys::perf::Sampling::Frequency(999),
            },
            ..Default::default()
        };
        let mut s = Session::load(obj, &opts).unwrap();
        s.attach_all().unwrap();
        assert_eq!(s.attachments()[0].count(), oxbpf_sys::online_cpus().len());
        oxbpf_live_busy_loop(400);
        s.detach_all();
        let symbols = oxbpf_live::symbols::Symbolizer::new();
        let stacks = s.map("stacks").unwrap();
        let (mut total, mut in_loop) = (0u64, 0u64);
        for (k, v) in s.map("samples").unwrap().entries().unwrap() {
            let n = u64::from_le_bytes(v[..8].try_into().unwrap());
            total += n;
            let user = i32::from_le_bytes(k[4..8].try_into().unwrap());
            if user < 0 {
                continue;
            }
            let Some(stack) = stacks.lookup(&(user as u32).to_le_bytes()).unwrap() else {
                continue;
            };
            let frames = symbols.user(me, &oxbpf_live::symbols::stack_addresses(&stack));
            if frames.iter().any(|f| {
                f.name
                    .as_deref()
                    .is_some_and(|n| n.contains("oxbpf_live_busy_loop"))
            }) {
                in_loop += n;
            }
        }
        assert!(total >= 20, "only {total} samples in 400 ms at 999 Hz");
        assert!(
            in_loop * 2 >= total,
            "{in_loop} of {total} samples name oxbpf_live_busy_loop in their user stack"
        );
    }
    assert_nothing_left(&before);
}

fn counter(s: &Session, i: u32) -> u64 {
    counter_of(s, "counts", i)
}

fn counter_of(s: &Session, map: &str, i: u32) -> u64 {
    let v = s
        .map(map)
        .unwrap()
        .lookup(&i.to_le_bytes())
        .unwrap()
        .unwrap();
    u64::from_le_bytes(v[..8].try_into().unwrap())
}

#[test]
fn xdp_and_tcx_count_and_drop_on_a_veth_pair() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    for (drop, subnet) in [(false, 1u8), (true, 2)] {
        let veth = Veth::new(subnet);
        let mut obj = object("net.o");
        obj.set_global("drop_9999", if drop { "1" } else { "0" })
            .unwrap();
        for (prog, idx, mode) in [
            ("xdp_count", 4u32, oxbpf_live::XdpMode::Generic),
            ("tc_count", 5, oxbpf_live::XdpMode::Auto),
        ] {
            let opts = oxbpf_live::Options {
                iface: Some(veth.here.clone()),
                xdp_mode: mode,
                ..Default::default()
            };
            let mut s = Session::load(obj.clone(), &opts).unwrap();
            s.attach(prog).unwrap();
            let received = veth.udp_to_here(5);
            assert_eq!(counter(&s, idx), 5, "{prog}: datagrams to 9999 seen");
            assert!(counter(&s, idx - 4) >= 5, "{prog}: packets seen");
            assert_eq!(
                received,
                if drop { 0 } else { 5 },
                "{prog} with drop_9999={drop}"
            );
        }
    }
    assert_nothing_left(&before);
}

#[test]
fn socket_filter_sees_the_interface_traffic() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let before = kernel_objects();
    {
        let veth = Veth::new(3);
        let opts = oxbpf_live::Options {
            iface: Some(veth.here.clone()),
            ..Default::default()
        };
        let mut s = Session::load(object("net.o"), &opts).unwrap();
        s.attach("socket_count").unwrap();
        assert_eq!(
            veth.udp_to_here(4),
            4,
            "a socket filter does not drop for the stack"
        );
        assert_eq!(counter(&s, 6), 4);
        // No interface, no such interface: named.
        let mut s2 = Session::load(object("net.o"), &Default::default()).unwrap();
        let e = s2.attach("xdp_count").unwrap_err();
        assert_eq!(
            e.to_string(),
            "program `xdp_count` (XDP): needs a network interface (--iface IF)"
        );
        let opts = oxbpf_live::Options {
            iface: Some("oxbpf-nope0".into()),
            ..Default::default()
        };
        let mut s3 = Session::load(object("net.o"), &opts).unwrap();
        let e = s3.attach("tc_count").unwrap_err();
        assert_eq!(
            e.to_string(),
            "program `tc_count`: interface `oxbpf-nope0` does not exist"
        );
    }
    assert_nothing_left(&before);
}

#[test]
fn cgroup_connect4_denies_connects_from_the_cgroup() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let Some(root) = oxbpf_sys::net::cgroup2_mount() else {
        if std::env::var_os("CI").is_some() {
            panic!("no cgroup2 mount in /proc/mounts");
        }
        eprintln!("skipped: no cgroup v2 mount");
        return;
    };
    let cg = root.join(format!("oxbpf-test-{}", std::process::id()));
    let _ = std::fs::remove_dir(&cg);
    std::fs::create_dir(&cg).unwrap();
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _cleanup = Remove(cg.clone());
    let before = kernel_objects();
    {
        let opts = oxbpf_live::Options {
            cgroup: Some(cg.clone()),
            ..Default::default()
        };
        let mut s = Session::load(object("net.o"), &opts).unwrap();
        s.attach("connect4_deny_9999").unwrap();
        // connect(2) to 127.0.0.1:9999 from a shell in the cgroup, and
        // from one outside it.
        let connect = |in_cgroup: bool| {
            let join = if in_cgroup {
                format!("echo $$ > {}/cgroup.procs && ", cg.display())
            } else {
                String::new()
            };
            std::process::Command::new("bash")
                .args([
                    "-c",
                    &format!("{join}exec bash -c 'echo x > /dev/udp/127.0.0.1/9999'"),
                ])
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        assert!(!connect(true), "connect from the cgroup must be refused");
        assert!(connect(false), "connect from outside the cgroup must work");
        assert_eq!(counter(&s, 3), 1);
        // A path outside cgroup v2 is named as such.
        let opts = oxbpf_live::Options {
            cgroup: Some("/tmp".into()),
            ..Default::default()
        };
        let mut s2 = Session::load(object("net.o"), &opts).unwrap();
        let e = s2.attach("connect4_deny_9999").unwrap_err();
        assert!(
            e.to_string()
                .contains("/tmp is not in a cgroup v2 hierarchy"),
            "{e}"
        );
    }
    assert_nothing_left(&before);
}

#[test]
fn perf_buffer_delivers_every_record_in_order() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let me = std::process::id();
    let before = kernel_objects();
    {
        let mut obj = object("perfbuf.o");
        obj.set_global("target_tgid", &me.to_string()).unwrap();
        let mut s = Session::load(obj, &Default::default()).unwrap();
        let mut pb = s.perf_buffer("samples", 64).unwrap();
        s.attach_all().unwrap();
        getppid_calls(200);
        let mut got: Vec<(u32, u32)> = Vec::new();
        for _ in 0..20 {
            pb.consume(|_, d| {
                got.push((
                    u32::from_le_bytes(d[0..4].try_into().unwrap()),
                    u32::from_le_bytes(d[4..8].try_into().unwrap()),
                ))
            });
            if got.len() >= 200 {
                break;
            }
            pb.wait(Duration::from_millis(20));
        }
        assert_eq!(pb.lost, 0);
        assert_eq!(got.len(), 200);
        assert!(got.iter().all(|(p, _)| *p == me));
        // One thread, so one CPU at a time: per CPU the sequence rises.
        let seqs: Vec<u32> = got.iter().map(|(_, s)| *s).collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(sorted, (0..200).collect::<Vec<_>>());
    }
    assert_nothing_left(&before);
}

#[test]
fn perf_buffer_counts_what_a_flood_loses() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let me = std::process::id();
    let before = kernel_objects();
    {
        let mut obj = object("perfbuf.o");
        obj.set_global("target_tgid", &me.to_string()).unwrap();
        obj.set_global("burst", "64").unwrap();
        let mut s = Session::load(obj, &Default::default()).unwrap();
        // One page per CPU: 64 records of 8 bytes (+ headers) per call
        // overflow it within a few calls.
        let mut pb = s.perf_buffer("samples", 1).unwrap();
        s.attach_all().unwrap();
        let calls = 100;
        getppid_calls(calls);
        let mut received = 0u64;
        pb.consume(|_, _| received += 1);
        // The kernel reports losses in a record written once there is room
        // again: one more call after the ring was drained delivers it.
        getppid_calls(1);
        s.detach_all();
        pb.consume(|_, _| received += 1);
        let calls = calls + 1;
        let written = {
            let v = s
                .map("written")
                .unwrap()
                .lookup(&0u32.to_le_bytes())
                .unwrap()
                .unwrap();
            u64::from_le_bytes(v[..8].try_into().unwrap())
        };
        let attempts = calls as u64 * 64;
        assert!(
            pb.lost > 0,
            "a one-page ring must overflow under {attempts} records"
        );
        assert_eq!(received, written, "every record the program wrote arrives");
        assert_eq!(
            received + pb.lost,
            attempts,
            "received {received} + lost {} != {attempts}",
            pb.lost
        );
    }
    assert_nothing_left(&before);
}

/// Builds tests/data/usdt_target (sys/sdt.h probes, one with a semaphore)
/// with the system's C compiler.
fn usdt_target() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"));
    let out = std::env::temp_dir().join(format!("oxbpf-usdt-target-{}", std::process::id()));
    let built = std::process::Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&out)
        .arg(dir.join("usdt_target.c"))
        .arg(dir.join("usdt_gated.c"))
        .output();
    match built {
        Ok(o) if o.status.success() => Some(out),
        other => {
            let why = format!(
                "cannot build the USDT target (cc and sys/sdt.h from systemtap-sdt-dev): {other:?}"
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipped: {why}");
            None
        }
    }
}

#[test]
fn usdt_probes_with_and_without_semaphores() {
    use std::io::Write as _;
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let Some(target) = usdt_target() else { return };
    let probes = oxbpf_live::usdt::probes(&target).unwrap();
    let plain = probes.iter().find(|p| p.name == "plain").unwrap();
    let gated = probes.iter().find(|p| p.name == "gated").unwrap();
    assert_eq!(plain.semaphore, 0);
    assert_ne!(gated.semaphore, 0);
    assert_eq!(plain.args.len(), 2);
    let before = kernel_objects();
    {
        let mut s = Session::load(object("usdt.o"), &Default::default()).unwrap();
        let path = target.display().to_string();
        for (prog, probe) in [("on_plain", "plain"), ("on_gated", "gated")] {
            let hook = oxbpf_live::Hook::Usdt {
                path: path.clone(),
                provider: "oxbpf".into(),
                name: probe.into(),
            };
            s.attach_to(prog, hook).unwrap();
        }
        let mut rb = s.ring_buffer("hits").unwrap();
        let mut child = std::process::Command::new(&target)
            .arg("5")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = child.wait_with_output().unwrap();
        let pid = out.status.success().then_some(()).map(|_| ());
        assert!(pid.is_some());
        // The kernel raised the semaphore while attached.
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "semaphore 1");
        let mut hits = Vec::new();
        rb.consume(|r| {
            let u32_at = |o: usize| u32::from_le_bytes(r[o..o + 4].try_into().unwrap());
            let i64_at = |o: usize| i64::from_le_bytes(r[o..o + 8].try_into().unwrap());
            hits.push((u32_at(4), i64_at(8), i64_at(16), u32_at(24), u32_at(28)));
        });
        let plain_hits: Vec<(i64, i64)> = hits
            .iter()
            .filter(|h| h.0 == 0)
            .map(|h| (h.1, h.2))
            .collect();
        let gated_hits: Vec<(i64, i64)> = hits
            .iter()
            .filter(|h| h.0 == 1)
            .map(|h| (h.1, h.2))
            .collect();
        assert_eq!(
            plain_hits,
            (0..5)
                .map(|i| (i, 1_000_000_000_000 + i))
                .collect::<Vec<_>>(),
            "{hits:?}"
        );
        assert_eq!(
            gated_hits,
            (0..5).map(|i| (-i, 1)).collect::<Vec<_>>(),
            "{hits:?}"
        );
        let version = oxbpf_sys::kconfig::kernel_version().unwrap();
        assert!(
            hits.iter().all(|h| h.3 == version && h.4 == 2),
            "kconfig and arg count: {hits:?}"
        );
        // A probe the file does not have is named with the ones it has.
        let missing = oxbpf_live::Hook::Usdt {
            path: path.clone(),
            provider: "oxbpf".into(),
            name: "nope".into(),
        };
        let e = s.attach_to("on_plain", missing).unwrap_err().to_string();
        assert!(
            e.contains("no USDT probe oxbpf:nope (the file has oxbpf:gated, oxbpf:plain)"),
            "{e}"
        );
    }
    let _ = std::fs::remove_file(&target);
    assert_nothing_left(&before);
}

#[test]
fn pinned_links_outlive_the_session_until_unpinned() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let bpffs = std::path::Path::new("/sys/fs/bpf");
    let mounted = std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("bpf"));
    if !mounted {
        assert!(std::env::var_os("CI").is_none(), "CI must mount bpffs");
        eprintln!("skipped: no bpffs mounted");
        return;
    }
    let dir = bpffs.join(format!("oxbpf-test-{}", std::process::id()));
    let before = kernel_objects();
    {
        let mut s = Session::load(object("syscount.o"), &Default::default()).unwrap();
        s.attach("count_getppid").unwrap();
        let pins = s.pin(&dir).unwrap();
        assert!(pins.iter().any(|p| p.ends_with("/counts")), "{pins:?}");
        assert!(
            pins.iter().any(|p| p.ends_with("/link_count_getppid")),
            "{pins:?}"
        );
    }
    // The session is gone; the pinned link keeps counting.
    getppid_calls(10);
    let counts = oxbpf_sys::Map {
        fd: oxbpf_sys::obj_get(dir.join("counts").to_str().unwrap()).unwrap(),
        spec: oxbpf_obj::MapSpec {
            key_size: 4,
            value_size: 8,
            max_entries: 1024,
            ..Default::default()
        },
    };
    let n = counts
        .lookup(&std::process::id().to_le_bytes())
        .unwrap()
        .map(|v| u64::from_le_bytes(v[..8].try_into().unwrap()));
    assert_eq!(n, Some(10), "the pinned program still runs");
    drop(counts);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_nothing_left(&before);
}
