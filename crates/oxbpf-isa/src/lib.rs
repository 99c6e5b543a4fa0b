//! # oxbpf-isa: the eBPF instruction set (RFC 9669)
//!
//! Three layers, each usable on its own:
//! * [`raw`]: the 8-byte wire format ([`RawInsn`]) and the kernel's opcode constants;
//! * [`insn`]: the typed form ([`Instruction`]) that the rest of oxbpf matches on;
//! * [`codec`] and [`disasm`]: strict decoding, encoding, and LLVM-dialect text.
//!
//! The key design decision is that decoding is *strict*: a reserved field that
//! is not zero is an error naming the instruction index, never silently
//! ignored. That makes `encode(decode(bytes)) == bytes` a law that property
//! tests check, and lets every later stage trust the typed form.
//!
//! This crate has no dependencies on the rest of oxbpf and does no IO.
#![forbid(unsafe_code)]

pub mod codec;
pub mod disasm;
pub mod insn;
pub mod raw;

pub use codec::{DecodeError, Located, decode, decode_at, decode_bytes, encode_all};
pub use disasm::{Hex, listing};
pub use insn::*;
pub use raw::{INSN_SIZE, RawInsn, raw_slots, slots_to_bytes};

/// Decodes bytes and encodes them back as bytes; used by round-trip tests.
pub fn reencode(bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let insns = decode_bytes(bytes)?;
    Ok(slots_to_bytes(&encode_all(insns.iter().map(|l| &l.insn))))
}
