//! The bpftrace language, compiled by oxbpf itself: source text to eBPF
//! programs and map definitions, with no LLVM and no clang.
//!
//! The pipeline: [`lexer`] (tokens with spans) → [`parser`] (the
//! [`ast`]) → type checking and code generation (later modules). Every
//! error is a [`Diagnostic`] naming `file:line:col` with the source line
//! and a caret under the place. The compiler does no IO: what it needs
//! from the running system (tracepoint formats, BTF) comes through the
//! caller.

pub mod aot;
pub mod asm;
pub mod ast;
pub mod codegen;
pub mod ctypes;
pub mod diag;
pub mod format;
pub mod headers;
pub mod layout;
pub mod lexer;
pub mod output;
pub mod parser;
pub mod ppexpr;
pub mod probes;
pub mod types;

pub use codegen::{Compiled, Env, Options, compile, lost_records};
pub use diag::{Diagnostic, Span};
pub use parser::{parse, parse_with};
