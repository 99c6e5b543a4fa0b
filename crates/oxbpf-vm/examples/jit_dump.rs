//! Writes the JIT's machine code for raw bytecode to a file, for reading
//! with `objdump -D -b binary -m i386:x86-64 FILE`.
//!
//! `cargo run -p oxbpf-vm --example jit_dump -- PROGRAM.bin OUT [checked]`
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: jit_dump PROGRAM.bin OUT [checked]");
        std::process::exit(2);
    }
    let code = std::fs::read(&args[1]).expect("read program");
    let program = oxbpf_vm::Program::from_bytes(&code).expect("valid program");
    let mut config = oxbpf_vm::Config::default();
    if args.get(3).is_none_or(|a| a != "checked") {
        // SAFETY: the code is only written out, never run.
        config.checks = unsafe { oxbpf_vm::Checks::trust_unproven() };
    }
    config.count_instructions = std::env::var_os("COUNT").is_some();
    let jit = oxbpf_vm::jit::compile(&program, &config).expect("compiles");
    std::fs::write(&args[2], jit.bytes()).expect("write");
    println!(
        "{} bytes of x86-64 for {} instructions",
        jit.code_size(),
        program.len()
    );
}
