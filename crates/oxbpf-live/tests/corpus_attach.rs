//! Every program of ../shared/ebpf-samples that the kernel accepts either
//! attaches to the hook its section names, or is reported with the reason
//! it cannot (a hook this kernel lacks, a tracepoint that does not exist,
//! a section without a target) — never with a bare errno. Run with
//! `--nocapture` for the table.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{KERNEL, Veth, assert_nothing_left, kernel_objects, live};
use oxbpf_live::{Hook, LiveError, Options, Session, hook_for};

fn samples() -> Option<Vec<PathBuf>> {
    let shared = common::root().join("../shared/ebpf-samples");
    if !shared.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs ../shared/ebpf-samples"
        );
        eprintln!("skipped: no ../shared/ebpf-samples");
        return None;
    }
    Some(
        oxbpf_obj::object_files(&[shared])
            .into_iter()
            .filter(|p| !p.components().any(|c| c.as_os_str() == "invalid"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("bad"))
            })
            .collect(),
    )
}

#[test]
fn accepted_corpus_programs_attach_or_say_why_not() {
    let _k = KERNEL.lock().unwrap_or_else(|e| e.into_inner());
    if !live() {
        return;
    }
    let Some(files) = samples() else { return };
    let veth = Veth::new(9);
    let cg = oxbpf_sys::net::cgroup2_mount()
        .expect("a cgroup2 mount")
        .join(format!("oxbpf-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir(&cg);
    std::fs::create_dir(&cg).unwrap();
    // Maps pinned by name (cilium's) go to a root of this test's own,
    // emptied after each object.
    let pin_root =
        std::path::PathBuf::from(format!("/sys/fs/bpf/oxbpf-corpus-{}", std::process::id()));
    let _ = std::fs::create_dir(&pin_root);
    let mut pinned_by_name = 0;
    let before = kernel_objects();
    // outcome -> (count, an example)
    let mut table: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut bare = Vec::new();
    let (mut accepted, mut attached) = (0usize, 0usize);
    for f in &files {
        let Ok(obj) = std::fs::read(f)
            .map_err(|e| e.to_string())
            .and_then(|b| oxbpf_obj::load(&b).map_err(|e| e.to_string()))
        else {
            continue;
        };
        let opts = Options {
            iface: Some(veth.here.clone()),
            cgroup: Some(cg.clone()),
            partial: true,
            pin_root: Some(pin_root.clone()),
            ..Default::default()
        };
        let Ok(mut s) = Session::load(obj.clone(), &opts) else {
            continue;
        };
        pinned_by_name += s.pinned_maps().len();
        let names: Vec<String> = s.programs().map(String::from).collect();
        for (name, def) in names.iter().zip(&obj.programs) {
            if s.program_fd(name).is_none() {
                continue; // the kernel rejects it: not in the table
            }
            accepted += 1;
            let example = format!("{} {name} [{}]", f.display(), def.section);
            let outcome = match hook_for(&def.section) {
                Ok(Hook::Manual { why }) => format!("not attached automatically: {why}"),
                Err(e) => format!("malformed section: {}", e.message),
                Ok(_) => match s.attach(name) {
                    Ok(a) => {
                        attached += 1;
                        let kind = a.hook.to_string();
                        let kind = kind.split_whitespace().next().unwrap_or("").to_string();
                        format!("attached ({kind})")
                    }
                    Err(LiveError::Unsupported { reason, .. }) => {
                        format!("cannot attach: {reason}")
                    }
                    Err(LiveError::Tracepoint { error, .. }) => {
                        let msg = error.to_string();
                        let kind = if msg.contains("does not exist") {
                            "tracepoint does not exist on this kernel"
                        } else {
                            "tracepoint unreadable"
                        };
                        format!("cannot attach: {kind}")
                    }
                    Err(LiveError::Uprobe { error, .. }) => format!("cannot attach: {error}"),
                    Err(e @ LiveError::Attach { .. }) => {
                        bare.push(format!("{example}: {e}"));
                        "attach failed (errno)".into()
                    }
                    Err(e) => {
                        bare.push(format!("{example}: {e}"));
                        format!("error: {e}")
                    }
                },
            };
            let e = table.entry(outcome).or_insert((0, example));
            e.0 += 1;
        }
        s.detach_all();
        drop(s);
        for e in std::fs::read_dir(&pin_root).unwrap().flatten() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    std::fs::remove_dir(&pin_root).unwrap();
    println!("{pinned_by_name} maps pinned by name (LIBBPF_PIN_BY_NAME) and unpinned again");
    println!("{accepted} programs the kernel accepts, {attached} attached");
    for (outcome, (n, example)) in &table {
        println!("{n:>5}  {outcome}   e.g. {example}");
    }
    drop(veth);
    let _ = std::fs::remove_dir(&cg);
    assert_nothing_left(&before);
    assert!(accepted > 0);
    assert!(
        bare.is_empty(),
        "{} programs failed to attach without a reason a person can act on:\n{}",
        bare.len(),
        bare.join("\n")
    );
}
