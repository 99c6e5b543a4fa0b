//! BTF as text, in `bpftool btf dump ... format raw`'s shape: one line per
//! type (`[3] STRUCT 'event' size=24 vlen=3`), its members, parameters,
//! enumerators or section variables indented below.

use std::fmt::Write as _;

use crate::btf::{Btf, Kind};

fn quoted(name: &str) -> String {
    if name.is_empty() {
        "'(anon)'".into()
    } else {
        format!("'{name}'")
    }
}

fn linkage(l: u32) -> &'static str {
    match l {
        0 => "static",
        1 => "global",
        2 => "extern",
        _ => "(unknown)",
    }
}

impl Btf {
    /// Every type, as bpftool's raw format prints it.
    pub fn dump_raw(&self) -> String {
        let mut out = String::new();
        for id in 1..self.types.len() as u32 {
            self.dump_type(id, &mut out);
        }
        out
    }

    /// One type and its indented details.
    pub fn dump_type(&self, id: u32, out: &mut String) {
        let Some(t) = self.get(id) else { return };
        let n = quoted(&t.name);
        let _ = match &t.kind {
            Kind::Int {
                size,
                encoding,
                offset,
                bits,
            } => {
                let enc = match encoding {
                    0 => "(none)",
                    1 => "SIGNED",
                    2 => "CHAR",
                    4 => "BOOL",
                    _ => "(unknown)",
                };
                writeln!(
                    out,
                    "[{id}] INT {n} size={size} bits_offset={offset} nr_bits={bits} encoding={enc}"
                )
            }
            Kind::Ptr { target } => writeln!(out, "[{id}] PTR {n} type_id={target}"),
            Kind::Array {
                elem,
                index,
                nelems,
            } => writeln!(
                out,
                "[{id}] ARRAY {n} type_id={elem} index_type_id={index} nr_elems={nelems}"
            ),
            Kind::Struct { size, members } | Kind::Union { size, members } => {
                let kind = if matches!(t.kind, Kind::Struct { .. }) {
                    "STRUCT"
                } else {
                    "UNION"
                };
                let _ = writeln!(out, "[{id}] {kind} {n} size={size} vlen={}", members.len());
                for m in members {
                    let _ = write!(
                        out,
                        "\t{} type_id={} bits_offset={}",
                        quoted(&m.name),
                        m.type_id,
                        m.offset
                    );
                    if m.bitfield_size > 0 {
                        let _ = write!(out, " bitfield_size={}", m.bitfield_size);
                    }
                    out.push('\n');
                }
                Ok(())
            }
            Kind::Enum { size, values } | Kind::Enum64 { size, values } => {
                let kind = if matches!(t.kind, Kind::Enum { .. }) {
                    "ENUM"
                } else {
                    "ENUM64"
                };
                let enc = if t.kind_flag { "SIGNED" } else { "UNSIGNED" };
                let _ = writeln!(
                    out,
                    "[{id}] {kind} {n} encoding={enc} size={size} vlen={}",
                    values.len()
                );
                for (name, v) in values {
                    let mut shown = if t.kind_flag {
                        v.to_string()
                    } else if *size < 8 {
                        ((*v as u64) & ((1u64 << (size * 8)) - 1)).to_string()
                    } else {
                        (*v as u64).to_string()
                    };
                    // bpftool marks 64-bit enumerators as C literals.
                    if matches!(t.kind, Kind::Enum64 { .. }) {
                        shown.push_str(if t.kind_flag { "LL" } else { "ULL" });
                    }
                    let _ = writeln!(out, "\t{} val={shown}", quoted(name));
                }
                Ok(())
            }
            Kind::Fwd => writeln!(
                out,
                "[{id}] FWD {n} fwd_kind={}",
                if t.kind_flag { "union" } else { "struct" }
            ),
            Kind::Typedef { target } => writeln!(out, "[{id}] TYPEDEF {n} type_id={target}"),
            Kind::Volatile { target } => writeln!(out, "[{id}] VOLATILE {n} type_id={target}"),
            Kind::Const { target } => writeln!(out, "[{id}] CONST {n} type_id={target}"),
            Kind::Restrict { target } => writeln!(out, "[{id}] RESTRICT {n} type_id={target}"),
            Kind::Func { proto, linkage: l } => {
                writeln!(
                    out,
                    "[{id}] FUNC {n} type_id={proto} linkage={}",
                    linkage(*l)
                )
            }
            Kind::FuncProto { ret, params } => {
                let _ = writeln!(
                    out,
                    "[{id}] FUNC_PROTO {n} ret_type_id={ret} vlen={}",
                    params.len()
                );
                for (name, ty) in params {
                    let _ = writeln!(out, "\t{} type_id={ty}", quoted(name));
                }
                Ok(())
            }
            Kind::Var { target, linkage: l } => {
                writeln!(
                    out,
                    "[{id}] VAR {n} type_id={target}, linkage={}",
                    linkage(*l)
                )
            }
            Kind::Datasec { size, vars } => {
                let _ = writeln!(out, "[{id}] DATASEC {n} size={size} vlen={}", vars.len());
                for v in vars {
                    let member = self.get(v.type_id);
                    let var = member.map_or(String::new(), |t| t.name.clone());
                    // A member is a VAR, or a FUNC in `.ksyms`.
                    let kind = match member.map(|t| &t.kind) {
                        Some(Kind::Func { .. }) => "FUNC",
                        _ => "VAR",
                    };
                    let _ = writeln!(
                        out,
                        "\ttype_id={} offset={} size={} ({kind} {})",
                        v.type_id,
                        v.offset,
                        v.size,
                        quoted(&var)
                    );
                }
                Ok(())
            }
            Kind::Float { size } => writeln!(out, "[{id}] FLOAT {n} size={size}"),
            Kind::DeclTag { target, component } => {
                writeln!(
                    out,
                    "[{id}] DECL_TAG {n} type_id={target} component_idx={component}"
                )
            }
            Kind::TypeTag { target } => writeln!(out, "[{id}] TYPE_TAG {n} type_id={target}"),
        };
    }
}
