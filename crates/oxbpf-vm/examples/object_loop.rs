//! Runs the first program of an object on one packet many times (for
//! profiling per-packet cost): `object_loop OBJ.o [jit] [N]`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let obj = oxbpf_obj::load(&std::fs::read(&args[1]).expect("object")).expect("loads");
    let mut lo = oxbpf_vm::loaded::LoadedObject::new(&obj, 1, None).expect("maps");
    if args.get(2).is_some_and(|a| a == "jit") {
        lo.config.engine = oxbpf_vm::Engine::Jit;
    }
    let n: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let mut pkt = vec![0u8; 64];
    pkt[12] = 8;
    pkt[14] = 0x45;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(lo.run(0, &pkt).unwrap());
    }
    println!(
        "{:.0} ns per packet",
        t.elapsed().as_nanos() as f64 / n as f64
    );
}
