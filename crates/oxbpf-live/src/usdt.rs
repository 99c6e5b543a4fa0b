//! USDT probes (`sys/sdt.h`, SystemTap's format): the `.note.stapsdt` notes
//! of an ELF file, their argument specs, and the `struct __bpf_usdt_spec`
//! records libbpf's `bpf/usdt.bpf.h` reads — so objects written against
//! Debian's header work unchanged.
//!
//! A note (type 3, owner "stapsdt") holds the probe address, the
//! `.stapsdt.base` address the file was linked with, the semaphore address
//! (0: none), then "provider\0name\0args\0". Arguments read `SIZE@LOC`,
//! SIZE negative for signed values: `-4@%edi` (a register), `8@-8(%rbp)`
//! (memory at register + offset), `4@$5` (a constant).

use std::path::Path;

use object::{Object, ObjectSection};

/// One probe site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub provider: String,
    pub name: String,
    /// File offset of the probe instruction (where the uprobe goes).
    pub offset: u64,
    /// File offset of the semaphore (the kernel increments it while the
    /// probe is attached: `ref_ctr_offset`), 0 when the probe has none.
    pub semaphore: u64,
    pub args: Vec<Arg>,
    /// The argument text as written in the note.
    pub args_text: String,
}

/// One argument's location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    /// Bytes, 1 to 8.
    pub size: u8,
    pub signed: bool,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loc {
    Const(i64),
    /// A register: its offset in x86-64 `struct pt_regs`.
    Reg(u16),
    /// Memory at register + offset.
    Deref {
        reg: u16,
        off: i64,
    },
}

/// Why probes cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum UsdtError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}: no USDT probe {provider}:{name} (the file has {known})")]
    NoProbe {
        path: String,
        provider: String,
        name: String,
        known: String,
    },
    #[error("{path}: probe {provider}:{name}: argument `{arg}`: {message}")]
    BadArg {
        path: String,
        provider: String,
        name: String,
        arg: String,
        message: String,
    },
}

/// Offset of an x86-64 register in `struct pt_regs` (any of its names:
/// `%rax`, `%eax`, `%ax`, `%al`, `%r8d`, ...).
fn reg_offset(name: &str) -> Option<u16> {
    let n = name.strip_prefix('%')?;
    let base = match n {
        "rax" | "eax" | "ax" | "al" | "ah" => "rax",
        "rbx" | "ebx" | "bx" | "bl" | "bh" => "rbx",
        "rcx" | "ecx" | "cx" | "cl" | "ch" => "rcx",
        "rdx" | "edx" | "dx" | "dl" | "dh" => "rdx",
        "rsi" | "esi" | "si" | "sil" => "rsi",
        "rdi" | "edi" | "di" | "dil" => "rdi",
        "rbp" | "ebp" | "bp" | "bpl" => "rbp",
        "rsp" | "esp" | "sp" | "spl" => "rsp",
        "rip" => "rip",
        _ => {
            // r8..r15 with d/w/b suffixes.
            let digits = n.strip_prefix('r')?.trim_end_matches(['d', 'w', 'b']);
            let i: u8 = digits.parse().ok()?;
            return match i {
                8 => Some(72),
                9 => Some(64),
                10 => Some(56),
                11 => Some(48),
                12 => Some(24),
                13 => Some(16),
                14 => Some(8),
                15 => Some(0),
                _ => None,
            };
        }
    };
    Some(match base {
        "rbp" => 32,
        "rbx" => 40,
        "rax" => 80,
        "rcx" => 88,
        "rdx" => 96,
        "rsi" => 104,
        "rdi" => 112,
        "rip" => 128,
        _ => 152, // rsp
    })
}

/// Parses one `SIZE@LOC` argument.
pub fn parse_arg(text: &str) -> Result<Arg, String> {
    let (size, loc) = text.split_once('@').ok_or("expected SIZE@LOCATION")?;
    let size: i32 = size.parse().map_err(|_| format!("bad size `{size}`"))?;
    let signed = size < 0;
    let size = size.unsigned_abs();
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(format!("size {size} is not 1, 2, 4 or 8"));
    }
    let loc = if let Some(c) = loc.strip_prefix('$') {
        Loc::Const(parse_int(c).ok_or_else(|| format!("bad constant `{c}`"))?)
    } else if loc.starts_with('%') {
        Loc::Reg(reg_offset(loc).ok_or_else(|| format!("unknown register `{loc}`"))?)
    } else if let Some((off, rest)) = loc.split_once('(') {
        let reg = rest.strip_suffix(')').ok_or("unclosed `(`")?;
        if reg.contains(',') {
            return Err("indexed addressing is not supported (nor is it by libbpf)".into());
        }
        let off = if off.is_empty() {
            0
        } else {
            parse_int(off).ok_or_else(|| format!("bad offset `{off}`"))?
        };
        Loc::Deref {
            reg: reg_offset(reg).ok_or_else(|| format!("unknown register `{reg}`"))?,
            off,
        }
    } else {
        return Err(format!("unknown location `{loc}`"));
    };
    Ok(Arg {
        size: size as u8,
        signed,
        loc,
    })
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, d) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let v = match d.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).ok()?,
        None => d.parse().ok()?,
    };
    Some(if neg { -v } else { v })
}

/// The file offset of a semaphore address: through the section holding
/// it (`.probes`, which may be NOBITS-adjacent), as libbpf computes
/// `ref_ctr_offset`.
fn sema_offset(elf: &object::File<'_>, addr: u64) -> Option<u64> {
    elf.sections().find_map(|s| {
        let (start, size) = (s.address(), s.size());
        let (off, _) = s.file_range()?;
        (addr >= start && addr < start + size).then(|| addr - start + off)
    })
}

/// Every USDT probe of the ELF file `path`.
pub fn probes(path: &Path) -> Result<Vec<Probe>, UsdtError> {
    let shown = path.display().to_string();
    let err = |message: String| UsdtError::File {
        path: shown.clone(),
        message,
    };
    let data = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let elf = object::File::parse(&*data).map_err(|e| err(format!("not an ELF file: {e}")))?;
    let base_addr = elf.section_by_name(".stapsdt.base").map(|s| s.address());
    let Some(notes) = elf.section_by_name(".note.stapsdt") else {
        return Ok(Vec::new());
    };
    let b = notes.data().map_err(|e| err(e.to_string()))?;
    let u32_at =
        |o: usize| -> Option<u32> { Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?)) };
    let u64_at = |d: &[u8], o: usize| -> Option<u64> {
        Some(u64::from_le_bytes(d.get(o..o + 8)?.try_into().ok()?))
    };
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 12 <= b.len() {
        let (Some(namesz), Some(descsz), Some(kind)) =
            (u32_at(pos), u32_at(pos + 4), u32_at(pos + 8))
        else {
            break;
        };
        let name_start = pos + 12;
        let desc_start = name_start + (namesz as usize).div_ceil(4) * 4;
        let next = desc_start + (descsz as usize).div_ceil(4) * 4;
        if next > b.len() {
            return Err(err(format!(
                "truncated note at offset {pos} of .note.stapsdt"
            )));
        }
        let owner = &b[name_start..name_start + namesz as usize];
        if kind == 3 && owner.starts_with(b"stapsdt") {
            let d = &b[desc_start..desc_start + descsz as usize];
            let (Some(mut pc), Some(base), Some(mut sema)) =
                (u64_at(d, 0), u64_at(d, 8), u64_at(d, 16))
            else {
                return Err(err(format!("short note at offset {pos}")));
            };
            // Prelinked files: adjust by how far .stapsdt.base moved.
            if let Some(actual) = base_addr
                && base != 0
            {
                let delta = actual.wrapping_sub(base);
                pc = pc.wrapping_add(delta);
                if sema != 0 {
                    sema = sema.wrapping_add(delta);
                }
            }
            let mut strs = d.get(24..).unwrap_or(&[]).split(|&c| c == 0);
            let mut next_str = || String::from_utf8_lossy(strs.next().unwrap_or(&[])).into_owned();
            let (provider, name, args_text) = (next_str(), next_str(), next_str());
            let mut args = Vec::new();
            for a in args_text.split_whitespace() {
                args.push(parse_arg(a).map_err(|message| UsdtError::BadArg {
                    path: shown.clone(),
                    provider: provider.clone(),
                    name: name.clone(),
                    arg: a.into(),
                    message,
                })?);
            }
            let offset = crate::uprobe::address_to_offset(&elf, pc).ok_or_else(|| {
                err(format!(
                    "probe {provider}:{name} at {pc:#x} is in no loadable segment"
                ))
            })?;
            let semaphore = if sema == 0 {
                0
            } else {
                sema_offset(&elf, sema).ok_or_else(|| {
                    err(format!(
                        "probe {provider}:{name}: semaphore {sema:#x} is in no section"
                    ))
                })?
            };
            out.push(Probe {
                provider,
                name,
                offset,
                semaphore,
                args,
                args_text,
            });
        }
        pos = next;
    }
    Ok(out)
}

/// The probes `provider:name` of `path` (`*` for any provider; one per
/// site the compiler emitted), or an error listing the probes the file
/// has.
pub fn find(path: &Path, provider: &str, name: &str) -> Result<Vec<Probe>, UsdtError> {
    let all = probes(path)?;
    let hits: Vec<Probe> = all
        .iter()
        .filter(|p| (provider == "*" || p.provider == provider) && p.name == name)
        .cloned()
        .collect();
    if hits.is_empty() {
        let mut known: Vec<String> = all
            .iter()
            .map(|p| format!("{}:{}", p.provider, p.name))
            .collect();
        known.sort();
        known.dedup();
        return Err(UsdtError::NoProbe {
            path: path.display().to_string(),
            provider: provider.into(),
            name: name.into(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    }
    Ok(hits)
}

/// Size of `struct __bpf_usdt_spec` (bpf/usdt.bpf.h): 12 argument specs of
/// 16 bytes, the cookie, the argument count, padded to 8.
pub const SPEC_SIZE: usize = 208;

/// The `struct __bpf_usdt_spec` bytes for a probe (`cookie`: the user's
/// `bpf_usdt_cookie()` value).
pub fn spec_bytes(p: &Probe, cookie: u64) -> Vec<u8> {
    let mut b = vec![0u8; SPEC_SIZE];
    for (i, a) in p.args.iter().take(12).enumerate() {
        let o = i * 16;
        // enum __bpf_usdt_arg_type: CONST 0, REG 1, REG_DEREF 2.
        let (val_off, kind, reg): (u64, u32, i16) = match a.loc {
            Loc::Const(v) => (v as u64, 0, 0),
            Loc::Reg(r) => (0, 1, r as i16),
            Loc::Deref { reg, off } => (off as u64, 2, reg as i16),
        };
        b[o..o + 8].copy_from_slice(&val_off.to_le_bytes());
        b[o + 8..o + 12].copy_from_slice(&kind.to_le_bytes());
        b[o + 12..o + 14].copy_from_slice(&reg.to_le_bytes());
        b[o + 14] = u8::from(a.signed);
        b[o + 15] = 64 - a.size * 8;
    }
    b[192..200].copy_from_slice(&cookie.to_le_bytes());
    b[200..202].copy_from_slice(&(p.args.len().min(12) as i16).to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_specs() {
        assert_eq!(
            parse_arg("-4@%edi").unwrap(),
            Arg {
                size: 4,
                signed: true,
                loc: Loc::Reg(112)
            }
        );
        assert_eq!(
            parse_arg("8@-8(%rbp)").unwrap(),
            Arg {
                size: 8,
                signed: false,
                loc: Loc::Deref { reg: 32, off: -8 }
            }
        );
        assert_eq!(parse_arg("4@$5").unwrap().loc, Loc::Const(5));
        assert_eq!(parse_arg("1@%r9b").unwrap().loc, Loc::Reg(64));
        assert_eq!(
            parse_arg("8@(%rsp)").unwrap().loc,
            Loc::Deref { reg: 152, off: 0 }
        );
        assert!(parse_arg("3@%eax").is_err());
        assert!(
            parse_arg("4@%xmm0")
                .unwrap_err()
                .contains("unknown register")
        );
        assert!(parse_arg("8@8(%rax,%rbx,2)").is_err());
    }

    #[test]
    fn spec_layout() {
        let p = Probe {
            provider: "p".into(),
            name: "n".into(),
            offset: 0,
            semaphore: 0,
            args: vec![parse_arg("-4@%edi").unwrap(), parse_arg("8@$-3").unwrap()],
            args_text: String::new(),
        };
        let b = spec_bytes(&p, 7);
        assert_eq!(&b[8..12], &1u32.to_le_bytes()); // REG
        assert_eq!(&b[12..14], &112i16.to_le_bytes());
        assert_eq!((b[14], b[15]), (1, 32));
        assert_eq!(&b[16..24], &(-3i64).to_le_bytes());
        assert_eq!(b[31], 0);
        assert_eq!(&b[192..200], &7u64.to_le_bytes());
        assert_eq!(&b[200..202], &2i16.to_le_bytes());
    }
}
