//! # oxbpf-conformance: the bpf_conformance test format and runner
//!
//! A `.data` file has sections introduced by `-- name` lines:
//! `-- asm` (program text), `-- raw` (one 64-bit little-endian slot per
//! number, taking precedence over `asm`), `-- mem` (hex bytes given to the
//! program as `r1`, with `r2` = its length), `-- result` (expected `r0`) and
//! `-- error` (the program must be rejected or fail). Other sections
//! (`-- c`, `-- no register offset`) are documentation and ignored.
//!
//! Engines plug in through [`Engine`], so the same files check the
//! interpreter, the JIT and the kernel.
#![forbid(unsafe_code)]

pub mod engines;

use std::path::{Path, PathBuf};

/// One parsed test file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestCase {
    pub name: String,
    pub asm: Option<String>,
    /// First line of the `asm` section in the file (for diagnostics).
    pub asm_line: usize,
    pub raw: Option<Vec<u64>>,
    pub mem: Vec<u8>,
    pub result: Option<u64>,
    pub error: Option<String>,
}

/// A file that is not in the expected format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if let Some(n) = s.strip_prefix('-') {
        n.parse::<u64>().ok().map(|v| v.wrapping_neg())
    } else {
        s.parse().ok()
    }
}

/// Parses the text of a `.data` file.
pub fn parse(name: &str, text: &str) -> Result<TestCase, ParseError> {
    #[derive(PartialEq)]
    enum Sec {
        None,
        Asm,
        Raw,
        Mem,
        Result,
        Error,
        Ignored,
    }
    let mut case = TestCase {
        name: name.to_string(),
        ..Default::default()
    };
    let mut sec = Sec::None;
    let mut asm = String::new();
    let mut raw = Vec::new();
    let mut has_raw = false;
    let mut result_text: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if let Some(h) = line.strip_prefix("--") {
            sec = match h.trim() {
                "asm" => {
                    case.asm_line = lineno + 1;
                    Sec::Asm
                }
                "raw" => {
                    has_raw = true;
                    Sec::Raw
                }
                "mem" => Sec::Mem,
                "result" => Sec::Result,
                "error" => Sec::Error,
                _ => Sec::Ignored,
            };
            continue;
        }
        match sec {
            Sec::Asm => {
                // Keep line numbering aligned with the file.
                asm.push_str(line);
                asm.push('\n');
            }
            Sec::None | Sec::Ignored => {}
            _ if line.trim().is_empty() || line.trim_start().starts_with('#') => {}
            Sec::Raw => {
                for w in line.split_whitespace() {
                    raw.push(parse_number(w).ok_or(ParseError {
                        line: lineno,
                        message: format!("invalid raw instruction `{w}`"),
                    })?);
                }
            }
            Sec::Mem => {
                for w in line.split_whitespace() {
                    let b = u8::from_str_radix(w, 16).map_err(|_| ParseError {
                        line: lineno,
                        message: format!("invalid memory byte `{w}` (expected two hex digits)"),
                    })?;
                    case.mem.push(b);
                }
            }
            Sec::Result => result_text = Some((lineno, line.trim().to_string())),
            Sec::Error => case.error = Some(line.trim().to_string()),
        }
    }
    if let Some((line, t)) = result_text {
        case.result = Some(parse_number(&t).ok_or(ParseError {
            line,
            message: format!("invalid result `{t}`"),
        })?);
    }
    if !asm.trim().is_empty() {
        case.asm = Some(asm);
    }
    if has_raw {
        case.raw = Some(raw);
    }
    if case.asm.is_none() && case.raw.is_none() {
        return Err(ParseError {
            line: 1,
            message: "no `-- asm` or `-- raw` section".into(),
        });
    }
    if case.result.is_none() && case.error.is_none() {
        return Err(ParseError {
            line: 1,
            message: "no `-- result` or `-- error` section".into(),
        });
    }
    Ok(case)
}

impl TestCase {
    /// The program bytes: `raw` when present, otherwise the assembled `asm`.
    pub fn program(&self) -> Result<Vec<u8>, String> {
        if let Some(raw) = &self.raw {
            return Ok(raw.iter().flat_map(|w| w.to_le_bytes()).collect());
        }
        let asm = self.asm.as_deref().unwrap_or_default();
        oxbpf_asm::assemble_bytes(asm).map_err(|errs| {
            errs.0
                .iter()
                .map(|e| {
                    format!(
                        "{}:{}:{}: {}",
                        self.name,
                        e.line + self.asm_line - 1,
                        e.column,
                        e.message
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    }
}

/// A program an engine could not load or run to completion: the rejection
/// or fault, as the engine words it (a test's `-- error` section matches a
/// substring of it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunError {
    pub message: String,
}

impl From<String> for RunError {
    fn from(message: String) -> RunError {
        RunError { message }
    }
}

/// Something that can run a program on memory and return `r0`.
pub trait Engine {
    fn name(&self) -> &str;
    /// Loads and runs; `Err` carries the rejection or fault.
    fn run(&self, program: &[u8], mem: &mut [u8]) -> Result<u64, RunError>;
    /// How many low bits of r0 the engine reports (the kernel's test runs
    /// return 32); results are compared on those bits.
    fn result_bits(&self) -> u32 {
        64
    }
}

/// The result of one test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail { expected: String, actual: String },
}

/// Runs one test case on an engine.
pub fn run_case(case: &TestCase, engine: &dyn Engine) -> Outcome {
    let program = match case.program() {
        Ok(p) => p,
        Err(e) => {
            return Outcome::Fail {
                expected: "a program that assembles".into(),
                actual: e,
            };
        }
    };
    let mut mem = case.mem.clone();
    let mask = if engine.result_bits() >= 64 {
        u64::MAX
    } else {
        (1u64 << engine.result_bits()) - 1
    };
    let got = engine.run(&program, &mut mem).map(|v| v & mask);
    let want_masked = case.result.map(|v| v & mask);
    match (&case.error, case.result, got) {
        // The error text must appear in the engine's message, so a test
        // checks that a program fails for the right reason.
        (Some(e), _, Err(err)) if err.message.contains(e.as_str()) => Outcome::Pass,
        (Some(e), _, Err(msg)) => Outcome::Fail {
            expected: format!("error containing `{e}`"),
            actual: format!("error: {msg}"),
        },
        (Some(e), _, Ok(v)) => Outcome::Fail {
            expected: format!("error `{e}`"),
            actual: format!("{v:#x}"),
        },
        (None, Some(_), Ok(v)) if Some(v) == want_masked => Outcome::Pass,
        (None, want, Ok(v)) => Outcome::Fail {
            expected: format!("{:#x}", want.unwrap_or(0)),
            actual: format!("{v:#x}"),
        },
        (None, want, Err(e)) => Outcome::Fail {
            expected: format!("{:#x}", want.unwrap_or(0)),
            actual: format!("error: {e}"),
        },
    }
}

/// Lists the `.data` files named by `paths` (files, or directories searched
/// recursively), sorted.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            // A file named explicitly is taken whatever its extension.
            std::fs::metadata(p)?;
            out.push(p.clone());
        }
    }
    out.sort();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "data") {
            out.push(p);
        }
    }
    Ok(())
}

/// Totals of a run over many files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<(String, String)>,
}

/// Runs every file; `report` is called with each failure as it happens.
pub fn run_files(
    files: &[PathBuf],
    engine: &dyn Engine,
    mut report: impl FnMut(&str, &str),
) -> Summary {
    let mut s = Summary::default();
    for f in files {
        let name = f.display().to_string();
        let outcome = match std::fs::read_to_string(f) {
            Err(e) => Outcome::Fail {
                expected: "a readable file".into(),
                actual: e.to_string(),
            },
            Ok(text) => match parse(&name, &text) {
                Err(e) => Outcome::Fail {
                    expected: "a valid test file".into(),
                    actual: e.to_string(),
                },
                Ok(case) => run_case(&case, engine),
            },
        };
        match outcome {
            Outcome::Pass => s.passed += 1,
            Outcome::Fail { expected, actual } => {
                let msg = format!("expected {expected}, got {actual}");
                report(&name, &msg);
                s.failed += 1;
                s.failures.push((name, msg));
            }
        }
    }
    s
}
