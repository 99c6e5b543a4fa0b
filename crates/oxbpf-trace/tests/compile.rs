//! Compiling scripts without a kernel: what programs come out (types,
//! sections, how system call tracepoints are grouped), that oxbpf's own
//! verifier accepts every one of them, and the diagnostics of mistakes.

use oxbpf_isa::RawInsn;
use oxbpf_trace::probes::ProbeKind;

/// Tracepoint formats of a fixture system: openat/read/close enter and
/// exit, and sched_process_exec.
struct Fixture;

const OPENAT: &str = "format:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;\n";
const EXIT: &str = "format:\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n";
const EXEC: &str = "format:\n\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n";

impl oxbpf_trace::Env for Fixture {
    fn tracepoint_format(&self, c: &str, n: &str) -> Result<String, String> {
        match (c, n) {
            ("syscalls", n) if n.starts_with("sys_exit_") => Ok(EXIT.into()),
            ("syscalls", _) => Ok(OPENAT.into()),
            ("sched", "sched_process_exec") => Ok(EXEC.into()),
            _ => Err(format!("tracepoint {c}:{n} does not exist")),
        }
    }

    fn tracepoints(&self, c: &str, n: &str) -> Result<Vec<(String, String)>, String> {
        let all = [
            "sys_enter_openat",
            "sys_enter_read",
            "sys_enter_close",
            "sys_exit_openat",
            "sys_exit_read",
        ];
        Ok(all
            .iter()
            .filter(|t| c == "syscalls" && glob(n, t))
            .map(|t| ("syscalls".to_string(), t.to_string()))
            .collect())
    }
}

fn glob(p: &str, t: &str) -> bool {
    match p.split_once('*') {
        Some((a, rest)) => {
            t.starts_with(a) && (0..=t.len() - a.len()).any(|i| glob(rest, &t[a.len() + i..]))
        }
        None => p == t,
    }
}

fn compile(src: &str) -> oxbpf_trace::Compiled {
    let ast = oxbpf_trace::parse(src).unwrap_or_else(|d| panic!("{}", d.render("t.bt", src)));
    let opts = oxbpf_trace::Options {
        child: true,
        ..Default::default()
    };
    oxbpf_trace::compile(&ast, &Fixture, &opts)
        .unwrap_or_else(|d| panic!("{}", d.render("t.bt", src)))
}

/// The script written as an object (`--emit-elf`) and read back
/// (`--run`) is the same script: programs, maps, records and the script's
/// place of every instruction.
fn ahead_of_time_round_trip(file: &str, src: &str, c: &oxbpf_trace::Compiled) {
    let origin = oxbpf_trace::aot::Origin {
        file: file.into(),
        source: src.into(),
        kernel: "6.18.0".into(),
        compiler: "test".into(),
        child: true,
    };
    let bytes = oxbpf_trace::aot::emit(c, &origin).unwrap_or_else(|e| panic!("{file}: {e}"));
    let back = oxbpf_trace::aot::load(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(back.origin, origin);
    let b = &back.compiled;
    assert_eq!(b.programs, c.programs, "{file}");
    assert_eq!(b.printfs, c.printfs, "{file}");
    let spec = |o: &oxbpf_obj::Object, i: usize| o.maps[i].spec();
    assert_eq!(spec(&b.object, b.events), spec(&c.object, c.events));
    assert_eq!(spec(&b.object, b.lost), spec(&c.object, c.lost));
    assert_eq!(b.maps.len(), c.maps.len());
    for (x, y) in b.maps.iter().zip(&c.maps) {
        assert_eq!(
            (&x.name, &x.key, &x.kind, x.array),
            (&y.name, &y.key, &y.kind, y.array)
        );
        if y.index != 0 {
            assert_eq!(
                spec(&b.object, x.index),
                spec(&c.object, y.index),
                "{file} @{}",
                y.name
            );
        }
    }
    let init = |k: &oxbpf_trace::Compiled| -> Vec<_> {
        k.init
            .iter()
            .map(|(i, key, v)| (k.object.maps[*i].name.clone(), key.clone(), v.clone()))
            .collect()
    };
    assert_eq!(init(b), init(c), "{file}");
    let line = |s: &oxbpf_trace::Span| src[..s.start.min(src.len())].matches('\n').count();
    for (i, (p, q)) in b.object.programs.iter().zip(&c.object.programs).enumerate() {
        assert_eq!(p.name, q.name);
        assert_eq!(p.kind, q.kind, "{file} {}", p.name);
        if let Err(r) = oxbpf_verifier::verify_object_program(&b.object, i, &Default::default()) {
            panic!(
                "{file}: {} read back is rejected at {}: {}",
                p.name, r.pc, r.message
            );
        }
        // Callbacks come back in the loader's order; with one or none the
        // code is the same instruction for instruction.
        if q.func_info.len() <= 2 {
            assert_eq!(
                by_map_name(&b.object, &p.insns),
                by_map_name(&c.object, &q.insns),
                "{file} {}",
                p.name
            );
            let (lp, lq) = (&b.lines[&p.name], &c.lines[&q.name]);
            assert_eq!(lp.len(), lq.len());
            for (k, (x, y)) in lp.iter().zip(lq).enumerate() {
                assert_eq!(line(x), line(y), "{file} {} instruction {k}", p.name);
            }
        } else {
            assert_eq!(p.insns.len(), q.insns.len(), "{file} {}", p.name);
        }
    }
}

/// The instructions with each map reference naming its map (an object
/// read back numbers its maps in the loader's order: `.maps` first, then
/// global data).
fn by_map_name(o: &oxbpf_obj::Object, insns: &[RawInsn]) -> Vec<(RawInsn, Option<String>)> {
    insns
        .iter()
        .map(|i| {
            if i.code == oxbpf_isa::raw::LDDW && matches!(i.src, 5 | 6) {
                let name = o.maps.get(i.imm as usize).map(|m| m.name.clone());
                (RawInsn { imm: 0, ..*i }, name)
            } else {
                (*i, None)
            }
        })
        .collect()
}

fn error(src: &str) -> String {
    let d = match oxbpf_trace::parse(src) {
        Err(d) => d,
        Ok(ast) => oxbpf_trace::compile(&ast, &Fixture, &Default::default()).expect_err("an error"),
    };
    d.render("t.bt", src)
}

const SCRIPTS: &[&str] = &[
    r#"BEGIN { printf("%d %s\n", 1, "x"); @a = count(); @h = hist(5); @l = lhist(3, 0, 10, 1); exit(); }"#,
    r#"tracepoint:syscalls:sys_enter_openat /comm == "cat"/ { @[comm] = count(); @f[str(args->filename)] = count(); @fl = hist(args->flags); }"#,
    r#"tracepoint:syscalls:sys_exit_openat { @ret = stats(args->ret); }"#,
    r#"tracepoint:syscalls:sys_enter_* { @[probe] = count(); }"#,
    r#"tracepoint:sched:sched_process_exec { printf("%s %d\n", str(args->filename), args->pid); }"#,
    r#"uprobe:/bin/sh:main { @[arg0, arg1] = count(); } uretprobe:/bin/sh:main { @r = avg(retval); }"#,
    r#"interval:ms:10 { @n++; if (@n > 3) { exit(); } } END { printf("%d\n", @n); }"#,
    r#"BEGIN { $i = 0; while ($i < 5) { $i++; if ($i == 2) { continue; } } for ($j : 0..3) { @s = sum($j); } unroll(2) { @u = max($i); } }"#,
    r#"profile:hz:99 { @[cpu] = count(); @m = min(nsecs); @e = elapsed; @t = (pid, comm); }"#,
    r#"BEGIN { printf("%s %s %s %s %s\n", str(1), str(2), str(3), comm, "x"); }"#,
    r#"uprobe:/bin/sh:main { @[func] = count(); } tracepoint:syscalls:sys_enter_getppid /pid == cpid/ { @c = count(); }"#,
];

#[test]
fn every_program_passes_oxbpfs_verifier() {
    for src in SCRIPTS {
        let c = compile(src);
        for (i, p) in c.object.programs.iter().enumerate() {
            if let Err(r) = oxbpf_verifier::verify_object_program(&c.object, i, &Default::default())
            {
                panic!(
                    "{src}\nprogram {} [{}] rejected at {}: {}\n{}",
                    p.name,
                    p.section,
                    r.pc,
                    r.message,
                    r.log.join("\n")
                );
            }
        }
    }
}

#[test]
fn system_call_tracepoints_are_raw_tracepoints_grouped_by_direction() {
    // One call: its own tracepoint, as a C program attaches it (the
    // program runs for that call only).
    let c = compile("tracepoint:syscalls:sys_enter_openat { @a = count(); }");
    assert_eq!(
        c.object.programs[0].section,
        "tracepoint/syscalls/sys_enter_openat"
    );
    assert!(c.init.is_empty());
    // A wildcard without `args`: one program per direction, with tables.
    let c = compile("tracepoint:syscalls:sys_*_open* { @[probe] = count(); }");
    let sections: Vec<&str> = c
        .object
        .programs
        .iter()
        .map(|p| p.section.as_str())
        .collect();
    assert_eq!(sections, ["raw_tp/sys_enter", "raw_tp/sys_exit"]);
    assert_eq!(c.programs.iter().map(|p| p.count).sum::<usize>(), 2);
    let c = compile("tracepoint:syscalls:sys_enter_* { @[probe] = count(); }");
    assert_eq!(c.programs.len(), 1);
    assert_eq!(c.programs[0].count, 3);
    let names: Vec<String> = c
        .init
        .iter()
        .filter(|(_, _, v)| v.len() == 64)
        .map(|(_, _, v)| {
            String::from_utf8_lossy(&v[..v.iter().position(|&b| b == 0).unwrap()]).into_owned()
        })
        .collect();
    assert!(
        names.contains(&"tracepoint:syscalls:sys_enter_openat".to_string()),
        "{names:?}"
    );
    // With `args` (which differ per call): one raw-tracepoint program per
    // call.
    let c = compile("tracepoint:syscalls:sys_enter_* { @[args->dfd] = count(); }");
    assert_eq!(c.programs.len(), 3);
    assert!(
        c.object
            .programs
            .iter()
            .all(|p| p.section == "raw_tp/sys_enter")
    );
    assert!(
        c.programs
            .iter()
            .all(|p| matches!(p.kind, ProbeKind::Tracepoint { .. }))
    );
    // Other tracepoints stay perf tracepoints.
    let c = compile("tracepoint:sched:sched_process_exec { @a = count(); }");
    assert_eq!(
        c.object.programs[0].section,
        "tracepoint/sched/sched_process_exec"
    );
}

#[test]
fn mistakes_are_named_at_their_place() {
    // Found by the fuzz target: a NUL in an attach point made two section
    // names one in the written object.
    let e = error("t:a\0b:c { }");
    assert!(
        e.starts_with("t.bt:1:4: error: the script contains a NUL byte"),
        "{e}"
    );
    let e = error("BEGIN { @x = count(); @x = sum(1); }");
    assert!(
        e.starts_with("t.bt:1:23: error: @x holds sum() here but count() elsewhere"),
        "{e}"
    );
    let e = error(r#"BEGIN { printf("%d %d\n", 1); }"#);
    assert!(
        e.contains("the format has 2 conversions but 1 argument follows"),
        "{e}"
    );
    let e = error(r#"BEGIN { printf("%d\n", comm); }"#);
    assert!(e.contains("wants an integer"), "{e}");
    let e = error("tracepoint:syscalls:sys_enter_openat { @[args->filenam] = count(); }");
    assert!(e.contains("did you mean `filename`?"), "{e}");
    let e = error("BEGIN { @a = cont(); }");
    assert!(
        e.contains("unknown function `cont`") && e.contains("did you mean `count`?"),
        "{e}"
    );
    let e = error("BEGIN { $x = 1; printf(\"%d\\n\", $y); }");
    assert!(e.contains("$y is used before it is assigned"), "{e}");
    let e = error("tracepoint:nope:nothing { }");
    assert!(e.contains("does not exist"), "{e}");
    let e = error("BEGIN { @a[1] = 1; @a[\"x\"] = 2; }");
    assert!(
        e.contains("this key is string[2] where @a has int64 elsewhere"),
        "{e}"
    );
    let e = error("uprob:/bin/sh:main { }");
    assert!(e.contains("did you mean `uprobe`?"), "{e}");
}

/// Golden files: every `tests/trace/compile/NAME.bt` compiles (against the
/// fixture above) to the listing in `NAME.out` — the `-d bytecode` text,
/// after checking that oxbpf's verifier accepts each program — or fails
/// with the diagnostic in it. `UPDATE_GOLDEN=1` rewrites the `.out` files.
#[test]
fn golden_listings_and_diagnostics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/trace/compile");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/trace/compile")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bt"))
        .collect();
    names.sort();
    assert!(names.len() >= 30, "{} golden scripts", names.len());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failed = Vec::new();
    for path in &names {
        let src = std::fs::read_to_string(path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let opts = oxbpf_trace::Options {
            child: true,
            params: vec!["42".into(), "hello".into()],
            file: file.clone(),
            source: src.clone(),
            ..Default::default()
        };
        let got = match oxbpf_trace::parse(&src)
            .and_then(|ast| oxbpf_trace::compile(&ast, &Fixture, &opts))
        {
            Err(d) => d.render(&file, &src),
            Ok(c) => {
                for (i, p) in c.object.programs.iter().enumerate() {
                    if let Err(r) =
                        oxbpf_verifier::verify_object_program(&c.object, i, &Default::default())
                    {
                        panic!("{file}: {} rejected at {}: {}", p.name, r.pc, r.message);
                    }
                }
                ahead_of_time_round_trip(&file, &src, &c);
                c.listing(&src)
            }
        };
        let out = path.with_extension("out");
        if update {
            std::fs::write(&out, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&out).unwrap_or_default();
        if want != got {
            failed.push(format!("{file}:\n--- want\n{want}--- got\n{got}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} golden files differ (UPDATE_GOLDEN=1 rewrites them):\n{}",
        failed.len(),
        names.len(),
        failed.join("\n")
    );
}
