//! Talks to the real kernel. These need root (or CAP_BPF) and bpf(2);
//! elsewhere they print why they skip.

use oxbpf_sys::*;

fn kernel() -> bool {
    match available() {
        Ok(()) => true,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the kernel tests: bpf() unavailable ({e})"
            );
            eprintln!("SKIPPED: bpf() unavailable here ({e}); these tests run in CI as root");
            false
        }
    }
}

fn insns(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn maps_follow_kernel_rules() {
    if !kernel() {
        return;
    }
    let before = object_ids().unwrap();
    {
        let m = Map::create(&MapSpec {
            name: "t".into(),
            map_type: 1,
            key_size: 4,
            value_size: 8,
            max_entries: 2,
            ..Default::default()
        })
        .unwrap();
        m.update(&1u32.to_le_bytes(), &7u64.to_le_bytes(), 0)
            .unwrap();
        assert_eq!(
            m.lookup(&1u32.to_le_bytes()).unwrap(),
            Some(7u64.to_le_bytes().to_vec())
        );
        assert_eq!(
            m.update(&1u32.to_le_bytes(), &7u64.to_le_bytes(), 1)
                .unwrap_err()
                .errno,
            libc_eexist()
        );
        assert_eq!(m.lookup(&2u32.to_le_bytes()).unwrap(), None);
        assert_eq!(m.entries().unwrap().len(), 1);
        m.delete(&1u32.to_le_bytes()).unwrap();
    }
    // The map was closed when it dropped (the kernel frees it after an
    // RCU grace period, so allow it a moment).
    let new = || -> Vec<u32> {
        object_ids()
            .unwrap()
            .1
            .into_iter()
            .filter(|i| !before.1.contains(i))
            .collect()
    };
    let mut left = new();
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = new();
    }
    assert!(left.is_empty(), "maps left behind: {left:?}");
}

fn libc_eexist() -> i32 {
    17
}

#[test]
fn load_and_test_run() {
    if !kernel() {
        return;
    }
    // r0 = 2 (XDP_PASS); exit
    let code = insns(&[0x0000_0002_0000_00b7, 0x0000_0000_0000_0095]);
    let v = load_program(&ProgSpec {
        name: "pass".into(),
        prog_type: 6,
        insns: &code,
        license: "GPL".into(),
        ..Default::default()
    });
    let prog = v.prog.unwrap();
    assert!(v.insns_processed.unwrap_or(0) >= 2, "{}", v.log);
    let r = prog.test_run(&[0u8; 64], None, 1).unwrap();
    assert_eq!(r.retval, 2);
    // A rejected program carries the verifier log.
    let bad = insns(&[0x0000_0000_0000_0095]); // exit with r0 uninitialised
    let v = load_program(&ProgSpec {
        name: "bad".into(),
        prog_type: 6,
        insns: &bad,
        license: "GPL".into(),
        ..Default::default()
    });
    let e = v.prog.unwrap_err();
    assert!(
        e.log.unwrap_or_default().contains("R0 !read_ok"),
        "{}",
        v.log
    );
}
