//! The bpftrace-language compiler never panics: any text parses or gets
//! a diagnostic whose span lies inside the text (and renders), and what
//! parses compiles or gets one; compiled programs decode, and are written
//! as an object (`--emit-elf`) and read back (`--run`).
#![no_main]
use libfuzzer_sys::fuzz_target;

/// One tracepoint with a few kinds of field, for every name.
struct Fixture;

impl oxbpf_trace::Env for Fixture {
    fn tracepoint_format(&self, _: &str, _: &str) -> Result<String, String> {
        Ok("format:\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:const char * filename;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:char comm[16];\toffset:24;\tsize:16;\tsigned:0;\n\tfield:__data_loc char[] name;\toffset:40;\tsize:4;\tsigned:0;\n".into())
    }

    fn tracepoints(&self, c: &str, n: &str) -> Result<Vec<(String, String)>, String> {
        Ok(vec![(c.replace('*', "x"), n.replace('*', "y"))])
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let check = |d: &oxbpf_trace::Diagnostic| {
        assert!(d.span.start <= src.len() && d.span.end <= src.len(), "{d:?}");
        let _ = d.render("fuzz.bt", src);
    };
    match oxbpf_trace::parse(src) {
        Err(d) => check(&d),
        Ok(ast) => {
            let opts = oxbpf_trace::Options {
                file: "fuzz.bt".into(),
                source: src.into(),
                ..Default::default()
            };
            match oxbpf_trace::compile(&ast, &Fixture, &opts) {
                Err(d) => check(&d),
                Ok(c) => {
                    for p in &c.object.programs {
                        oxbpf_isa::decode(&p.insns).expect("generated code decodes");
                    }
                    // Ahead of time: written and read back, the same programs.
                    let origin = oxbpf_trace::aot::Origin {
                        source: src.into(),
                        ..Default::default()
                    };
                    let bytes = oxbpf_trace::aot::emit(&c, &origin).expect("the object is written");
                    let back = oxbpf_trace::aot::load(&bytes).expect("the object is read back");
                    assert_eq!(back.compiled.programs, c.programs);
                }
            }
        }
    }
});
