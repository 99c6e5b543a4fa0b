//! User-space probes: where in a file a function is (libbpf's rules), and
//! which file a library name means.
//!
//! Symbols (`elf_resolve_syms_offsets` in libbpf): `.dynsym` first, then
//! `.symtab`; functions only (`STT_FUNC`, `STT_GNU_IFUNC`); a name matches
//! with or without its version (`malloc` finds `malloc@@GLIBC_2.2.5`); a
//! global definition wins over a weak one, and two different global
//! definitions are ambiguous. The probe address is a *file offset*: the
//! symbol's address minus its segment's (`PT_LOAD`) virtual address plus
//! the segment's file offset.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol, SymbolKind};

/// Why a probe target cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UprobeError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("{path}: no function `{symbol}` (looked in .dynsym and .symtab)")]
    NoSymbol { path: String, symbol: String },
    #[error("{path}: `{symbol}` is defined more than once ({addresses})")]
    Ambiguous {
        path: String,
        symbol: String,
        addresses: String,
    },
    #[error(
        "library `{0}` not found (searched LD_LIBRARY_PATH, /etc/ld.so.cache and the standard directories)"
    )]
    NoLibrary(String),
    #[error("`{0}` not found in PATH")]
    NoBinary(String),
}

/// The file a probe path names: a path with a `/` as given; a library
/// name (`libc.so.6`, anything with `.so`) through LD_LIBRARY_PATH,
/// /etc/ld.so.cache and the standard directories; another bare name
/// through PATH (as libbpf resolves them).
pub fn resolve_path(name: &str) -> Result<PathBuf, UprobeError> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    if name.contains(".so") {
        let mut dirs: Vec<PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        if let Some(p) = ld_so_cache(Path::new("/etc/ld.so.cache"), name) {
            return Ok(p);
        }
        dirs.extend(
            [
                "/lib64",
                "/usr/lib64",
                "/lib/x86_64-linux-gnu",
                "/usr/lib/x86_64-linux-gnu",
                "/lib",
                "/usr/lib",
                "/usr/local/lib",
            ]
            .map(PathBuf::from),
        );
        return dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| UprobeError::NoLibrary(name.into()));
    }
    let in_path = std::env::var_os("PATH").and_then(|v| {
        std::env::split_paths(&v)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    // `libc`, as bpftrace takes it: the cached library `libc.so…`.
    let library = || {
        let prefix = format!("{name}.so");
        name.starts_with("lib")
            .then(|| {
                ld_so_cache_where(Path::new("/etc/ld.so.cache"), |k| {
                    k.starts_with(prefix.as_bytes())
                })
            })
            .flatten()
    };
    in_path
        .or_else(library)
        .ok_or_else(|| UprobeError::NoBinary(name.into()))
}

/// Looks `name` up in glibc's ld.so.cache (the "glibc-ld.so.cache1.1"
/// format: a header with the entry count, then 24-byte entries whose key
/// and value are offsets of NUL-terminated strings from the file start).
pub fn ld_so_cache(cache: &Path, name: &str) -> Option<PathBuf> {
    ld_so_cache_where(cache, |k| k == name.as_bytes())
}

/// The first library in glibc's ld.so.cache whose name satisfies `want`.
pub fn ld_so_cache_where(cache: &Path, want: impl Fn(&[u8]) -> bool) -> Option<PathBuf> {
    let b = std::fs::read(cache).ok()?;
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    // An old-format cache ("ld.so-1.7.0") may precede the new one.
    let start = b.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let u32_at =
        |o: usize| -> Option<u32> { Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?)) };
    let n = u32_at(start + MAGIC.len())? as usize;
    let entries = start + 48;
    let cstr = |o: usize| -> Option<&[u8]> {
        let s = b.get(o..)?;
        Some(&s[..s.iter().position(|&c| c == 0)?])
    };
    (0..n.min(1 << 20)).find_map(|i| {
        let e = entries + i * 24;
        let key = cstr(u32_at(e + 4)? as usize)?;
        let value = cstr(u32_at(e + 8)? as usize)?;
        want(key).then(|| PathBuf::from(String::from_utf8_lossy(value).into_owned()))
    })
}

fn file_error(path: &Path, message: String) -> UprobeError {
    UprobeError::File {
        path: path.display().to_string(),
        message,
    }
}

fn parse_elf<'d>(path: &Path, data: &'d [u8]) -> Result<object::File<'d>, UprobeError> {
    object::File::parse(data).map_err(|e| file_error(path, format!("not an ELF file: {e}")))
}

/// The file offset of function `symbol` in the ELF file `path`.
pub fn symbol_offset(path: &Path, symbol: &str) -> Result<u64, UprobeError> {
    let shown = path.display().to_string();
    let file_err = |message: String| file_error(path, message);
    let data = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let elf = parse_elf(path, &data)?;
    let matches = |name: &str| name == symbol || name.split('@').next() == Some(symbol);
    // (address, global)
    let mut found: Vec<(u64, bool)> = Vec::new();
    for table in [elf.dynamic_symbols(), elf.symbols()] {
        for s in table {
            let is_func = s.kind() == SymbolKind::Text;
            if !is_func || s.is_undefined() || s.address() == 0 {
                continue;
            }
            if s.name().is_ok_and(matches) {
                found.push((s.address(), !s.is_weak()));
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    if found.is_empty() {
        return Err(UprobeError::NoSymbol {
            path: shown,
            symbol: symbol.into(),
        });
    }
    // Globals win over weak definitions; the same address twice (a symbol
    // and its versioned alias) is one definition.
    let any_global = found.iter().any(|&(_, g)| g);
    let mut addrs: Vec<u64> = found
        .iter()
        .filter(|&&(_, g)| g || !any_global)
        .map(|&(a, _)| a)
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.len() > 1 {
        return Err(UprobeError::Ambiguous {
            path: shown,
            symbol: symbol.into(),
            addresses: addrs
                .iter()
                .map(|a| format!("{a:#x}"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    address_to_offset(&elf, addrs[0]).ok_or_else(|| {
        file_err(format!(
            "{symbol} at {:#x} is in no loadable segment",
            addrs[0]
        ))
    })
}

/// The address of symbol `symbol` (a function or a variable) in the
/// executable `path`, as `uaddr()` gives it: position-dependent
/// executables only, since a PIE's addresses are known only once it runs.
pub fn symbol_address(path: &Path, symbol: &str) -> Result<u64, UprobeError> {
    let shown = path.display().to_string();
    let file_err = |message: String| file_error(path, message);
    let data = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let elf = parse_elf(path, &data)?;
    if elf.kind() != object::ObjectKind::Executable {
        return Err(file_err(format!(
            "is position-independent: `{symbol}`'s address is known only in a running process"
        )));
    }
    let matches = |name: &str| name == symbol || name.split('@').next() == Some(symbol);
    elf.symbols()
        .chain(elf.dynamic_symbols())
        .find(|s| !s.is_undefined() && s.address() != 0 && s.name().is_ok_and(matches))
        .map(|s| s.address())
        .ok_or(UprobeError::NoSymbol {
            path: shown,
            symbol: symbol.into(),
        })
}

/// Every function whose name matches the glob `pattern`, with its file
/// offset (uprobe.multi targets), sorted by name; duplicates by address
/// are listed once.
pub fn matching_functions(path: &Path, pattern: &str) -> Result<Vec<(String, u64)>, UprobeError> {
    let file_err = |message: String| file_error(path, message);
    let data = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let elf = parse_elf(path, &data)?;
    let mut out: Vec<(String, u64)> = Vec::new();
    for table in [elf.dynamic_symbols(), elf.symbols()] {
        for s in table {
            if s.kind() != SymbolKind::Text || s.is_undefined() || s.address() == 0 {
                continue;
            }
            let Ok(name) = s.name() else { continue };
            let base = name.split('@').next().unwrap_or(name);
            if oxbpf_sys::perf::glob_match(pattern, base)
                && let Some(off) = address_to_offset(&elf, s.address())
                && !out.iter().any(|(_, o)| *o == off)
            {
                out.push((base.to_string(), off));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A virtual address's file offset, through the loadable segment that
/// holds it.
pub(crate) fn address_to_offset(elf: &object::File<'_>, addr: u64) -> Option<u64> {
    elf.segments().find_map(|seg| {
        let (start, size) = (seg.address(), seg.size());
        let (file_off, _) = seg.file_range();
        (addr >= start && addr < start + size).then(|| addr - start + file_off)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libc_functions_resolve_like_libbpf() {
        let libc = resolve_path("libc.so.6").expect("libc.so.6 through ld.so.cache");
        assert!(libc.is_file(), "{}", libc.display());
        let off = symbol_offset(&libc, "malloc").unwrap();
        assert!(off > 0);
        // The versioned name finds the same function.
        let data = std::fs::read(&libc).unwrap();
        let elf = object::File::parse(&*data).unwrap();
        let versioned = elf
            .dynamic_symbols()
            .find(|s| s.name().is_ok_and(|n| n.starts_with("malloc@")))
            .map(|s| s.name().unwrap().to_string());
        if let Some(v) = versioned {
            assert_eq!(symbol_offset(&libc, &v).unwrap(), off);
        }
        let e = symbol_offset(&libc, "no_such_function_anywhere").unwrap_err();
        assert!(
            e.to_string().ends_with(
                "no function `no_such_function_anywhere` (looked in .dynsym and .symtab)"
            ),
            "{e}"
        );
    }

    #[test]
    fn names_without_a_slash_search_path_and_libraries() {
        assert!(resolve_path("sh").unwrap().is_file());
        assert!(matches!(
            resolve_path("libno_such_lib.so.9"),
            Err(UprobeError::NoLibrary(_))
        ));
        assert!(matches!(
            resolve_path("no-such-binary-here"),
            Err(UprobeError::NoBinary(_))
        ));
    }

    #[test]
    fn globs_over_functions() {
        let libc = resolve_path("libc.so.6").unwrap();
        let fns = matching_functions(&libc, "pthread_mutex_*lock").unwrap();
        let names: Vec<&str> = fns.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"pthread_mutex_lock"), "{names:?}");
        assert!(names.contains(&"pthread_mutex_unlock"), "{names:?}");
    }
}
