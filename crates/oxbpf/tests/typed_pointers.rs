//! Typed kernel pointers and CO-RE against the running kernel: the objects
//! in tests/btf (built from their C sources against this kernel's
//! vmlinux.h) name the verdict each program gets (`ok_` accepted, `bad_`
//! rejected); oxbpf's verifier, with the kernel's BTF, must give that
//! verdict, and so must the kernel (so the expectation is checked, not
//! assumed). CO-RE relocations are compared one by one with the ones the
//! kernel's verifier log reports.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn object(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/btf")
        .join(name)
}

fn kernel_btf() -> Option<std::sync::Arc<oxbpf_obj::core::KernelBtf>> {
    match oxbpf_sys::vmlinux::shared() {
        Ok(k) => Some(k),
        Err(e) => {
            common::skip(&format!("the kernel has no BTF: {e}"));
            None
        }
    }
}

/// (program, verdict, message) for every program of an object, from the
/// CLI's JSON lines.
fn verdicts(args: &[&str], obj: &Path) -> Vec<(String, String, String)> {
    let out = Command::new(common::oxbpf_bin())
        .arg("verify")
        .args(args)
        .arg("--json")
        .arg(obj)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("program"), s("verdict"), s("message"))
        })
        .collect()
}

/// Each program's message contains the text given for it.
fn says(ours: &[(String, String, String)], cases: &[(&str, &str)]) {
    for (p, text) in cases {
        let m = ours
            .iter()
            .find(|x| x.0 == *p)
            .map(|x| x.2.clone())
            .unwrap_or_default();
        assert!(m.contains(text), "{p}: expected {text:?} in {m:?}");
    }
}

fn expected(program: &str) -> &'static str {
    if program.starts_with("ok_") {
        "accept"
    } else {
        assert!(
            program.starts_with("bad_") || program == "relos_logged",
            "{program}: test programs are named ok_… or bad_…"
        );
        "reject"
    }
}

#[test]
fn typed_pointer_programs_get_the_kernels_verdicts() {
    if kernel_btf().is_none() {
        return;
    }
    for obj in [
        "typed.o",
        "core.o",
        "kfuncs.o",
        "iters.o",
        "dynptrs.o",
        "dynptrs_pkt.o",
        "alloc.o",
    ] {
        let path = object(obj);
        let ours = verdicts(&[], &path);
        assert!(ours.len() >= 3, "{obj}: {ours:?}");
        let mut wrong = Vec::new();
        for (p, v, m) in &ours {
            if v != expected(p) {
                wrong.push(format!("{obj} {p}: oxbpf says {v}: {m}"));
            }
        }
        if common::kernel_available() {
            for (p, v, m) in verdicts(&["--verifier", "kernel"], &path) {
                // A target the kernel lacks fails before verification.
                let v = if v == "error" && p.starts_with("bad_") {
                    "reject".to_string()
                } else {
                    v
                };
                if v != expected(&p) {
                    wrong.push(format!("{obj} {p}: the kernel says {v}: {m}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}

#[test]
fn kfunc_rejections_say_what_the_kernel_says() {
    if kernel_btf().is_none() {
        return;
    }
    let ours = verdicts(&[], &object("kfuncs.o"));
    says(
        &ours,
        &[
            (
                "bad_leak",
                "would lead to reference leak: the task_struct reference",
            ),
            ("bad_leak", "call bpf_task_release on every path"),
            (
                "bad_release_unacquired",
                "release kernel function bpf_task_release expects refcounted PTR_TO_BTF_ID",
            ),
            (
                "bad_unchecked_acquire",
                "'trusted_ptr_or_null_task_struct': it may be NULL",
            ),
            ("bad_use_after_release", "which insn 5 released"),
            ("bad_untrusted_arg", "R1 must be a rcu pointer"),
            (
                "bad_rcu_unlock_missing",
                "cannot be used inside bpf_rcu_read_lock-ed region",
            ),
            ("bad_rcu_unlock_unmatched", "unmatched rcu read unlock"),
            ("bad_rcu_nested", "nested rcu read lock"),
            (
                "bad_rcu_pointer_after_unlock",
                "it is untrusted_ptr_task_struct",
            ),
            ("bad_rdonly_cast_write", "only read is supported"),
            (
                "bad_kprobe_acquire",
                "calling kernel function bpf_task_acquire is not allowed in a kprobe program",
            ),
            ("bad_cpumask_leak", "bpf_cpumask reference"),
        ],
    );
}

#[test]
fn iterator_rejections_say_what_the_kernel_says() {
    if kernel_btf().is_none() {
        return;
    }
    let ours = verdicts(&["--stats"], &object("iters.o"));
    says(
        &ours,
        &[
            ("bad_leak", "reference leak: the iterator iter_num"),
            ("bad_leak", "bpf_iter_num_destroy"),
            (
                "bad_next_uninit",
                "expected an initialized iter_num as arg #0",
            ),
            (
                "bad_double_new",
                "expected uninitialized iter_num as arg #0",
            ),
            (
                "bad_destroy_twice",
                "expected an initialized iter_num as arg #0 of bpf_iter_num_destroy",
            ),
            ("bad_read_state", "invalid read from stack"),
            (
                "bad_overwrite",
                "expected an initialized iter_num as arg #0 of bpf_iter_num_destroy",
            ),
            ("bad_unchecked_index", "unbounded memory access"),
            ("bad_element_write", "write into read-only memory"),
            ("bad_element_after_destroy", "which insn 10 released"),
            ("bad_counter_after_loop", "outside [0, 512)"),
            (
                "bad_iter_in_map",
                "expected pointer to an iterator on stack",
            ),
            ("bad_precise_counter", "too complex"),
            ("bad_task_after_loop", "invalid mem access 'scalar'"),
        ],
    );
}

#[test]
fn dynptr_rejections_say_what_the_kernel_says() {
    if kernel_btf().is_none() {
        return;
    }
    let ours = verdicts(&[], &object("dynptrs.o"));
    says(
        &ours,
        &[
            ("bad_ringbuf_leak", "reference leak: the ring buffer dynptr"),
            (
                "bad_ringbuf_leak",
                "bpf_ringbuf_submit_dynptr or bpf_ringbuf_discard_dynptr",
            ),
            ("bad_failed_reserve_leak", "reference leak"),
            (
                "bad_uninit_read",
                "Expected an initialized dynptr as arg #2",
            ),
            ("bad_read_bytes", "invalid read from stack"),
            (
                "bad_overwrite_referenced",
                "cannot overwrite referenced dynptr",
            ),
            ("bad_data_after_submit", "invalid mem access 'scalar'"),
            ("bad_data_beyond", "invalid access to memory of size 8"),
            (
                "bad_from_stack",
                "Unsupported reg type fp0 for bpf_dynptr_from_mem data",
            ),
            ("bad_submit_local", "Expected a dynptr of type ringbuf"),
            (
                "bad_double_submit",
                "Expected an initialized dynptr as arg #0",
            ),
            ("bad_slice_write", "write into read-only memory"),
            ("bad_data_variable_len", "R3 is not a known constant"),
            (
                "bad_use_after_clone_submit",
                "Expected an initialized dynptr as arg #0",
            ),
        ],
    );
    let ours = verdicts(&[], &object("dynptrs_pkt.o"));
    says(
        &ours,
        &[
            (
                "bad_slice_after_change",
                "invalidated by insn 16, which may move",
            ),
            ("bad_slice_after_write", "invalidated by insn 21"),
            ("bad_not_ctx", "expected pointer to ctx"),
            ("bad_xdp_beyond_slice", "invalid access to memory of size 4"),
            ("bad_socket_write", "the dynptr is read-only"),
            ("bad_skb_in_xdp", "not allowed in a xdp program"),
        ],
    );
}

#[test]
fn allocated_object_rejections_say_what_the_kernel_says() {
    if kernel_btf().is_none() {
        return;
    }
    let ours = verdicts(&[], &object("alloc.o"));
    says(
        &ours,
        &[
            (
                "bad_leak",
                "reference leak: the allocated object (bpf_obj_new)",
            ),
            ("bad_leak", "bpf_obj_drop"),
            ("bad_unchecked", "it may be NULL"),
            ("bad_use_after_drop", "which insn 8 released"),
            ("bad_double_drop", "expected pointer to allocated object"),
            ("bad_beyond", "invalid access to memory of size 32"),
            (
                "bad_drop_inside",
                "must have zero offset when passed to release func",
            ),
            (
                "bad_drop_stack",
                "expected pointer to allocated object: R1 is fp0",
            ),
        ],
    );
}

/// Per-CPU `__ksym` variables: oxbpf gives the named verdict. The kernel
/// resolves their addresses in /proc/kallsyms, which lists data symbols
/// only with CONFIG_KALLSYMS_ALL; where it does not, the loader must say so
/// (and nothing loads), else the kernel must give the named verdict too.
#[test]
fn ksym_variables_get_the_kernels_verdicts() {
    if kernel_btf().is_none() {
        return;
    }
    let path = object("ksyms.o");
    let ours = verdicts(&[], &path);
    assert!(ours.len() >= 7, "{ours:?}");
    for (p, v, m) in &ours {
        assert_eq!(v, expected(p), "{p}: {m}");
    }
    let said = |p: &str| {
        ours.iter()
            .find(|x| x.0 == p)
            .map(|x| x.2.clone())
            .unwrap_or_default()
    };
    assert!(said("bad_per_cpu_unchecked").contains("it may be NULL"));
    assert!(said("bad_direct_read").contains("use bpf_this_cpu_ptr or bpf_per_cpu_ptr"));
    assert!(said("bad_int_write").contains("write into read-only memory"));
    assert!(said("bad_not_percpu").contains("expected=percpu_ptr_"));
    if !common::kernel_available() {
        return;
    }
    for (p, v, m) in verdicts(&["--verifier", "kernel"], &path) {
        if m.contains("not in /proc/kallsyms") {
            assert!(m.contains("CONFIG_KALLSYMS_ALL"), "{p}: {m}");
            continue;
        }
        assert_eq!(v, expected(&p), "{p}: the kernel says {m}");
    }
}

/// Loops over open-coded iterators converge instead of being unrolled: a
/// million-iteration bpf_for costs oxbpf's verifier as few instructions as
/// the kernel's.
#[test]
fn iterator_loops_converge() {
    if kernel_btf().is_none() {
        return;
    }
    let out = Command::new(common::oxbpf_bin())
        .args(["verify", "--json", "--stats", "-p", "ok_num_sum"])
        .arg(object("iters.o"))
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["verdict"], "accept", "{v}");
    let n = v["stats"]["insns_processed"].as_u64().unwrap();
    assert!(n < 1000, "a 1,000,000-iteration loop took {n} instructions");
}

#[test]
fn typed_pointer_rejections_say_what_the_kernel_says() {
    if kernel_btf().is_none() {
        return;
    }
    let ours = verdicts(&[], &object("typed.o"));
    let said = |p: &str| {
        ours.iter()
            .find(|x| x.0 == p)
            .map(|x| x.2.clone())
            .unwrap_or_default()
    };
    for (p, text) in [
        ("bad_write", "only read is supported"),
        (
            "bad_beyond_struct",
            "access beyond struct task_struct at off 20000 size 4",
        ),
        ("bad_negative", "invalid negative access: off=-8"),
        ("bad_variable_offset", "invalid variable offset"),
        (
            "bad_pointer_half",
            "cannot access ptr member real_parent with moff 1280 in struct task_struct",
        ),
        ("bad_untrusted_to_helper", "type=untrusted_ptr_mm_struct"),
        (
            "bad_wrong_struct",
            "is of type linux_binprm but bpf_task_storage_get expects struct task_struct",
        ),
        (
            "bad_nullable_unchecked",
            "'trusted_ptr_or_null_sock': it may be NULL",
        ),
        ("bad_cast_unchecked", "'ptr_or_null_tcp_sock'"),
        (
            "bad_no_such_arg",
            "func 'sched_switch' doesn't have 6-th argument",
        ),
        (
            "bad_narrow_pointer_arg",
            "func 'sched_switch' size 4 must be 8",
        ),
        ("bad_ctx_write", "read-only"),
        (
            "bad_no_such_target",
            "no typedef btf_trace_no_such_tracepoint_at_all",
        ),
    ] {
        let m = said(p);
        assert!(m.contains(text), "{p}: expected {text:?} in {m:?}");
    }
}

/// One relocation as the kernel's log reports it: instruction and new
/// value, or `None` for a poisoned instruction.
fn kernel_relos(log: &str) -> Vec<(usize, u32, Option<u64>)> {
    let mut out = Vec::new();
    for l in log.lines() {
        let Some(rest) = l.split("relo #").nth(1) else {
            continue;
        };
        let Some((n, rest)) = rest.split_once(": ") else {
            continue;
        };
        let Ok(n) = n.parse::<usize>() else { continue };
        let insn = |s: &str| {
            s.split("insn #")
                .nth(1)
                .and_then(|x| x.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|x| x.parse::<u32>().ok())
        };
        if rest.starts_with("patched insn") {
            let value = rest
                .rsplit("-> ")
                .next()
                .and_then(|v| v.trim().parse::<u64>().ok());
            out.push((n, insn(rest).unwrap(), value));
        } else if rest.starts_with("substituting insn") {
            out.push((n, insn(rest).unwrap(), None));
        }
    }
    out
}

#[test]
fn core_relocations_match_the_kernels() {
    let Some(k) = kernel_btf() else { return };
    if !common::kernel_available() {
        return;
    }
    let path = object("core.o");
    let obj = oxbpf_obj::load(&std::fs::read(&path).unwrap()).unwrap();
    let p = obj
        .programs
        .iter()
        .find(|p| p.name == "relos_logged")
        .unwrap();
    let mut insns = p.insns.clone();
    let ours = oxbpf_obj::core::relocate(&mut insns, &p.core_relos, obj.btf.as_ref().unwrap(), &k)
        .unwrap();
    let out = Command::new(common::oxbpf_bin())
        .args([
            "verify",
            "--verifier",
            "kernel",
            "--log",
            "-p",
            "relos_logged",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    let theirs = kernel_relos(&log);
    assert!(
        theirs.len() >= 15,
        "the kernel's log lists its relocations:\n{log}"
    );
    assert_eq!(theirs.len(), ours.len(), "{log}");
    for (n, insn, value) in theirs {
        let a = &ours[n];
        // The kernel counts instructions from the program's start, as the
        // records do.
        assert_eq!(a.insn, insn, "relo #{n}");
        assert_eq!(
            a.value, value,
            "relo #{n} <{}> {} at insn {insn}: oxbpf {:?}, kernel {value:?}",
            a.kind, a.what, a.value
        );
    }
    // A poisoned instruction becomes a call of the "bad relo" helper.
    assert!(ours.iter().any(|a| a.value.is_none()));
    assert!(
        insns
            .iter()
            .any(|i| i.code == 0x85 && i.imm == oxbpf_obj::core::POISON_HELPER)
    );
}

#[test]
fn a_missing_field_names_the_relocation_that_poisoned_it() {
    if kernel_btf().is_none() {
        return;
    }
    let out = Command::new(common::oxbpf_bin())
        .args(["verify", "--log", "-p", "bad_missing_field"])
        .arg(object("core.o"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "a CO-RE relocation the kernel's BTF cannot satisfy poisoned this instruction"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "CO-RE relo #0: insn 1 <byte_off> struct task_struct___mine 0:3: not in the kernel"
        ),
        "{text}"
    );
}
