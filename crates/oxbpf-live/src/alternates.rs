//! Alternate programs for one event, chosen by what the kernel supports
//! (`--auto`): tools written for many kernels carry the same handler
//! several times — `tp_btf/X` (BTF-typed, cheapest), `raw_tp/X` and
//! `tracepoint/CAT/X` for a tracepoint; `fentry/F` and `kprobe/F` for a
//! function entry; `fexit/F` and `kretprobe/F` for its return — and load
//! only the best one the running kernel can attach (libbpf-tools do this
//! by hand with `probe_tp_btf()` / `fentry_can_attach()` and
//! `bpf_program__set_autoload(false)`).

use oxbpf_obj::Object;

use crate::hook::{Hook, hook_for};

/// The decision for one event that has alternates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// The event (`tracepoint sched_switch`, `entry of do_unlinkat`, …).
    pub event: String,
    /// The program kept, and its section; `None` when the kernel supports
    /// none of them (the best one is kept so attaching names the reason).
    pub chosen: Option<(String, String)>,
    /// The programs left unloaded, with why each lost: a better one is
    /// supported, or the kernel lacks what it needs.
    pub dropped: Vec<(String, String, String)>,
}

/// The event a section's program handles and its rank among the
/// alternates (0 is preferred), for sections that have alternates.
fn event_of(section: &str) -> Option<(String, u8)> {
    match hook_for(section).ok()? {
        Hook::TpBtf { name } => Some((format!("tracepoint {name}"), 0)),
        Hook::RawTracepoint { name, .. } => Some((format!("tracepoint {name}"), 1)),
        Hook::Tracepoint { name, .. } => Some((format!("tracepoint {name}"), 2)),
        Hook::Trampoline {
            kind: "fentry",
            target,
        } => Some((format!("entry of {target}"), 0)),
        Hook::Trampoline {
            kind: "fexit",
            target,
        } => Some((format!("return of {target}"), 0)),
        Hook::Kprobe { target, ret } if !target.contains(['*', '?', '+']) => Some((
            format!("{} of {target}", if ret { "return" } else { "entry" }),
            1,
        )),
        _ => None,
    }
}

/// What the running kernel lacks to attach a program of this section, if
/// anything (probed without loading the program itself).
pub fn kernel_lacks(section: &str) -> Option<String> {
    match hook_for(section).ok()? {
        Hook::TpBtf { .. } => oxbpf_sys::vmlinux::attach_btf_id(section).err(),
        Hook::RawTracepoint { name, .. } => {
            // Raw tracepoints are named in BTF as btf_trace_NAME; without
            // BTF there is nothing to check them against.
            let btf = oxbpf_sys::vmlinux::btf().ok()?;
            let typedef = format!("btf_trace_{name}");
            (!btf.types.iter().any(|t| t.name == typedef))
                .then(|| format!("the kernel has no raw tracepoint `{name}`"))
        }
        Hook::Tracepoint { category, name } => oxbpf_sys::perf::tracepoint_id(&category, &name)
            .err()
            .map(|e| e.to_string()),
        Hook::Trampoline { .. } => oxbpf_sys::vmlinux::attach_btf_id(section)
            .err()
            .or_else(|| oxbpf_sys::vmlinux::trampolines().err()),
        Hook::Kprobe { .. } => (!std::path::Path::new("/sys/bus/event_source/devices/kprobe")
            .exists())
        .then(|| "this kernel has no kprobes".to_string()),
        _ => None,
    }
}

/// Keeps, for every event handled by alternate programs, only the best
/// one `lacks` finds nothing missing for; removes the others from the
/// object before it is loaded. Programs without alternates are untouched.
pub fn choose(object: &mut Object, lacks: impl Fn(&str) -> Option<String>) -> Vec<Choice> {
    // event -> [(rank, program index)]
    let mut groups: Vec<(String, Vec<(u8, usize)>)> = Vec::new();
    for (i, p) in object.programs.iter().enumerate() {
        let Some((event, rank)) = event_of(&p.section) else {
            continue;
        };
        match groups.iter_mut().find(|(e, _)| *e == event) {
            Some((_, members)) => members.push((rank, i)),
            None => groups.push((event, vec![(rank, i)])),
        }
    }
    let mut drop = vec![false; object.programs.len()];
    let mut choices = Vec::new();
    for (event, mut members) in groups {
        // Alternates are programs of different kinds for one event; two
        // programs of one kind are not alternatives to each other.
        let first = members[0].0;
        if members.iter().all(|(r, _)| *r == first) {
            continue;
        }
        members.sort_by_key(|&(r, i)| (r, i));
        let name = |i: usize| {
            (
                object.programs[i].name.clone(),
                object.programs[i].section.clone(),
            )
        };
        let mut why_not = Vec::new();
        let mut chosen = None;
        for &(_, i) in &members {
            if let Some(c) = chosen {
                let (n, s) = name(i);
                let (cn, _) = name(c);
                why_not.push((i, n, s, format!("`{cn}` is preferred and supported")));
                continue;
            }
            match lacks(&object.programs[i].section) {
                None => chosen = Some(i),
                Some(why) => {
                    let (n, s) = name(i);
                    why_not.push((i, n, s, why));
                }
            }
        }
        let keep = chosen.unwrap_or(members[0].1);
        let mut dropped = Vec::new();
        for (i, n, s, why) in why_not {
            if i != keep {
                drop[i] = true;
                dropped.push((n, s, why));
            }
        }
        choices.push(Choice {
            event,
            chosen: chosen.map(name),
            dropped,
        });
    }
    let mut i = 0;
    object.programs.retain(|_| {
        i += 1;
        !drop[i - 1]
    });
    choices
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(sections: &[&str]) -> Object {
        let mut o = Object::from_raw_program("p", Vec::new());
        let template = o.programs[0].clone();
        o.programs = sections
            .iter()
            .enumerate()
            .map(|(i, s)| oxbpf_obj::ProgramDef {
                name: format!("p{i}"),
                section: s.to_string(),
                ..template.clone()
            })
            .collect();
        o
    }

    fn names(o: &Object) -> Vec<&str> {
        o.programs.iter().map(|p| p.section.as_str()).collect()
    }

    #[test]
    fn the_best_supported_alternate_is_kept() {
        let mut o = object(&[
            "raw_tp/sched_switch",
            "tp_btf/sched_switch",
            "tracepoint/sched/sched_switch",
            "tracepoint/syscalls/sys_enter_openat",
            "kprobe/do_unlinkat",
            "fentry/do_unlinkat",
            "kretprobe/do_unlinkat",
            "xdp",
        ]);
        let c = choose(&mut o, |_| None);
        assert_eq!(
            names(&o),
            [
                "tp_btf/sched_switch",
                "tracepoint/syscalls/sys_enter_openat",
                "fentry/do_unlinkat",
                "kretprobe/do_unlinkat",
                "xdp"
            ]
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].event, "tracepoint sched_switch");
        assert_eq!(
            c[0].chosen,
            Some(("p1".into(), "tp_btf/sched_switch".into()))
        );
        assert_eq!(c[0].dropped.len(), 2);
        assert!(c[0].dropped[0].2.contains("`p1` is preferred"));
    }

    #[test]
    fn an_unsupported_preference_falls_back_with_its_reason() {
        let mut o = object(&["tp_btf/sched_switch", "raw_tp/sched_switch"]);
        let c = choose(&mut o, |s| {
            s.starts_with("tp_btf").then(|| "no BTF".to_string())
        });
        assert_eq!(names(&o), ["raw_tp/sched_switch"]);
        assert_eq!(c[0].dropped[0].2, "no BTF");
    }

    #[test]
    fn when_nothing_is_supported_the_best_stays_to_report_why() {
        let mut o = object(&["kprobe/vfs_read", "fentry/vfs_read"]);
        let c = choose(&mut o, |s| Some(format!("no {s}")));
        assert_eq!(names(&o), ["fentry/vfs_read"]);
        assert_eq!(c[0].chosen, None);
        assert_eq!(
            c[0].dropped,
            [(
                "p0".into(),
                "kprobe/vfs_read".into(),
                "no kprobe/vfs_read".into()
            )]
        );
    }

    #[test]
    fn programs_of_one_kind_are_not_alternates() {
        let mut o = object(&["tp_btf/sched_switch", "tp_btf/sched_switch"]);
        assert!(choose(&mut o, |_| None).is_empty());
        assert_eq!(o.programs.len(), 2);
    }
}
