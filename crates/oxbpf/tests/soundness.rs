//! The soundness cases of tests/soundness/*.c: programs that hold
//! references (ring buffer records), take spin locks or keep packet
//! pointers across helpers that change the packet. Each program's line
//! before `SEC(...)` says what both verifiers must do:
//!
//! ```text
//! // expect: accept
//! // expect: reject <text of oxbpf's message> | kernel: <text of the kernel's log>
//! ```
//!
//! oxbpf's verdict is checked everywhere; the kernel's where bpf(2) is
//! available (CI runs as root, and there a missing kernel is a failure).

mod common;

use std::path::PathBuf;

struct Case {
    object: String,
    program: String,
    accept: bool,
    ours: String,
    kernel: String,
}

fn cases() -> Vec<Case> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/soundness");
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let Some(e) = l.trim().strip_prefix("// expect: ") else {
                continue;
            };
            let next = lines.get(i + 1).copied().unwrap_or("");
            let program = next
                .split(" int ")
                .nth(1)
                .and_then(|r| r.split('(').next())
                .unwrap_or_else(|| {
                    panic!("{}:{}: no SEC(...) int NAME( after it", f.display(), i + 2)
                })
                .trim()
                .to_string();
            let (accept, ours, kernel) = if e.trim() == "accept" {
                (true, String::new(), String::new())
            } else {
                let rest = e.strip_prefix("reject ").expect("accept or reject");
                let (o, k) = rest
                    .split_once(" | kernel: ")
                    .expect("reject TEXT | kernel: TEXT");
                (false, o.trim().to_string(), k.trim().to_string())
            };
            out.push(Case {
                object: f.with_extension("o").to_string_lossy().into_owned(),
                program,
                accept,
                ours,
                kernel,
            });
        }
    }
    out
}

fn load(path: &str) -> oxbpf_obj::Object {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e} (rebuild with make -C tests/soundness)"));
    oxbpf_obj::load(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn oxbpf_rejects_every_unsafe_case_for_the_right_reason() {
    let cases = cases();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    let mut wrong = Vec::new();
    for c in &cases {
        let obj = load(&c.object);
        let idx = obj
            .programs
            .iter()
            .position(|p| p.name == c.program)
            .unwrap_or_else(|| panic!("{}: no program {}", c.object, c.program));
        let verdict = oxbpf_verifier::verify_object_program(&obj, idx, &Default::default());
        match (&verdict, c.accept) {
            (Ok(_), true) => {}
            (Err(r), false) if r.message.contains(&c.ours) => {
                // The rejection names the place, with its source line.
                let text = r.explain(Some(&obj.programs[idx]));
                let source = text.lines().find(|l| l.starts_with("  source "));
                if !source.is_some_and(|l| l.contains("tests/soundness/") && !l.ends_with(": ")) {
                    wrong.push(format!("{}: no source line in\n{text}", c.program));
                }
            }
            (Ok(_), false) => wrong.push(format!("{}: accepted, wanted `{}`", c.program, c.ours)),
            (Err(r), _) => wrong.push(format!(
                "{}: rejected with `{}`, wanted {}",
                c.program,
                r.message,
                if c.accept {
                    "accept".to_string()
                } else {
                    format!("`{}`", c.ours)
                }
            )),
        }
    }
    let rejected = cases.iter().filter(|c| !c.accept).count();
    eprintln!(
        "{} soundness cases: {rejected} unsafe rejected, {} safe accepted",
        cases.len(),
        cases.len() - rejected
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_kernel_agrees_on_every_case() {
    if !common::kernel_available() {
        return;
    }
    let before = oxbpf_sys::object_ids().unwrap();
    let cases = cases();
    let mut wrong = Vec::new();
    let mut objects = std::collections::BTreeMap::new();
    for c in &cases {
        objects
            .entry(c.object.clone())
            .or_insert_with(Vec::new)
            .push(c);
    }
    for (path, cs) in objects {
        let obj = load(&path);
        let k = oxbpf_sys::object::load_object(&obj, None);
        for c in cs {
            let p = k
                .programs
                .iter()
                .find(|p| p.def.name == c.program)
                .unwrap_or_else(|| panic!("{path}: no program {}", c.program));
            match (&p.verdict.prog, c.accept) {
                (Ok(_), true) => {}
                (Err(_), false) if p.verdict.log.contains(&c.kernel) => {}
                (Ok(_), false) => wrong.push(format!(
                    "{}: the kernel accepts it, wanted `{}`",
                    c.program, c.kernel
                )),
                (Err(e), _) => wrong.push(format!(
                    "{}: the kernel says `{e}`: {}",
                    c.program,
                    p.verdict
                        .log
                        .lines()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" / ")
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Everything loaded is closed again (the kernel frees ids after an
    // RCU grace period, so wait a little).
    let mut leaked = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let after = oxbpf_sys::object_ids().unwrap();
        leaked = (
            after
                .0
                .into_iter()
                .filter(|i| !before.0.contains(i))
                .collect::<Vec<_>>(),
            after
                .1
                .into_iter()
                .filter(|i| !before.1.contains(i))
                .collect::<Vec<_>>(),
        );
        if leaked.0.is_empty() && leaked.1.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        leaked.0.is_empty() && leaked.1.is_empty(),
        "left in the kernel: programs {:?}, maps {:?}",
        leaked.0,
        leaked.1
    );
}

/// What slips past a verifier is caught at run time: the interpreter and
/// the checked JIT run the use-after-release programs unverified, and
/// every access through a submitted or discarded record faults without
/// touching the ring.
#[test]
fn released_records_fault_in_the_checked_engines() {
    use oxbpf_vm::loaded::LoadedObject;
    use oxbpf_vm::{Config, Engine, VmError};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/soundness/refs.o");
    let obj = load(&path.to_string_lossy());
    for engine in [Engine::Interpreter, Engine::Jit] {
        for (prog, records) in [
            ("use_after_submit", 1),
            ("copy_after_submit", 1),
            ("spilled_copy_after_submit", 1),
            ("read_after_discard", 0),
            ("double_discard", 0),
        ] {
            let mut o = LoadedObject::new(&obj, 1, None).unwrap();
            o.config = Config {
                engine,
                ..Config::default()
            };
            let idx = o.program(prog).unwrap();
            let run = o.run(idx, &[0u8; 64]).unwrap();
            let err = run.result.expect_err(prog);
            let text = err.to_string();
            match (&err, prog) {
                (VmError::HelperFailed { .. }, "double_discard") => {
                    assert!(text.contains("not a reserved ring buffer record"), "{text}")
                }
                (VmError::MemoryFault { .. }, _) => assert!(
                    text.contains("outside every reserved record"),
                    "{engine:?} {prog}: {text}"
                ),
                _ => panic!("{engine:?} {prog}: {text}"),
            }
            let rb = o.map_names.iter().position(|n| n == "rb").unwrap();
            let got = o.env.maps[rb].ringbuf_drain();
            assert_eq!(got.len(), records, "{engine:?} {prog}");
            // The submitted record holds what was written before the
            // submit, never the write after it.
            for r in got {
                assert!(r[..8] != 2u64.to_le_bytes() && r[..8] != 3u64.to_le_bytes());
                assert!(r[..8] != 4u64.to_le_bytes(), "{engine:?} {prog}: {r:?}");
            }
        }
    }
}

/// Random ring-buffer, packet and tail-call programs (oxbpf-testgen) go to
/// both verifiers: any program the kernel rejects for a memory-safety
/// reason must be rejected by oxbpf too. `SOUNDNESS_CASES=N` runs more.
#[test]
fn random_programs_the_kernel_finds_unsafe_are_rejected() {
    if !common::kernel_available() {
        return;
    }
    let n: usize = std::env::var("SOUNDNESS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut both_reject, mut both_accept, mut only_kernel_policy, mut only_ours) = (0, 0, 0, 0);
    let mut findings = Vec::new();
    for _ in 0..n {
        let len = 2 + rand() as usize % 40;
        let data: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
        let Some(g) = oxbpf_testgen::soundness_program(&data) else {
            continue;
        };
        let ours = oxbpf_verifier::verify_object_program(&g.object, 0, &Default::default());
        let k = oxbpf_sys::object::load_object(&g.object, None);
        let v = &k.programs[0].verdict;
        match (v.prog.is_ok(), ours.is_ok()) {
            (true, true) => both_accept += 1,
            (false, false) => both_reject += 1,
            (true, false) => only_ours += 1,
            (false, true) => {
                if oxbpf_testgen::is_memory_safety_rejection(&v.log) {
                    findings.push(format!(
                        "the kernel rejects ({}) but oxbpf accepts:\n{}",
                        v.log.lines().rev().take(2).collect::<Vec<_>>().join(" / "),
                        g.source
                    ));
                } else {
                    only_kernel_policy += 1;
                }
            }
        }
    }
    eprintln!(
        "{n} random programs: {both_reject} rejected by both, {both_accept} accepted by both, \
         {only_ours} rejected by oxbpf only, {only_kernel_policy} rejected by the kernel only for \
         a non-memory-safety reason, {} unsafe accepted by oxbpf",
        findings.len()
    );
    assert!(
        both_reject > n / 10 && both_accept > n / 20,
        "the generator lost its variety"
    );
    assert!(findings.is_empty(), "{}", findings.join("\n\n"));
}

/// A program of no known type in an object may read its context anywhere
/// in the page the verifier assumes; run unchecked on a short input it
/// must read zeros there, not memory past the input.
#[test]
fn untyped_context_is_as_large_as_the_verifier_assumes() {
    use oxbpf_vm::loaded::LoadedObject;
    use oxbpf_vm::{Config, Engine};
    let insns = oxbpf_asm::assemble_raw("r0 = *(u64 *)(r1 + 4000)\nexit\n").unwrap();
    let mut obj = load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/soundness/refs.o")
            .to_string_lossy(),
    );
    let mut p = obj.programs[0].clone();
    p.name = "untyped".into();
    p.section = "untyped".into();
    p.kind = oxbpf_obj::ProgramType::Unspec;
    p.insns = insns;
    p.line_info.clear();
    p.func_info.clear();
    obj.programs = vec![p];
    let proof = oxbpf_verifier::prove_object(&obj, None).unwrap();
    for engine in [Engine::Interpreter, Engine::Jit] {
        let mut o = LoadedObject::new(&obj, 1, None).unwrap();
        o.config = Config {
            engine,
            ..Config::default()
        };
        o.trust(&proof).unwrap();
        let r = o.run(0, &[0xffu8; 8]).unwrap().result.unwrap();
        assert_eq!(r.r0, 0, "{engine:?}");
    }
}

/// The JIT runs unchecked only with the verifier's proof for exactly the
/// program (and program types, and raw memory length) it runs.
#[test]
fn a_proof_fits_only_its_own_program() {
    use oxbpf_vm::{Program, Vm};
    let safe = oxbpf_asm::assemble_raw("r0 = *(u64 *)(r1 + 0)\nexit\n").unwrap();
    let other = oxbpf_asm::assemble_raw("r0 = *(u64 *)(r1 + 8)\nexit\n").unwrap();
    let opts = oxbpf_verifier::Options {
        raw_mem_len: Some(8),
        ..Default::default()
    };
    let proof = oxbpf_verifier::prove(&safe, &opts).unwrap();
    let mut vm = Vm::new(Program::from_slots(other.clone()).unwrap());
    assert!(vm.trust(&proof).is_err(), "a proof of another program");
    // Rejected: no proof at all for the out-of-bounds read.
    assert!(oxbpf_verifier::prove(&other, &opts).is_err());
    let mut vm = Vm::new(Program::from_slots(safe).unwrap());
    vm.config.engine = oxbpf_vm::Engine::Jit;
    vm.trust(&proof).unwrap();
    assert_eq!(vm.run_raw(&mut 7u64.to_le_bytes()).unwrap().r0, 7);
    // On memory of another length than the proof's, the checks stay on:
    // a fault, not a read past the buffer.
    assert!(vm.run_raw(&mut [1u8; 4]).is_err());

    // An object's proof is for the types its programs run as.
    let obj = load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/soundness/packet.o")
            .to_string_lossy(),
    );
    let accepted: Vec<_> = obj
        .programs
        .iter()
        .filter(|p| p.name.starts_with("ok_") && p.kind == oxbpf_obj::ProgramType::Xdp)
        .cloned()
        .collect();
    let mut only_ok = obj.clone();
    only_ok.programs = accepted;
    let proof = oxbpf_verifier::prove_object(&only_ok, None).unwrap();
    let mut as_xdp = oxbpf_vm::loaded::LoadedObject::new(&only_ok, 1, None).unwrap();
    as_xdp.trust(&proof).unwrap();
    let mut as_tc =
        oxbpf_vm::loaded::LoadedObject::new(&only_ok, 1, Some(oxbpf_obj::ProgramType::SchedCls))
            .unwrap();
    assert!(as_tc.trust(&proof).is_err(), "proven as XDP, run as tc");
}
