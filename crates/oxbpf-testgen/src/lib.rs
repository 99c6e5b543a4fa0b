//! # oxbpf-testgen: programs for differential soundness tests
//!
//! [`soundness_program`] turns any byte string into a small BPF program
//! (and the object holding it: a ring buffer and a program array) that
//! uses what reference tracking and packet invalidation are about: ring
//! buffer reservations that are null-checked or not, written, read,
//! spilled, copied, moved, submitted, discarded and leaked; packet
//! pointers bounds-checked, read and written around helpers that move or
//! resize the packet; socket lookups, views and releases; tail calls;
//! random early exits. Each byte picks a
//! snippet or its parameters, so a fuzzer's mutations stay meaningful and
//! a seeded byte stream gives a reproducible corpus.
//!
//! [`is_memory_safety_rejection`] reads a kernel verifier log and says
//! whether the kernel refused the program because it could touch memory
//! it must not (as opposed to size, complexity or policy limits): a
//! program so refused must be refused by oxbpf too.
#![forbid(unsafe_code)]

use std::fmt::Write;

use oxbpf_obj::{MapDef, MapOrigin, Object, ProgramType};

/// A generated program: the object to verify and its assembly text.
pub struct Generated {
    pub object: Object,
    pub source: String,
}

/// What the program's context is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hook {
    Tracepoint,
    Xdp,
    Tc,
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.next().unwrap_or(0) as usize % from.len()]
    }
}

/// The program that `data` describes (None for empty input).
pub fn soundness_program(data: &[u8]) -> Option<Generated> {
    let mut b = Bytes(data);
    let hook = match b.next()? % 3 {
        0 => Hook::Tracepoint,
        1 => Hook::Xdp,
        _ => Hook::Tc,
    };
    let mut s = String::new();
    // r6 = ctx, r7 = a ring buffer record (or 0), r8/r9 = packet data and
    // end (packet hooks) or r9 = a copy of r7.
    s.push_str("r6 = r1\nr7 = 0\nr9 = 0\n");
    if hook != Hook::Tracepoint {
        s.push_str(&packet_pointers(hook));
    }
    let mut label = 0;
    let mut pending: Option<String> = None;
    for _ in 0..24 {
        let Some(op) = b.next() else { break };
        let close = pending.take();
        let packet = hook != Hook::Tracepoint;
        let n = if packet { 26 } else { 14 };
        match op % n {
            0 => {
                let size = b.pick(&[8, 16, 24]);
                let _ = writeln!(
                    s,
                    "ld_pseudo r1, 0x5, 0x0\nr2 = {size}\nr3 = 0\ncall 131\nr7 = r0"
                );
            }
            1 => s.push_str("if r7 == 0 goto out\n"),
            2 => {
                let off = b.pick(&[0, 8, 16]);
                let _ = writeln!(s, "*(u64 *)(r7 + {off}) = 1");
            }
            3 => {
                let off = b.pick(&[0, 8, 16]);
                let _ = writeln!(s, "r0 = *(u64 *)(r7 + {off})");
            }
            4 => s.push_str("r1 = r7\nr2 = 0\ncall 132\n"),
            5 => s.push_str("r1 = r7\nr2 = 0\ncall 133\n"),
            6 => s.push_str("*(u64 *)(r10 - 8) = r7\n"),
            7 => s.push_str("r7 = *(u64 *)(r10 - 8)\n"),
            8 => {
                // Skip the next snippet on a random condition.
                label += 1;
                let _ = writeln!(s, "call 7\nif r0 > 0x7fffffff goto l{label}");
                pending = Some(format!("l{label}:\n"));
            }
            9 => {
                let k = b.pick(&[8, -8]);
                let _ = writeln!(s, "r7 += {k}");
            }
            10 if packet => s.push_str("*(u64 *)(r10 - 24) = r7\n"),
            10 => s.push_str("r9 = r7\n"),
            11 if packet => s.push_str("r7 = *(u64 *)(r10 - 24)\n"),
            11 => s.push_str("r7 = r9\n"),
            12 => s.push_str("r1 = r6\nld_pseudo r2, 0x5, 0x1\nr3 = 0\ncall 12\n"),
            13 => {
                // A random early exit.
                label += 1;
                let _ = writeln!(
                    s,
                    "call 7\nif r0 > 0x7fffffff goto l{label}\nr0 = 0\nexit\nl{label}:"
                );
            }
            14 => s.push_str(&packet_pointers(hook)),
            15 => {
                let k = b.pick(&[1, 8, 14, 34, 64]);
                let _ = writeln!(s, "r1 = r8\nr1 += {k}\nif r1 > r9 goto out");
            }
            16 => {
                let k = b.pick(&[0, 7, 13, 33, 63]);
                let _ = writeln!(s, "r0 = *(u8 *)(r8 + {k})");
            }
            17 => {
                let k = b.pick(&[0, 7, 13, 33, 63]);
                let _ = writeln!(s, "*(u8 *)(r8 + {k}) = 1");
            }
            18 => s.push_str(&packet_changer(hook, &mut b)),
            19 => s.push_str("*(u64 *)(r10 - 16) = r8\n"),
            20 => s.push_str("r8 = *(u64 *)(r10 - 16)\n"),
            21 => {
                let k = b.pick(&[1, 14, -1]);
                let _ = writeln!(s, "r8 += {k}");
            }
            22 => {
                // bpf_sk_lookup_tcp/udp or bpf_skc_lookup_tcp on a zeroed
                // IPv4 tuple, into r7.
                let id = b.pick(&[84, 85, 99]);
                let _ = writeln!(
                    s,
                    "r1 = 0\n*(u64 *)(r10 - 48) = r1\n*(u64 *)(r10 - 40) = r1\nr1 = r6\nr2 = r10\nr2 += -48\nr3 = 12\nr4 = -1\nr5 = 0\ncall {id}\nr7 = r0"
                );
            }
            23 => s.push_str("r1 = r7\ncall 86\n"),
            24 => {
                let k = b.pick(&[4, 12, 48, 76, 80]);
                let _ = writeln!(s, "r0 = *(u32 *)(r7 + {k})");
            }
            _ => {
                // A view of the socket (bpf_tcp_sock / bpf_sk_fullsock).
                let id = b.pick(&[96, 95]);
                let _ = writeln!(s, "r1 = r7\ncall {id}\nr7 = r0");
            }
        }
        if let Some(l) = close {
            s.push_str(&l);
        }
    }
    if let Some(l) = pending {
        s.push_str(&l);
    }
    s.push_str("out:\nr0 = 0\nexit\n");
    let insns = oxbpf_asm::assemble_raw(&s).ok()?;
    let (section, kind) = match hook {
        Hook::Tracepoint => (
            "tracepoint/syscalls/sys_enter_getppid",
            ProgramType::Tracepoint,
        ),
        Hook::Xdp => ("xdp", ProgramType::Xdp),
        Hook::Tc => ("tc", ProgramType::SchedCls),
    };
    let map = |name: &str, map_type, key_size, value_size, max_entries| MapDef {
        name: name.into(),
        map_type,
        key_size,
        value_size,
        max_entries,
        flags: 0,
        origin: MapOrigin::Btf,
        pinning: 0,
        inner: None,
        init_slots: Vec::new(),
        data: None,
        btf_key_type_id: 0,
        btf_value_type_id: 0,
    };
    let mut object = Object::from_raw_program("generated", insns);
    object.programs[0].section = section.into();
    object.programs[0].kind = kind;
    // BPF_MAP_TYPE_RINGBUF, BPF_MAP_TYPE_PROG_ARRAY.
    object.maps = vec![map("rb", 27, 0, 0, 4096), map("progs", 3, 4, 4, 1)];
    Some(Generated { object, source: s })
}

/// Loads of the packet pointers into r8 (data) and r9 (data_end).
fn packet_pointers(hook: Hook) -> String {
    let (data, end) = if hook == Hook::Xdp { (0, 4) } else { (76, 80) };
    format!("r8 = *(u32 *)(r6 + {data})\nr9 = *(u32 *)(r6 + {end})\n")
}

/// A helper call that may move or resize the packet.
fn packet_changer(hook: Hook, b: &mut Bytes) -> String {
    if hook == Hook::Xdp {
        // bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_adjust_meta.
        let (id, delta) = b.pick(&[(44, 14), (44, -14), (65, -8), (54, -4)]);
        return format!("r1 = r6\nr2 = {delta}\ncall {id}\n");
    }
    match b.next().unwrap_or(0) % 4 {
        // bpf_skb_pull_data
        0 => "r1 = r6\nr2 = 64\ncall 39\n".into(),
        // bpf_skb_change_tail
        1 => "r1 = r6\nr2 = 60\nr3 = 0\ncall 38\n".into(),
        // bpf_skb_store_bytes from a zeroed stack word
        2 => "r1 = 0\n*(u64 *)(r10 - 32) = r1\nr1 = r6\nr2 = 0\nr3 = r10\nr3 += -32\nr4 = 4\nr5 = 0\ncall 9\n".into(),
        // bpf_l3_csum_replace
        _ => "r1 = r6\nr2 = 24\nr3 = 0\nr4 = 1\nr5 = 2\ncall 10\n".into(),
    }
}

/// Whether the kernel's verifier log rejects the program because it could
/// access memory it must not: a bad pointer, an out-of-bounds or
/// uninitialized access, a use after release, a leaked or double-released
/// reference, a lock held over a call or exit. Size, complexity and
/// policy rejections (unknown helpers, program-type restrictions) are not.
pub fn is_memory_safety_rejection(log: &str) -> bool {
    const SAFETY: &[&str] = &[
        "invalid mem access",
        "invalid access to",
        "reference leak",
        "expected=",
        "must have zero offset when passed to release func",
        "outside of the packet",
        "out of bounds",
        "min value is outside",
        "max value is outside",
        "min value is negative",
        "unbounded memory access",
        "invalid read from stack",
        "invalid write to stack",
        "invalid indirect read from stack",
        "!read_ok",
        "bpf_spin_lock",
        "pointer arithmetic",
        "invalid bpf_context access",
        "dereference of modified",
        "leaks addr",
    ];
    let tail: Vec<&str> = log.lines().rev().take(4).collect();
    tail.iter().any(|l| SAFETY.iter().any(|p| l.contains(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_string_gives_a_program() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut kinds = std::collections::HashSet::new();
        for n in 0..500 {
            let data: Vec<u8> = (0..(n % 40 + 1))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let g = soundness_program(&data).expect("assembles");
            assert!(g.source.ends_with("out:\nr0 = 0\nexit\n"));
            kinds.insert(g.object.programs[0].kind);
        }
        assert_eq!(kinds.len(), 3, "tracepoint, xdp and tc programs");
        assert!(soundness_program(&[]).is_none());
    }

    #[test]
    fn classifies_kernel_messages() {
        assert!(is_memory_safety_rejection(
            "0: R1=ctx()\nR6 invalid mem access 'scalar'\nprocessed 9 insns"
        ));
        assert!(is_memory_safety_rejection(
            "BPF_EXIT instruction in main prog would lead to reference leak"
        ));
        assert!(!is_memory_safety_rejection(
            "BPF program is too large. Processed 1000001 insn"
        ));
        assert!(!is_memory_safety_rejection("unreachable insn 12"));
    }
}
