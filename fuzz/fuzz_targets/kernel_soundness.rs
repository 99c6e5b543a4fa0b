//! Differential soundness against the kernel (root only): the input bytes
//! describe a program with ring buffer records, packet pointers, helpers
//! that change the packet and tail calls (oxbpf-testgen). A program the
//! kernel's verifier rejects for a memory-safety reason that oxbpf's
//! verifier accepts is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(g) = oxbpf_testgen::soundness_program(data) else { return };
    let ours = oxbpf_verifier::verify_object_program(&g.object, 0, &Default::default());
    if ours.is_err() {
        return;
    }
    let k = oxbpf_sys::object::load_object(&g.object, None);
    let v = &k.programs[0].verdict;
    if v.prog.is_err() && oxbpf_testgen::is_memory_safety_rejection(&v.log) {
        panic!(
            "oxbpf accepts a program the kernel rejects:\n{}\nkernel log:\n{}",
            g.source, v.log
        );
    }
});
