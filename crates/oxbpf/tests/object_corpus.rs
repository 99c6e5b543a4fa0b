//! The object loader over ../shared/ebpf-samples: every object outside
//! invalid/ loads; malformed objects are rejected with an error, never a panic.

mod common;

#[test]
fn every_valid_sample_loads() {
    let Some(objects) = common::valid_samples() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    let mut programs = 0;
    let mut maps = 0;
    for obj in &objects {
        let bytes = std::fs::read(obj).unwrap();
        let o = oxbpf_obj::load(&bytes).unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
        for p in &o.programs {
            oxbpf_isa::decode(&p.insns)
                .unwrap_or_else(|e| panic!("{} {}: {e}", obj.display(), p.name));
        }
        programs += o.programs.len();
        maps += o.maps.len();
    }
    eprintln!(
        "{} objects, {programs} programs, {maps} maps",
        objects.len()
    );
    assert!(programs > 200);
}

#[test]
fn invalid_samples_never_panic() {
    let Some(shared) = common::shared_dir() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    let dir = shared.join("ebpf-samples/invalid");
    let mut rejected = 0;
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let bytes = std::fs::read(e.path()).unwrap();
        total += 1;
        if oxbpf_obj::load(&bytes).is_err() {
            rejected += 1;
        }
    }
    eprintln!("{rejected} of {total} invalid objects rejected by the loader");
    // The one accepted file (timeout-*) is a well-formed object that times
    // out PREVAIL's verifier; rejecting it is the verifier's job.
    assert!(rejected >= total - 1, "only {rejected} of {total} rejected");
}

/// Every program of every sample object runs on a few inputs in the
/// runtime-checked interpreter: it may fail with an error (unverified
/// programs do fault), but nothing panics and nothing hangs.
#[test]
fn every_sample_program_runs_without_panicking() {
    let Some(objects) = common::valid_samples() else {
        return common::skip("../shared/ebpf-samples not found");
    };
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0u8; 64],
        oxbpf_pcap::build::eth_ipv4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 80, 2),
        (0..=255u8).collect(),
    ];
    let mut runs = 0;
    let mut ok = 0;
    for obj in &objects {
        let bytes = std::fs::read(obj).unwrap();
        let o = oxbpf_obj::load(&bytes).unwrap();
        let Ok(mut loaded) = oxbpf_vm::loaded::LoadedObject::new(&o, 2, None) else {
            continue;
        };
        loaded.config.instruction_budget = Some(1_000_000);
        for idx in 0..loaded.programs.len() {
            for input in &inputs {
                runs += 1;
                if let Ok(r) = loaded.run(idx, input) {
                    ok += r.result.is_ok() as usize;
                }
            }
        }
    }
    eprintln!("{runs} runs, {ok} completed without a fault");
    assert!(runs > 700);
}
