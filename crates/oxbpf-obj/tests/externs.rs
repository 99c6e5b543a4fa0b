//! `__kconfig` and `__ksym` externs of a real clang object: how the loader
//! classifies them, marks their instructions, and sanitizes the BTF the
//! kernel is given (extern linkage is not for the kernel).

use oxbpf_obj::btf::{Btf, Kind};
use oxbpf_obj::{KsymKind, load};

fn example(name: &str) -> oxbpf_obj::Object {
    let path = format!("{}/../../examples/live/{name}", env!("CARGO_MANIFEST_DIR"));
    load(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn ksyms_are_classified_and_left_for_the_kernel_loader() {
    let obj = example("ksyms.o");
    let get = |n: &str| obj.ksyms.iter().find(|k| k.name == n).unwrap();
    assert_eq!(get("runqueues").kind, KsymKind::Typed);
    assert_eq!(get("_stext").kind, KsymKind::Typeless);
    assert!(!get("_stext").weak);
    assert_eq!(get("bpf_task_acquire").kind, KsymKind::Func);
    assert!(get("oxbpf_no_such_kfunc").weak);
    let p = &obj.programs[0];
    // Every lddw of a ksym is BPF_PSEUDO_BTF_ID with id 0 until resolved.
    for (pos, name) in &p.extern_loads {
        assert_eq!((p.insns[*pos].src, p.insns[*pos].imm), (3, 0), "{name}");
        assert!(obj.ksyms.iter().any(|k| &k.name == name), "{name}");
    }
    let loads: Vec<&str> = p.extern_loads.iter().map(|(_, n)| n.as_str()).collect();
    for n in [
        "runqueues",
        "_stext",
        "bpf_task_acquire",
        "oxbpf_no_such_kfunc",
    ] {
        assert!(loads.contains(&n), "{n} not in {loads:?}");
    }
    let calls: Vec<&str> = p.extern_calls.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(
        calls,
        [
            "oxbpf_no_such_kfunc",
            "bpf_task_acquire",
            "bpf_task_release"
        ]
    );
    for (pos, _) in &p.extern_calls {
        assert_eq!(p.insns[*pos].src, 2);
    }
}

#[test]
fn btf_for_the_kernel_has_no_extern_linkage_and_ksyms_as_int_variables() {
    let obj = example("ksyms.o");
    let raw = obj.btf_for_kernel().unwrap();
    let b = Btf::parse(&raw).unwrap();
    assert_eq!(
        b.len(),
        obj.btf.as_ref().unwrap().len() + 1,
        "one dummy variable added"
    );
    let mut funcs = 0;
    for t in &b.types {
        match &t.kind {
            Kind::Var { linkage, .. } => assert_ne!(*linkage, 2, "extern variable {}", t.name),
            Kind::Func { linkage, proto } => {
                assert!(*linkage <= 1, "extern function {}", t.name);
                if let Some(Kind::FuncProto { params, .. }) = b.get(*proto).map(|p| &p.kind) {
                    assert!(
                        params.iter().all(|(n, ty)| !n.is_empty() || *ty == 0),
                        "{}",
                        t.name
                    );
                }
                funcs += 1;
            }
            _ => {}
        }
    }
    assert!(funcs >= 4);
    let (_, vars) = b.datasec(".ksyms").unwrap();
    for (i, v) in vars.iter().enumerate() {
        assert_eq!((v.offset, v.size), (4 * i as u32, 4));
        let Some(Kind::Var { target, .. }) = b.get(v.type_id).map(|t| &t.kind) else {
            panic!("member {i} of .ksyms is not a variable");
        };
        assert!(matches!(
            b.get(*target).unwrap().kind,
            Kind::Int { size: 4, .. }
        ));
    }
    let Some(Kind::Datasec { size, .. }) =
        b.types.iter().find(|t| t.name == ".ksyms").map(|t| &t.kind)
    else {
        panic!()
    };
    assert_eq!(*size as usize, 4 * vars.len());
}

#[test]
fn kconfig_externs_get_their_layout_in_the_kernel_btf() {
    let obj = example("usdt.o");
    if obj.kconfig.is_empty() {
        panic!("usdt.o has no kconfig externs any more; pick another example");
    }
    let b = Btf::parse(&obj.btf_for_kernel().unwrap()).unwrap();
    let (_, vars) = b.datasec(".kconfig").unwrap();
    for v in vars {
        let name = &b.get(v.type_id).unwrap().name;
        let k = obj.kconfig.iter().find(|k| &k.name == name).unwrap();
        assert_eq!((v.offset, v.size), (k.offset, k.size), "{name}");
    }
}
