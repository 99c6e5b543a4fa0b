//! Addresses to symbols, through blazesym: kernel addresses by
//! /proc/kallsyms, a process's addresses by the ELF (and DWARF, where the
//! files have it) symbols of the files mapped into it (/proc/PID/maps).

use std::fmt;

use blazesym::symbolize::source::{Kernel, Process, Source};
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

/// A symbolizer; it caches parsed files across calls.
pub struct Symbolizer {
    inner: Inner,
}

impl Default for Symbolizer {
    fn default() -> Symbolizer {
        Symbolizer {
            inner: Inner::new(),
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

    /// Addresses in process `pid` (a user stack). A process that has
    /// exited leaves its addresses as numbers.
    pub fn user(&self, pid: u32, addrs: &[u64]) -> Vec<Frame> {
        let src = Source::Process(Process::new(pid.into()));
        self.run(&src, addrs, None)
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
                Symbolized::Sym(sym) => Frame {
                    addr: a,
                    name: Some(sym.name.to_string()),
                    offset: sym.offset as u64,
                    module: sym
                        .module
                        .map(|m| m.to_string_lossy().into_owned())
                        .or_else(|| module.map(String::from)),
                    source: sym.code_info.and_then(|c| {
                        let line = c.line?;
                        Some((c.to_path().display().to_string(), line))
                    }),
                },
                Symbolized::Unknown(_) => raw(a),
            })
            .collect()
    }
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
    fn stack_values_end_at_zero() {
        let mut v = Vec::new();
        for a in [0x10u64, 0x20, 0, 0x30] {
            v.extend_from_slice(&a.to_le_bytes());
        }
        assert_eq!(stack_addresses(&v), [0x10, 0x20]);
    }
}
