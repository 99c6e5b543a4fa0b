//! Interpreter throughput: oxbpf vs the `rbpf` crate's interpreter on the
//! same bytecode (benches/programs/*.c compiled for -mcpu=v3), side by side.
//!
//! `cargo bench -p oxbpf-vm --bench interpreter` prints one row per program
//! with the time per run of each engine and the speed-up of oxbpf.

use std::hint::black_box;
use std::time::{Duration, Instant};

use oxbpf_vm::{Program, Vm};

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

/// Deterministic input memory (xorshift bytes).
fn input() -> Vec<u8> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Calls per batch so that one batch of `f` takes about 30 ms.
fn calibrate(f: &mut impl FnMut() -> u64) -> u32 {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < Duration::from_millis(10) {
        black_box(f());
        calls += 1;
    }
    (calls * 3).max(1)
}

fn batch(f: &mut impl FnMut() -> u64, calls: u32) -> Duration {
    let t = Instant::now();
    for _ in 0..calls {
        black_box(f());
    }
    t.elapsed() / calls
}

/// Best time per call of `a` and `b`, measured in alternating batches so
/// that noise from the machine hits both engines alike.
fn measure_pair(mut a: impl FnMut() -> u64, mut b: impl FnMut() -> u64) -> (Duration, Duration) {
    let (na, nb) = (calibrate(&mut a), calibrate(&mut b));
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..9 {
        best.0 = best.0.min(batch(&mut a, na));
        best.1 = best.1.min(batch(&mut b, nb));
    }
    best
}

fn main() {
    // `cargo test --benches` passes --bench-less flags; run quickly then.
    let quick = std::env::args().any(|a| a == "--test");
    let mem = input();
    println!(
        "{:<10} {:>14} {:>14} {:>8}",
        "program", "oxbpf interp", "rbpf interp", "ratio"
    );
    let mut worst = f64::INFINITY;
    for (name, code) in PROGRAMS {
        let vm = Vm::new(Program::from_bytes(code).expect("valid benchmark program"));
        let rbpf = rbpf::EbpfVmRaw::new(Some(code)).expect("rbpf accepts the program");

        // Both engines must agree before their speed means anything.
        let ours = vm.run_raw(&mut mem.clone()).expect("oxbpf runs").r0;
        let theirs = rbpf.execute_program(&mut mem.clone()).expect("rbpf runs");
        assert_eq!(ours, theirs, "{name}: oxbpf and rbpf disagree");
        if quick {
            println!("{name:<10} ok (r0 = {ours:#x})");
            continue;
        }

        let mut m1 = mem.clone();
        let mut m2 = mem.clone();
        let (t_ours, t_rbpf) = measure_pair(
            || vm.run_raw(&mut m1).map(|r| r.r0).unwrap_or(0),
            || {
                // rbpf borrows the memory for the VM's lifetime, so each call
                // gets a fresh VM over the same bytes (its set-up is cheap
                // next to the program run, and is included for fairness in
                // the other direction: oxbpf allocates its stack per run too).
                let vm = rbpf::EbpfVmRaw::new(Some(code)).expect("rbpf");
                vm.execute_program(&mut m2).unwrap_or(0)
            },
        );
        // Take out rbpf's per-call set-up (VM creation and its verifier
        // pass), so only program execution is compared.
        let (t_setup, _) = measure_pair(
            || rbpf::EbpfVmRaw::new(Some(code)).map(|_| 0).unwrap_or(1),
            || 0,
        );
        let t_rbpf = t_rbpf.saturating_sub(t_setup);
        let ratio = t_rbpf.as_secs_f64() / t_ours.as_secs_f64();
        worst = worst.min(ratio);
        println!(
            "{name:<10} {:>11.1} us {:>11.1} us {:>7.2}x",
            t_ours.as_secs_f64() * 1e6,
            t_rbpf.as_secs_f64() * 1e6,
            ratio
        );
    }
    if !quick {
        println!("lowest speed-up over rbpf: {worst:.2}x");
    }
}
