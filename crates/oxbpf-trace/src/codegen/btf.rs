//! BTF for the generated object, as clang would write it for the same
//! program in C: every map as a BTF-defined map in `.maps` with its key
//! and value types (so `bpftool map dump` shows fields), every program and
//! `for` callback as a function, and a line record wherever the script's
//! place changes (so the kernel's verifier log and `bpftool prog dump
//! xlated linum` show the script's lines).

use oxbpf_obj::MapOrigin;
use oxbpf_obj::btf::{Btf, FuncInfo, Kind, LineInfo, Member, VarSecInfo};
use oxbpf_obj::btfbuild::Builder;

use super::{MapInfo, ProgramDef};
use crate::diag::Span;
use crate::types::{MapKind, Ty};

/// Base types, by id.
struct Base {
    int: u32,
    u8_: u32,
    char_: u32,
    u32_: u32,
    u64_: u32,
    s64: u32,
    void_ptr: u32,
}

struct Gen {
    b: Builder,
    base: Base,
}

/// An integer type (`char` is signed, as clang encodes it: the kernel
/// takes one encoding bit at most).
fn int(b: &mut Builder, name: &str, size: u32, signed: bool) -> u32 {
    b.add_kind(
        name,
        Kind::Int {
            size,
            encoding: u32::from(signed),
            offset: 0,
            bits: size * 8,
        },
    )
}

impl Gen {
    fn new() -> Gen {
        let mut b = Builder::new();
        let int_ = int(&mut b, "int", 4, true);
        let u8_ = int(&mut b, "unsigned char", 1, false);
        let char_ = int(&mut b, "char", 1, true);
        let u32_ = int(&mut b, "unsigned int", 4, false);
        let u64_ = int(&mut b, "unsigned long long", 8, false);
        let s64 = int(&mut b, "long long", 8, true);
        let void_ptr = b.add_kind("", Kind::Ptr { target: 0 });
        Gen {
            b,
            base: Base {
                int: int_,
                u8_,
                char_,
                u32_,
                u64_,
                s64,
                void_ptr,
            },
        }
    }

    fn array(&mut self, elem: u32, n: u32) -> u32 {
        self.b.add_kind(
            "",
            Kind::Array {
                elem,
                index: self.base.u32_,
                nelems: n,
            },
        )
    }

    /// A struct of 8-byte-aligned members laid out one after another.
    fn record(&mut self, name: &str, fields: &[(&str, u32, usize)]) -> u32 {
        let mut off = 0;
        let members = fields
            .iter()
            .map(|&(n, t, size)| {
                let m = Member {
                    name: n.to_string(),
                    type_id: t,
                    offset: (off * 8) as u32,
                    bitfield_size: 0,
                };
                off += size;
                m
            })
            .collect();
        self.b.add_kind(
            name,
            Kind::Struct {
                size: off as u32,
                members,
            },
        )
    }

    /// The type of a value as maps and records store it
    /// ([`Ty::stored_size`] bytes).
    fn ty(&mut self, t: &Ty) -> u32 {
        let Base { u64_, s64, .. } = self.base;
        match t {
            Ty::Int { signed: true, .. } => s64,
            Ty::Int { .. }
            | Ty::Sym { user: false }
            | Ty::Ptr { .. }
            | Ty::Username
            | Ty::Bool
            | Ty::Errno
            | Ty::Syscall
            | Ty::Disk
            | Ty::CgroupPath(_)
            | Ty::Strftime(_)
            | Ty::Stack { user: false, .. } => u64_,
            Ty::Stack { user: true, .. } => {
                self.record("", &[("stack_id", u64_, 8), ("pid", u64_, 8)])
            }
            Ty::Sym { user: true } => self.record("", &[("addr", u64_, 8), ("pid", u64_, 8)]),
            Ty::Str(_) => {
                let c = self.base.char_;
                self.array(c, t.stored_size() as u32)
            }
            Ty::Inet => {
                let a = self.array(self.base.u8_, 16);
                self.record("", &[("family", u64_, 8), ("addr", a, 16)])
            }
            Ty::Buf(_) => {
                let a = self.array(self.base.u8_, t.stored_size() as u32 - 8);
                self.record("", &[("len", u64_, 8), ("data", a, t.stored_size() - 8)])
            }
            Ty::Tuple(items) => {
                let fields: Vec<(String, u32, usize)> = items
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("f{i}"), self.ty(t), t.stored_size()))
                    .collect();
                let f: Vec<(&str, u32, usize)> = fields
                    .iter()
                    .map(|(n, t, s)| (n.as_str(), *t, *s))
                    .collect();
                self.record("", &f)
            }
        }
    }

    /// Bytes without a better description.
    fn bytes(&mut self, n: u32) -> u32 {
        match n {
            4 => self.base.u32_,
            8 => self.base.u64_,
            _ => self.array(self.base.u8_, n),
        }
    }

    /// `int (*name)[n]`, the way `__uint(name, n)` encodes a number.
    fn number(&mut self, n: u32) -> u32 {
        let a = self.array(self.base.int, n);
        self.b.add_kind("", Kind::Ptr { target: a })
    }
}

/// The key and value types of a script's map.
fn script_map_types(g: &mut Gen, m: &MapInfo, key_size: u32) -> (u32, u32) {
    let key = if m.array.is_some() {
        g.base.u32_
    } else if m.key.is_empty() && !m.kind.bucketed() {
        g.base.u64_
    } else {
        let mut fields: Vec<(String, u32, usize)> = m
            .key
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("k{i}"), g.ty(t), t.stored_size()))
            .collect();
        if m.key.is_empty() {
            fields.push(("k0".into(), g.base.u64_, 8));
        }
        let used: usize = fields.iter().map(|f| f.2).sum();
        if m.kind.bucketed() && used + 8 == key_size as usize {
            fields.push(("bucket".into(), g.base.u64_, 8));
        }
        let used: usize = fields.iter().map(|f| f.2).sum();
        if used != key_size as usize {
            return (g.bytes(key_size), value_type(g, &m.kind));
        }
        let f: Vec<(&str, u32, usize)> = fields
            .iter()
            .map(|(n, t, s)| (n.as_str(), *t, *s))
            .collect();
        let name = format!("{}_key", m.symbol());
        g.record(&name, &f)
    };
    (key, value_type(g, &m.kind))
}

fn value_type(g: &mut Gen, kind: &MapKind) -> u32 {
    let Base { u64_, s64, .. } = g.base;
    match kind {
        MapKind::Scalar(t) => g.ty(t),
        MapKind::Count | MapKind::Hist { .. } | MapKind::Lhist { .. } => u64_,
        MapKind::Sum => s64,
        MapKind::Min | MapKind::Max => g.record("", &[("value", s64, 8), ("set", u64_, 8)]),
        MapKind::Avg | MapKind::Stats => g.record("", &[("total", s64, 8), ("count", u64_, 8)]),
    }
}

/// Builds the object's BTF: sets each map's BTF ids and `.maps` place,
/// each program's function records (`subprogs`: where its callbacks
/// start) and line records (`spans`: the script's place of each
/// instruction slot; none without `source`).
pub(super) fn describe(
    defs: &mut [ProgramDef],
    subprogs: &[Vec<usize>],
    spans: &[&[Span]],
    maps: &mut [oxbpf_obj::MapDef],
    script_maps: &[MapInfo],
    file: &str,
    source: &str,
) -> Btf {
    let mut g = Gen::new();
    let Base { int, void_ptr, .. } = g.base;
    // Maps.
    let mut vars = Vec::new();
    let mut offset = 0u32;
    for (i, def) in maps.iter_mut().enumerate() {
        // Global data: a section of its own, one variable (named by the
        // section's last part) of the value's size.
        if let MapOrigin::Data { section } = &def.origin {
            let value = g.bytes(def.value_size);
            let name = section.rsplit('.').next().unwrap_or(section);
            let var = g.b.add_kind(
                name,
                Kind::Var {
                    target: value,
                    linkage: 1,
                },
            );
            g.b.add_kind(
                section,
                Kind::Datasec {
                    size: def.value_size,
                    vars: vec![VarSecInfo {
                        type_id: var,
                        offset: 0,
                        size: def.value_size,
                    }],
                },
            );
            def.btf_key_type_id = 0;
            def.btf_value_type_id = 0;
            continue;
        }
        let script = script_maps.iter().find(|m| m.index == i && m.index != 0);
        let typed = !matches!(
            def.map_type,
            oxbpf_abi::map_type::RINGBUF | oxbpf_abi::map_type::STACK_TRACE
        );
        let (key, value) = match script {
            Some(m) if typed => {
                let (k, v) = script_map_types(&mut g, m, def.key_size);
                (Some(k), Some(v))
            }
            _ if typed => (Some(g.bytes(def.key_size)), Some(g.bytes(def.value_size))),
            _ => (None, None),
        };
        let mut fields: Vec<(&str, u32)> = vec![("type", g.number(def.map_type))];
        match (key, value) {
            (Some(k), Some(v)) => {
                let kp = g.b.add_kind("", Kind::Ptr { target: k });
                let vp = g.b.add_kind("", Kind::Ptr { target: v });
                fields.push(("key", kp));
                fields.push(("value", vp));
                def.btf_key_type_id = k;
                def.btf_value_type_id = v;
            }
            _ => {
                if def.key_size != 0 {
                    fields.push(("key_size", g.number(def.key_size)));
                }
                if def.value_size != 0 {
                    fields.push(("value_size", g.number(def.value_size)));
                }
            }
        }
        fields.push(("max_entries", g.number(def.max_entries)));
        if def.flags != 0 {
            fields.push(("map_flags", g.number(def.flags)));
        }
        let f: Vec<(&str, u32, usize)> = fields.iter().map(|&(n, t)| (n, t, 8)).collect();
        let st = g.record("", &f);
        let size = 8 * fields.len() as u32;
        let var = g.b.add_kind(
            &def.name,
            Kind::Var {
                target: st,
                linkage: 1,
            },
        );
        vars.push(VarSecInfo {
            type_id: var,
            offset,
            size,
        });
        def.origin = MapOrigin::BtfAt {
            offset: u64::from(offset),
            size: u64::from(size),
        };
        offset += size;
    }
    if !vars.is_empty() {
        g.b.add_kind(".maps", Kind::Datasec { size: offset, vars });
    }
    // Functions: `int NAME(void *ctx)` and `static int NAME_forK(void
    // *map, void *key, void *value, void *ctx)`.
    let prog_proto = g.b.add_kind(
        "",
        Kind::FuncProto {
            ret: int,
            params: vec![("ctx".into(), void_ptr)],
        },
    );
    let cb_proto = g.b.add_kind(
        "",
        Kind::FuncProto {
            ret: int,
            params: ["map", "key", "value", "ctx"]
                .iter()
                .map(|p| (p.to_string(), void_ptr))
                .collect(),
        },
    );
    let index = crate::diag::LineIndex::new(source);
    for (k, d) in defs.iter_mut().enumerate() {
        let f = g.b.add_kind(
            &d.name,
            Kind::Func {
                proto: prog_proto,
                linkage: 1,
            },
        );
        d.func_info = vec![FuncInfo {
            insn: 0,
            type_id: f,
        }];
        let subs = subprogs.get(k).map(Vec::as_slice).unwrap_or(&[]);
        for (j, &at) in subs.iter().enumerate() {
            let f = g.b.add_kind(
                &format!("{}_for{j}", d.name),
                Kind::Func {
                    proto: cb_proto,
                    linkage: 0,
                },
            );
            d.func_info.push(FuncInfo {
                insn: at as u32,
                type_id: f,
            });
        }
        if source.is_empty() {
            continue;
        }
        let file_off = g.b.string(file);
        let spans = spans.get(k).copied().unwrap_or(&[]);
        let mut last = None;
        let mut i = 0;
        while i < d.insns.len() {
            let span = spans.get(i).copied().unwrap_or_default();
            let at = index.line_col(span.start);
            if last != Some(at) || i == 0 || subs.contains(&i) {
                last = Some(at);
                let (line, col) = at;
                let text = index.line(line).trim_end();
                let text_off = g.b.string(text);
                d.line_info.push(LineInfo {
                    insn: i as u32,
                    file_off,
                    text_off,
                    line_col: ((line as u32) << 10) | (col as u32).min(0x3ff),
                    file: file.to_string(),
                    text: text.to_string(),
                    line: line as u32,
                    column: col as u32,
                });
            }
            i += if d.insns[i].code == oxbpf_isa::raw::LDDW {
                2
            } else {
                1
            };
        }
    }
    g.b.finish().expect("the BTF written here parses")
}
