//! Addresses to symbols, through blazesym: kernel addresses by
//! /proc/kallsyms, a process's addresses by the ELF (and DWARF, where the
//! files have it) symbols of the files mapped into it (/proc/PID/maps).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use blazesym::symbolize::source::{Elf, Kernel, Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer as Inner};

/// One symbolized address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub addr: u64,
    /// The function, when found.
    pub name: Option<String>,
    /// The address's offset into the function.
    pub offset: u64,
    /// The file holding it (a binary, a library, `[kernel]`).
    pub module: Option<String>,
    /// Source file and line, when debug information has them.
    pub source: Option<(String, u32)>,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) if self.offset != 0 => write!(f, "{n}+{:#x}", self.offset)?,
            Some(n) => f.write_str(n)?,
            None => write!(f, "{:#x}", self.addr)?,
        }
        if let Some((file, line)) = &self.source {
            write!(f, " ({file}:{line})")?;
        }
        Ok(())
    }
}

/// One file-backed mapping of a process, from /proc/PID/maps.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    file_offset: u64,
    path: String,
}

/// A symbolizer; it caches parsed files across calls. The first time it
/// sees a process it keeps that process's file mappings, so that the
/// addresses of a process that exits before its stacks are printed (a
/// short-lived command, records read after it ended) still resolve
/// through the files it had mapped.
pub struct Symbolizer {
    inner: Inner,
    maps: Mutex<HashMap<u32, Arc<Vec<Mapping>>>>,
}

impl Default for Symbolizer {
    fn default() -> Symbolizer {
        Symbolizer {
            inner: Inner::new(),
            maps: Mutex::new(HashMap::new()),
        }
    }
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Symbolizer")
    }
}

impl Symbolizer {
    pub fn new() -> Symbolizer {
        Symbolizer::default()
    }

    /// Kernel addresses (a kernel stack).
    pub fn kernel(&self, addrs: &[u64]) -> Vec<Frame> {
        let src = Source::Kernel(Kernel::default());
        self.run(&src, addrs, Some("[kernel]"))
    }

    /// Addresses in process `pid` (a user stack). The addresses of a
    /// process that has exited resolve through the mappings it had when
    /// this symbolizer first saw it; a process never seen alive leaves
    /// its addresses as numbers.
    pub fn user(&self, pid: u32, addrs: &[u64]) -> Vec<Frame> {
        let maps = {
            let mut all = self.maps.lock().unwrap_or_else(|e| e.into_inner());
            all.entry(pid)
                .or_insert_with(|| Arc::new(read_maps(pid)))
                .clone()
        };
        let src = Source::Process(Process::new(pid.into()));
        let mut frames = self.run(&src, addrs, None);
        for f in frames.iter_mut().filter(|f| f.name.is_none()) {
            let Some(m) = maps.iter().find(|m| (m.start..m.end).contains(&f.addr)) else {
                continue;
            };
            let src = Source::Elf(Elf::new(&m.path));
            let off = f.addr - m.start + m.file_offset;
            if let Ok(mut sym) = self.inner.symbolize(&src, Input::FileOffset(&[off]))
                && let Some(Symbolized::Sym(sym)) = sym.pop()
            {
                *f = frame(f.addr, &sym, Some(&m.path));
            }
        }
        frames
    }

    fn run(&self, src: &Source<'_>, addrs: &[u64], module: Option<&str>) -> Vec<Frame> {
        let raw = |a: u64| Frame {
            addr: a,
            name: None,
            offset: 0,
            module: module.map(String::from),
            source: None,
        };
        let Ok(syms) = self.inner.symbolize(src, Input::AbsAddr(addrs)) else {
            return addrs.iter().map(|&a| raw(a)).collect();
        };
        addrs
            .iter()
            .zip(syms)
            .map(|(&a, s)| match s {
                Symbolized::Sym(sym) => frame(a, &sym, module),
                Symbolized::Unknown(_) => raw(a),
            })
            .collect()
    }
}

/// A frame from blazesym's symbol; `module` where the symbol names none.
fn frame(addr: u64, sym: &blazesym::symbolize::Sym<'_>, module: Option<&str>) -> Frame {
    Frame {
        addr,
        name: Some(sym.name.to_string()),
        offset: sym.offset as u64,
        module: sym
            .module
            .as_ref()
            .map(|m| m.to_string_lossy().into_owned())
            .or_else(|| module.map(String::from)),
        source: sym.code_info.as_ref().and_then(|c| {
            let line = c.line?;
            Some((c.to_path().display().to_string(), line))
        }),
    }
}

/// The file-backed mappings of process `pid`; none when it has gone.
fn read_maps(pid: u32) -> Vec<Mapping> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|t| parse_maps(&t))
        .unwrap_or_default()
}

/// Lines of /proc/PID/maps (`START-END PERMS OFFSET DEV INODE PATH`) with
/// an absolute path.
fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (start, end) = f.next()?.split_once('-')?;
            let _perms = f.next()?;
            let off = f.next()?;
            let (_dev, _inode) = (f.next()?, f.next()?);
            let path = f.collect::<Vec<_>>().join(" ");
            if !path.starts_with('/') || path.ends_with(" (deleted)") {
                return None;
            }
            Some(Mapping {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
                file_offset: u64::from_str_radix(off, 16).ok()?,
                path,
            })
        })
        .collect()
}

/// The addresses of a stack-trace map value: 64-bit words up to the first
/// zero.
pub fn stack_addresses(value: &[u8]) -> Vec<u64> {
    value
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
        .take_while(|&a| a != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn here() -> u64 {
        here as *const () as usize as u64
    }

    #[test]
    fn own_functions_symbolize() {
        let s = Symbolizer::new();
        let f = s.user(std::process::id(), &[here() + 1]);
        let name = f[0].name.clone().unwrap_or_default();
        assert!(name.contains("here"), "{f:?}");
        assert_eq!(f[0].offset, 1);
    }

    #[test]
    fn maps_lines_parse() {
        let t = "55d0c0a00000-55d0c0a01000 r-xp 00001000 08:01 1234 /usr/bin/my prog\n\
                 7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n\
                 7f0000000000-7f0000001000 r-xp 00002000 08:01 99 /tmp/gone (deleted)\n\
                 junk\n";
        assert_eq!(
            parse_maps(t),
            [Mapping {
                start: 0x55d0c0a00000,
                end: 0x55d0c0a01000,
                file_offset: 0x1000,
                path: "/usr/bin/my prog".into(),
            }]
        );
    }

    #[test]
    fn an_exited_process_symbolizes_through_its_mappings() {
        // The mappings kept for a "process" are this test's own; the pid
        // is one that cannot exist, as after an exit.
        let s = Symbolizer::new();
        let own = read_maps(std::process::id());
        let gone = u32::MAX - 1;
        s.maps.lock().unwrap().insert(gone, Arc::new(own));
        let f = s.user(gone, &[here() + 1]);
        let name = f[0].name.clone().unwrap_or_default();
        assert!(name.contains("here"), "{f:?}");
        assert_eq!(f[0].offset, 1);
    }

    #[test]
    fn stack_values_end_at_zero() {
        let mut v = Vec::new();
        for a in [0x10u64, 0x20, 0, 0x30] {
            v.extend_from_slice(&a.to_le_bytes());
        }
        assert_eq!(stack_addresses(&v), [0x10, 0x20]);
    }
}
