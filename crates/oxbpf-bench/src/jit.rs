//! `oxbpf bench` (`oxbpf-bench jit`): execution speed of oxbpf's JIT and interpreter next to
//! the `rbpf` crate's JIT and native code, on the benchmark programs of
//! benches/programs (C compiled with clang-19 -O2 -mcpu=v3 for BPF; the
//! native column runs the same algorithms as Rust functions compiled by
//! rustc -O, the same LLVM back end clang uses), plus JIT compile speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use oxbpf_vm::{Checks, Config, Engine, Program, Vm};

struct Bench {
    name: &'static str,
    code: &'static [u8],
    native: fn(&mut [u8]) -> u64,
    input: fn() -> Vec<u8>,
}

const BENCHES: &[Bench] = &[
    Bench {
        name: "arith_div",
        code: include_bytes!("../../../benches/programs/arith_div.bin"),
        native: native::arith_div,
        input: random_input,
    },
    Bench {
        name: "checksum",
        code: include_bytes!("../../../benches/programs/checksum.bin"),
        native: native::checksum,
        input: random_input,
    },
    Bench {
        name: "switch",
        code: include_bytes!("../../../benches/programs/switch.bin"),
        native: native::switch,
        input: random_input,
    },
    Bench {
        name: "sieve",
        code: include_bytes!("../../../benches/programs/sieve.bin"),
        native: native::sieve,
        input: random_input,
    },
    Bench {
        name: "load64",
        code: include_bytes!("../../../benches/programs/load64.bin"),
        native: native::load64,
        input: random_input,
    },
    Bench {
        name: "primes",
        code: include_bytes!("../../../benches/programs/primes.bin"),
        native: native::primes,
        input: random_input,
    },
    Bench {
        name: "crc32",
        code: include_bytes!("../../../benches/programs/crc32.bin"),
        native: native::crc32,
        input: random_input,
    },
    Bench {
        name: "memsum",
        code: include_bytes!("../../../benches/programs/memsum.bin"),
        native: native::memsum,
        input: random_input,
    },
    Bench {
        name: "sieve_plain",
        code: include_bytes!("../../../benches/programs/sieve_plain.bin"),
        native: native::sieve_plain,
        input: random_input,
    },
    Bench {
        name: "xdp_parse",
        code: include_bytes!("../../../benches/programs/xdp_parse.bin"),
        native: native::xdp_parse,
        input: packet_input,
    },
];

/// 4096 deterministic random bytes (xorshift).
fn random_input() -> Vec<u8> {
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

/// 64 packets of 64 bytes with real headers: IPv4 TCP/UDP/ICMP, IPv6,
/// VLAN-tagged IPv4, ARP; the rest of each packet random.
fn packet_input() -> Vec<u8> {
    let mut mem = random_input();
    for (i, p) in mem.chunks_exact_mut(64).enumerate() {
        let mut l3 = 14;
        let kind = i % 6;
        let ethertype: u16 = match kind {
            3 => 0x86dd,
            4 => 0x8100,
            5 => 0x0806,
            _ => 0x0800,
        };
        p[12..14].copy_from_slice(&ethertype.to_be_bytes());
        if kind == 4 {
            p[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
            l3 = 18;
        }
        match kind {
            3 => p[l3 + 6] = if i % 2 == 0 { 6 } else { 17 },
            5 => {}
            _ => {
                p[l3] = 0x45;
                p[l3 + 9] = [6, 17, 1, 0, 6][kind];
            }
        }
    }
    mem
}

/// The benchmark algorithms as native code. Each mirrors its C source in
/// benches/programs line by line; results are checked against the
/// interpreter before anything is timed.
mod native {
    use std::hint::black_box;

    #[inline(never)]
    pub fn arith_div(_: &mut [u8]) -> u64 {
        let mut acc: u64 = black_box(0x12345);
        for i in 1u64..4000 {
            let d = (i % 13) + 1;
            acc = acc.wrapping_add((acc ^ i.wrapping_mul(2654435761)) / d);
            acc = acc.wrapping_mul(31).wrapping_add(i % 7);
        }
        acc
    }

    #[inline(never)]
    pub fn primes(_: &mut [u8]) -> u64 {
        let mut count = 0u64;
        for n in 2u64..black_box(20000) {
            let mut prime = 1;
            let mut d = 2u64;
            while d * d <= n {
                if n % d == 0 {
                    prime = 0;
                    break;
                }
                d += 1;
            }
            count += prime;
        }
        count
    }

    #[inline(never)]
    pub fn crc32(mem: &mut [u8]) -> u64 {
        let mut crc: u32 = 0xffff_ffff;
        for &b in &mem[..4096] {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
            }
        }
        (!crc) as u64
    }

    #[inline(never)]
    pub fn memsum(mem: &mut [u8]) -> u64 {
        let mut sum = 0u64;
        for r in 0..16u64 {
            for w in mem[..4096].chunks_exact(8) {
                let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
                sum = sum.wrapping_add(v ^ r);
            }
        }
        sum
    }

    #[inline(never)]
    pub fn sieve_plain(mem: &mut [u8]) -> u64 {
        let flags = &mut mem[..4096];
        for (i, f) in flags.iter_mut().enumerate() {
            *f = (i > 1) as u8;
        }
        for i in 2..64usize {
            if flags[i] == 0 {
                continue;
            }
            let mut j = i * i;
            while j < 4096 {
                flags[j] = 0;
                j += i;
            }
        }
        flags.iter().map(|&f| f as u64).sum()
    }

    #[inline(never)]
    pub fn checksum(mem: &mut [u8]) -> u64 {
        let p = &mem[..1024];
        let mut total = 0u64;
        for round in 0..8u64 {
            let mut sum = round;
            for w in p.chunks_exact(2) {
                sum += u16::from_le_bytes([w[0], w[1]]) as u64;
            }
            while sum >> 16 != 0 {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            total += !sum & 0xffff;
        }
        total
    }

    #[inline(never)]
    pub fn switch(mem: &mut [u8]) -> u64 {
        let p = &mem[..1024];
        let (mut state, mut acc) = (1u64, 0u64);
        for i in 0..4096i32 {
            let sel = (p[(i & 1023) as usize] as u64).wrapping_add(state) & 15;
            let iu = i as i64 as u64;
            match sel {
                0 => {
                    acc = acc.wrapping_add(state);
                    state = 3;
                }
                1 => {
                    acc ^= state << 1;
                    state = 7;
                }
                2 => {
                    acc = acc.wrapping_sub(iu);
                    state = state.wrapping_add(5);
                }
                3 => {
                    acc = acc.wrapping_add(acc >> 3);
                    state = (i & 31) as u64;
                }
                4 => {
                    acc = acc.wrapping_mul(3);
                    state ^= 9;
                }
                5 => {
                    acc |= iu;
                    state = acc & 63;
                }
                6 => {
                    acc = acc.wrapping_add(17);
                    state = state.wrapping_sub(2);
                }
                7 => {
                    acc ^= 0x5a5a;
                    state = 11;
                }
                8 => {
                    acc = acc.wrapping_add(state.wrapping_mul(5));
                    state = 2;
                }
                9 => {
                    acc = acc.wrapping_sub(state);
                    state = state.wrapping_add(13);
                }
                10 => {
                    acc = acc.rotate_left(1);
                    state = 4;
                }
                11 => {
                    acc = acc.wrapping_add((i * 3) as i64 as u64);
                    state ^= 1;
                }
                12 => {
                    acc &= !iu;
                    state = 8;
                }
                13 => {
                    acc = acc.wrapping_add(99);
                    state = state.wrapping_add(1);
                }
                14 => {
                    acc ^= acc >> 7;
                    state = 6;
                }
                _ => {
                    acc = acc.wrapping_add(1);
                    state = 0;
                }
            }
        }
        acc.wrapping_add(state)
    }

    #[inline(never)]
    pub fn sieve(mem: &mut [u8]) -> u64 {
        let flags = &mut mem[..4096];
        let n = 4096usize;
        // The C source's fill loop has a volatile counter (so clang does not
        // call memset in BPF); keep the same per-iteration memory traffic.
        let mut i = 0usize;
        while opaque(&i) < n {
            flags[i] = 1;
            i += 1;
        }
        flags[0] = 0;
        flags[1] = 0;
        let mut i = 2;
        while i * i < n {
            if flags[i] != 0 {
                let mut j = i * i;
                while j < n {
                    flags[j] = 0;
                    j += i;
                }
            }
            i += 1;
        }
        flags.iter().map(|&f| f as u64).sum()
    }

    /// A load the compiler cannot remove (like a C `volatile` read).
    #[inline(always)]
    fn opaque(x: &usize) -> usize {
        black_box(*x)
    }

    #[inline(never)]
    pub fn load64(mem: &mut [u8]) -> u64 {
        let mut h: u64 = 0xcbf29ce484222325;
        for round in 0..4u64 {
            for w in mem[..4096].chunks_exact(8) {
                h ^= u64::from_le_bytes(w.try_into().unwrap()).wrapping_add(round);
                h = h.wrapping_mul(0x100000001b3);
                h ^= h >> 29;
            }
        }
        h
    }

    #[inline(never)]
    pub fn xdp_parse(mem: &mut [u8]) -> u64 {
        let be16 = |p: &[u8], at: usize| (p[at] as u16) << 8 | p[at + 1] as u16;
        let mut acc = 0u64;
        for round in 0..8usize {
            for i in 0..64usize {
                let data = &mem[i * 64..i * 64 + 64];
                let end = 30 + (i & 31) - round;
                let mut p = 14;
                if p > end {
                    acc = acc.wrapping_add(1);
                    continue;
                }
                let mut proto = be16(data, 12);
                if proto == 0x8100 {
                    if p + 4 > end {
                        acc = acc.wrapping_add(2);
                        continue;
                    }
                    proto = be16(data, p + 2);
                    p += 4;
                }
                let l4;
                if proto == 0x0800 {
                    if p + 20 > end {
                        acc = acc.wrapping_add(3);
                        continue;
                    }
                    let ihl = (data[p] & 15) as usize * 4;
                    if ihl < 20 {
                        acc = acc.wrapping_add(4);
                        continue;
                    }
                    l4 = data[p + 9];
                    acc = acc.wrapping_add(be16(data, p + 2) as u64);
                    p += ihl;
                } else if proto == 0x86dd {
                    if p + 40 > end {
                        acc = acc.wrapping_add(5);
                        continue;
                    }
                    l4 = data[p + 6];
                    p += 40;
                } else {
                    acc = acc.wrapping_add(6);
                    continue;
                }
                if l4 == 6 || l4 == 17 {
                    if p + 4 > end {
                        acc = acc.wrapping_add(7);
                        continue;
                    }
                    let (sport, dport) = (be16(data, p), be16(data, p + 2));
                    acc = acc
                        .wrapping_mul(31)
                        .wrapping_add((sport ^ dport) as u64)
                        .wrapping_add(l4 as u64);
                } else {
                    acc = acc.wrapping_add(8);
                }
            }
        }
        acc
    }
}

/// Calls per batch so that one batch takes about `ms` milliseconds.
fn calibrate(f: &mut dyn FnMut() -> u64, ms: u64) -> u32 {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < Duration::from_millis(ms.max(1) / 3 + 1) {
        black_box(f());
        calls += 1;
    }
    (calls * 3).max(1)
}

/// Best time per call of each function, measured in alternating batches so
/// that noise on the machine hits every engine alike.
fn measure(fs: &mut [&mut dyn FnMut() -> u64], rounds: usize, ms: u64) -> Vec<Duration> {
    let calls: Vec<u32> = fs.iter_mut().map(|f| calibrate(*f, ms)).collect();
    let mut best = vec![Duration::MAX; fs.len()];
    for _ in 0..rounds {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..calls[i] {
                black_box(f());
            }
            best[i] = best[i].min(t.elapsed() / calls[i]);
        }
    }
    best
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

/// Runs the table. `quick` checks that every engine agrees and times each
/// once (for `cargo test`).
pub fn run(quick: bool) -> Result<()> {
    // Compile speed is measured first, in a fresh process as `oxbpf run`
    // compiles (after the timing loops below, a heap and an address space
    // grown by them made mapping changes slower), and printed last.
    let compile_report = compile_speed(quick)?;
    let (rounds, ms) = if quick { (1, 1) } else { (9, 30) };
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "program",
        "insns",
        "oxbpf jit",
        "jit chk",
        "interp",
        "rbpf jit",
        "native",
        "vs rbpf",
        "vs native",
        "vs interp"
    );
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "",
        "",
        "(us/run)",
        "(us/run)",
        "(us/run)",
        "(us/run)",
        "(us/run)",
        "faster",
        "slower",
        "faster"
    );
    let mut unproven = Vec::new();
    let mut widened = Vec::new();
    let mut worst_rbpf = f64::INFINITY;
    let mut worst_native: f64 = 0.0;
    for b in BENCHES {
        let program = Program::from_bytes(b.code)?;
        let insns = program.len();
        // Loops walked as the kernel does where that fits its limit, else
        // proven by widening (memory safety only: those runs get a budget).
        let opts = oxbpf_verifier::Options {
            raw_mem_len: Some(4096),
            widen_loops: true,
            ..Default::default()
        };
        let proof = oxbpf_verifier::prove(program.slots(), &opts).ok();
        let verified = proof.is_some();
        let interp = Vm::new(program.clone());
        let mut checked = Vm::new(program.clone());
        checked.config = Config {
            engine: Engine::Jit,
            ..Config::default()
        };
        let input = (b.input)();
        // The unchecked JIT (what rbpf's JIT and the kernel run) needs a
        // proof that the program stays in bounds: the verifier's, or for
        // the programs it cannot prove (a loop too long to walk, a volatile
        // loop counter) a complete run in the checked interpreter on this
        // very input. These programs call no helpers and read nothing but
        // the input, so every run repeats that run's path exactly.
        let proven = verified || interp.run_raw(&mut input.clone()).is_ok();
        if !proven {
            bail!("{}: faults in the checked interpreter", b.name);
        }
        let mut jit = checked.clone();
        // Like rbpf's JIT and the kernel's, no instruction count — except
        // for a proof by widening, which needs the budget to stop a loop.
        jit.config.count_instructions = false;
        match &proof {
            Some(p) => {
                if p.needs_budget() {
                    jit.config.instruction_budget = Some(1 << 40);
                    widened.push(b.name);
                }
                jit.trust(p)?;
            }
            None => {
                // SAFETY: see `proven` above: a complete checked run on
                // this same input.
                jit.config.checks = unsafe { Checks::trust_unproven() };
            }
        }
        let mut rvm = rbpf::EbpfVmRaw::new(Some(b.code))?;
        rvm.jit_compile()?;
        // Every engine must agree before its speed means anything.
        let want = interp.run_raw(&mut input.clone())?.r0;
        let results = [
            ("oxbpf jit", jit.run_raw(&mut input.clone())?.r0),
            (
                "oxbpf jit (checked)",
                checked.run_raw(&mut input.clone())?.r0,
            ),
            // SAFETY: rbpf's JIT runs the program on the memory we pass;
            // rbpf's own verifier accepted the program in `new`.
            ("rbpf jit", unsafe {
                rvm.execute_program_jit(&mut input.clone())?
            }),
            ("native", (b.native)(&mut input.clone())),
        ];
        for (who, got) in results {
            if got != want {
                bail!(
                    "{}: {who} returned {got:#x}, the interpreter {want:#x}",
                    b.name
                );
            }
        }
        let (mut m1, mut m2, mut m3, mut m4, mut m5) = (
            input.clone(),
            input.clone(),
            input.clone(),
            input.clone(),
            input.clone(),
        );
        let mut f_jit = || jit.run_raw(&mut m1).map(|r| r.r0).unwrap_or(0);
        let mut f_chk = || checked.run_raw(&mut m2).map(|r| r.r0).unwrap_or(0);
        let mut f_int = || interp.run_raw(&mut m3).map(|r| r.r0).unwrap_or(0);
        let mut f_rbpf = || {
            // SAFETY: as above; the memory outlives the call.
            unsafe { rvm.execute_program_jit(&mut m4) }.unwrap_or(0)
        };
        let native = b.native;
        let mut f_nat = || native(black_box(&mut m5));
        let t = measure(
            &mut [&mut f_jit, &mut f_chk, &mut f_int, &mut f_rbpf, &mut f_nat],
            rounds,
            ms,
        );
        let vs_rbpf = t[3].as_secs_f64() / t[0].as_secs_f64();
        let vs_native = t[0].as_secs_f64() / t[4].as_secs_f64();
        let vs_interp = t[2].as_secs_f64() / t[0].as_secs_f64();
        worst_rbpf = worst_rbpf.min(vs_rbpf);
        worst_native = worst_native.max(vs_native);
        println!(
            "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8.2}x {:>8.2}x {:>8.1}x",
            b.name,
            insns,
            us(t[0]),
            us(t[1]),
            us(t[2]),
            us(t[3]),
            us(t[4]),
            vs_rbpf,
            vs_native,
            vs_interp
        );
        if !verified {
            unproven.push(b.name);
        }
    }
    if !widened.is_empty() {
        println!(
            "proven by widening (--loops widen: memory safety for any trip count; the JIT counts instructions against a budget): {}",
            widened.join(", ")
        );
    }
    if !unproven.is_empty() {
        println!(
            "not proven by oxbpf's verifier (safe runs shown by the checked interpreter on the same input): {}",
            unproven.join(", ")
        );
    }
    println!(
        "vs rbpf, vs interp: speed-up, the other's time / oxbpf jit's time (above 1x: oxbpf jit is faster)"
    );
    println!(
        "vs native: time ratio, oxbpf jit's time / native time (below 1x: oxbpf jit is faster)"
    );
    println!(
        "oxbpf jit: at worst {worst_rbpf:.2}x the speed of rbpf's JIT; at worst {worst_native:.2}x the time of native code"
    );
    objects(quick)?;
    for line in compile_report {
        println!("{line}");
    }
    Ok(())
}

/// Programs with maps and helpers (rbpf's JIT cannot run them, native code
/// has no kernel helpers): oxbpf's JIT against its interpreter, per packet
/// of examples/pcap/mixed.pcap.
fn objects(quick: bool) -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pcap = std::fs::read(root.join("examples/pcap/mixed.pcap"))?;
    let packets: Vec<Vec<u8>> = oxbpf_pcap::read(&pcap)?
        .1
        .into_iter()
        .map(|p| p.data)
        .collect();
    println!(
        "{:<24} {:>12} {:>12} {:>9}",
        "object (maps, helpers)", "oxbpf jit", "interp", "vs interp"
    );
    let (rounds, ms) = if quick { (1, 1) } else { (9, 30) };
    for name in ["xdp_firewall.o", "proto_counter.o", "lru_flows.o"] {
        let obj = oxbpf_obj::load(&std::fs::read(root.join("examples/c").join(name))?)?;
        let mut interp = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, None)?;
        let mut jit = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, None)?;
        jit.config.engine = Engine::Jit;
        jit.config.count_instructions = false;
        let all_verified = match oxbpf_verifier::prove_object(&obj, None) {
            Ok(proof) => jit.trust(&proof).is_ok(),
            Err(_) => false,
        };
        interp.config.count_instructions = false;
        let run_all = |lo: &oxbpf_vm::loaded::LoadedObject| -> u64 {
            let mut acc = 0u64;
            for p in &packets {
                if let Ok(r) = lo.run(0, p)
                    && let Ok(r) = r.result
                {
                    acc = acc.wrapping_add(r.r0);
                }
            }
            let _ = lo.env.take_output();
            acc
        };
        if run_all(&interp) != run_all(&jit) {
            bail!("{name}: the JIT and the interpreter disagree");
        }
        let (mut fi, mut fj) = (|| run_all(&interp), || run_all(&jit));
        let t = measure(&mut [&mut fj, &mut fi], rounds, ms);
        let per = |d: Duration| d.as_secs_f64() * 1e9 / packets.len() as f64;
        println!(
            "{:<24} {:>9.0} ns {:>9.0} ns {:>8.1}x",
            format!("{name}{}", if all_verified { "" } else { " (checked)" }),
            per(t[0]),
            per(t[1]),
            t[1].as_secs_f64() / t[0].as_secs_f64()
        );
    }
    println!(
        "(time per packet, maps and helpers included; vs interp: speed-up, the interpreter's time / the JIT's, above 1x the JIT is faster)"
    );
    Ok(())
}

/// JIT compile throughput: every program of the bundled examples and, when
/// present, of ../shared/ebpf-samples, compiled object by object (one
/// executable mapping per object, as `oxbpf run --engine jit` does), and
/// the benchmark programs one by one.
fn compile_speed(quick: bool) -> Result<Vec<String>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let paths: Vec<_> =
        oxbpf_obj::object_files(&[root.join("examples/c"), root.join("../shared/ebpf-samples")])
            .into_iter()
            .filter(|p| p.exists() && !p.components().any(|c| c.as_os_str() == "invalid"))
            .collect();
    let mut objects: Vec<Vec<Program>> = Vec::new();
    for p in paths {
        if let Ok(bytes) = std::fs::read(&p)
            && let Ok(obj) = oxbpf_obj::load(&bytes)
            && let Ok(lo) = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, None)
            && !lo.programs.is_empty()
        {
            objects.push(lo.programs.iter().map(|p| (*p.program).clone()).collect());
        }
    }
    let config = Config::default();
    let rounds = if quick { 1 } else { 20 };
    let time = |groups: &[Vec<Program>]| -> Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..rounds {
            // Fresh copies: compiled code is cached per program.
            let fresh: Vec<Vec<Program>> = groups
                .iter()
                .map(|g| g.iter().map(|p| p.clone_uncompiled()).collect())
                .collect();
            let t = Instant::now();
            for g in &fresh {
                let refs: Vec<&Program> = g.iter().collect();
                oxbpf_vm::jit::compile_all(&refs, &config)?;
            }
            best = best.min(t.elapsed());
        }
        Ok(best)
    };
    let mut lines = Vec::new();
    let mut report = |what: &str, groups: &[Vec<Program>], t: Duration| {
        let n: usize = groups.iter().map(|g| g.len()).sum();
        let insns: usize = groups.iter().flatten().map(|p| p.len()).sum();
        lines.push(format!(
            "JIT compile, {what}: {n} programs, {insns} instructions in {:.2} ms: {:.1} us per 1000 instructions, {:.1} M instructions/s",
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / (insns as f64 / 1000.0),
            insns as f64 / t.as_secs_f64() / 1e6
        ));
    };
    if !objects.is_empty() {
        let t = time(&objects)?;
        report(
            &format!("{} objects (one mapping each)", objects.len()),
            &objects,
            t,
        );
    }
    let singles: Vec<Vec<Program>> = BENCHES
        .iter()
        .map(|b| Program::from_bytes(b.code).map(|p| vec![p]))
        .collect::<Result<_, _>>()?;
    let t = time(&singles)?;
    report("benchmark programs one by one", &singles, t);
    Ok(lines)
}
