//! `oxbpf verify` names every helper a program calls by its kernel name, as
//! the kernel's log does (`call bpf_map_lookup_elem#1`), for all 211
//! helpers of Linux 6.18: in the log of an accepted program and in the
//! rejection of a refused one.

mod common;

use std::process::Command;

#[test]
fn verify_names_all_211_helpers() {
    let dir = std::env::temp_dir().join(format!("oxbpf-helpers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ids: Vec<u32> = (1..=211).collect();
    for id in &ids {
        // r1..r5 = 0, then the call: most helpers reject these arguments,
        // some accept them; either way the helper is named.
        let mut src = String::new();
        for r in 1..=5 {
            src.push_str(&format!("r{r} = 0\n"));
        }
        src.push_str(&format!("call {id}\nr0 = 0\nexit\n"));
        std::fs::write(dir.join(format!("h{id:03}.s")), src).unwrap();
    }
    let out = Command::new(common::oxbpf_bin())
        .args(["verify", "--log", "--type", "xdp"])
        .args(ids.iter().map(|id| dir.join(format!("h{id:03}.s"))))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut missing = Vec::new();
    for id in &ids {
        let name = oxbpf_abi::helpers::helper_name(*id).expect("every 6.18 helper has a name");
        let file = dir.join(format!("h{id:03}.s"));
        let block: String = text
            .split(&format!("{} ", file.display()))
            .nth(1)
            .map(|rest| {
                rest.split(&dir.display().to_string())
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        if !block.contains(&format!("call {name}#{id}")) {
            missing.push(format!(
                "{id} ({name}): {}",
                block.lines().next().unwrap_or("no output")
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        missing.is_empty(),
        "{} of {} helpers not named:\n{}",
        missing.len(),
        ids.len(),
        missing.join("\n")
    );
    assert_eq!(
        oxbpf_abi::HelperId::from_u32(212),
        None,
        "Linux 6.18 has 211 helpers; a newer table needs this test's range widened"
    );
}
