//! Compiles every program of the given objects, one executable mapping per
//! object, many times (for profiling the JIT's compile speed on real
//! objects, placement included): `compile_objects [N] OBJ.o...`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args[1].parse().expect("N");
    let mut objects = Vec::new();
    for path in &args[2..] {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let Ok(obj) = oxbpf_obj::load(&bytes) else {
            continue;
        };
        let Ok(lo) = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, None) else {
            continue;
        };
        let progs: Vec<oxbpf_vm::Program> =
            lo.programs.iter().map(|p| (*p.program).clone()).collect();
        if !progs.is_empty() {
            objects.push(progs);
        }
    }
    let insns: usize = objects.iter().flatten().map(|p| p.len()).sum();
    let config = oxbpf_vm::Config::default();
    let mut best = std::time::Duration::MAX;
    for _ in 0..n {
        let fresh: Vec<Vec<oxbpf_vm::Program>> = objects
            .iter()
            .map(|g| g.iter().map(|p| p.clone_uncompiled()).collect())
            .collect();
        let t = std::time::Instant::now();
        for g in &fresh {
            let refs: Vec<&oxbpf_vm::Program> = g.iter().collect();
            oxbpf_vm::jit::compile_all(&refs, &config).expect("compiles");
        }
        best = best.min(t.elapsed());
    }
    println!(
        "{} objects, {insns} instructions: best {:.2} ms, {:.1} M instructions/s",
        objects.len(),
        best.as_secs_f64() * 1e3,
        insns as f64 / best.as_secs_f64() / 1e6
    );
}
