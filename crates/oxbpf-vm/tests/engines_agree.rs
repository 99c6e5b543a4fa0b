//! The collapsed-compare-tree fast path must give exactly what the plain
//! dispatch gives: same r0, same memory, same instruction count.

use oxbpf_vm::{Config, Program, Vm};

const PROGRAMS: &[(&str, &[u8])] = &[
    (
        "arith_div",
        include_bytes!("../../../benches/programs/arith_div.bin"),
    ),
    (
        "checksum",
        include_bytes!("../../../benches/programs/checksum.bin"),
    ),
    (
        "switch",
        include_bytes!("../../../benches/programs/switch.bin"),
    ),
    (
        "sieve",
        include_bytes!("../../../benches/programs/sieve.bin"),
    ),
    (
        "load64",
        include_bytes!("../../../benches/programs/load64.bin"),
    ),
];

fn input(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn fast_path_matches_exact_path() {
    for (name, code) in PROGRAMS {
        let fast = Vm::new(Program::from_bytes(code).unwrap());
        let mut exact = fast.clone();
        exact.config = Config {
            instruction_budget: Some(u64::MAX),
            ..Config::default()
        };
        for seed in 1..20 {
            let (mut m1, mut m2) = (input(seed), input(seed));
            let a = fast.run_raw(&mut m1).unwrap();
            let b = exact.run_raw(&mut m2).unwrap();
            assert_eq!((a.r0, a.executed), (b.r0, b.executed), "{name} seed {seed}");
            assert_eq!(m1, m2, "{name} seed {seed}: memory differs");
        }
    }
}

#[test]
fn budget_stops_at_the_same_count() {
    let code = PROGRAMS[2].1;
    let mut vm = Vm::new(Program::from_bytes(code).unwrap());
    let full = vm.run_raw(&mut input(3)).unwrap().executed;
    vm.config.instruction_budget = Some(full - 1);
    let err = vm.run_raw(&mut input(3)).unwrap_err();
    assert_eq!(err.kind(), "budget");
    vm.config.instruction_budget = Some(full);
    assert_eq!(vm.run_raw(&mut input(3)).unwrap().executed, full);
}
