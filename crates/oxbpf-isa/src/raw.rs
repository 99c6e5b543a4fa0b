//! The 8-byte wire format of one instruction slot, and opcode constants.
//!
//! Names follow the kernel UAPI (`include/uapi/linux/bpf_common.h`, `bpf.h`)
//! because those are the words eBPF developers already know.

/// Size of one instruction slot in bytes.
pub const INSN_SIZE: usize = 8;

// Instruction classes (low 3 bits of the opcode).
pub const BPF_LD: u8 = 0x00;
pub const BPF_LDX: u8 = 0x01;
pub const BPF_ST: u8 = 0x02;
pub const BPF_STX: u8 = 0x03;
pub const BPF_ALU: u8 = 0x04;
pub const BPF_JMP: u8 = 0x05;
pub const BPF_JMP32: u8 = 0x06;
pub const BPF_ALU64: u8 = 0x07;

// Source operand bit for ALU and JMP classes.
pub const BPF_K: u8 = 0x00;
pub const BPF_X: u8 = 0x08;

// Load/store size (bits 3-4) and mode (bits 5-7).
pub const BPF_W: u8 = 0x00;
pub const BPF_H: u8 = 0x08;
pub const BPF_B: u8 = 0x10;
pub const BPF_DW: u8 = 0x18;
pub const BPF_IMM: u8 = 0x00;
pub const BPF_ABS: u8 = 0x20;
pub const BPF_IND: u8 = 0x40;
pub const BPF_MEM: u8 = 0x60;
pub const BPF_MEMSX: u8 = 0x80;
pub const BPF_ATOMIC: u8 = 0xc0;
/// The size bits of a load/store opcode.
pub const BPF_SIZE_MASK: u8 = 0x18;
/// The mode bits of a load/store opcode.
pub const BPF_MODE_MASK: u8 = 0xe0;

// ALU operations (bits 4-7).
pub const BPF_ADD: u8 = 0x00;
pub const BPF_SUB: u8 = 0x10;
pub const BPF_MUL: u8 = 0x20;
pub const BPF_DIV: u8 = 0x30;
pub const BPF_OR: u8 = 0x40;
pub const BPF_AND: u8 = 0x50;
pub const BPF_LSH: u8 = 0x60;
pub const BPF_RSH: u8 = 0x70;
pub const BPF_NEG: u8 = 0x80;
pub const BPF_MOD: u8 = 0x90;
pub const BPF_XOR: u8 = 0xa0;
pub const BPF_MOV: u8 = 0xb0;
pub const BPF_ARSH: u8 = 0xc0;
pub const BPF_END: u8 = 0xd0;

// Jump operations (bits 4-7).
pub const BPF_JA: u8 = 0x00;
pub const BPF_JEQ: u8 = 0x10;
pub const BPF_JGT: u8 = 0x20;
pub const BPF_JGE: u8 = 0x30;
pub const BPF_JSET: u8 = 0x40;
pub const BPF_JNE: u8 = 0x50;
pub const BPF_JSGT: u8 = 0x60;
pub const BPF_JSGE: u8 = 0x70;
pub const BPF_CALL: u8 = 0x80;
pub const BPF_EXIT: u8 = 0x90;
pub const BPF_JLT: u8 = 0xa0;
pub const BPF_JLE: u8 = 0xb0;
pub const BPF_JSLT: u8 = 0xc0;
pub const BPF_JSLE: u8 = 0xd0;

// Byte-order source bit for BPF_END.
pub const BPF_TO_LE: u8 = 0x00;
pub const BPF_TO_BE: u8 = 0x08;

// Atomic operation codes carried in `imm`.
pub const BPF_FETCH: i32 = 0x01;
pub const BPF_XCHG: i32 = 0xe0 | BPF_FETCH;
pub const BPF_CMPXCHG: i32 = 0xf0 | BPF_FETCH;

// `src_reg` values of BPF_CALL.
pub const BPF_PSEUDO_CALL: u8 = 1;
pub const BPF_PSEUDO_KFUNC_CALL: u8 = 2;

// `src_reg` values of `lddw` (BPF_LD | BPF_IMM | BPF_DW).
pub const BPF_PSEUDO_MAP_FD: u8 = 1;
pub const BPF_PSEUDO_MAP_VALUE: u8 = 2;
pub const BPF_PSEUDO_BTF_ID: u8 = 3;
pub const BPF_PSEUDO_FUNC: u8 = 4;
pub const BPF_PSEUDO_MAP_IDX: u8 = 5;
pub const BPF_PSEUDO_MAP_IDX_VALUE: u8 = 6;

/// Opcode of the first slot of a 64-bit immediate load.
pub const LDDW: u8 = BPF_LD | BPF_IMM | BPF_DW;

/// Every opcode byte by name (`ADD64_K` = `BPF_ALU64 | BPF_ADD | BPF_K`,
/// `JEQ32_X` = `BPF_JMP32 | BPF_JEQ | BPF_X`, `LDXSB` = sign-extending byte
/// load), for matching on whole opcodes as the interpreter does.
pub mod opcode {
    use super::*;

    pub use super::LDDW;

    pub const ADD64_K: u8 = BPF_ALU64 | BPF_ADD | BPF_K;
    pub const ADD64_X: u8 = BPF_ALU64 | BPF_ADD | BPF_X;
    pub const ADD32_K: u8 = BPF_ALU | BPF_ADD | BPF_K;
    pub const ADD32_X: u8 = BPF_ALU | BPF_ADD | BPF_X;
    pub const SUB64_K: u8 = BPF_ALU64 | BPF_SUB | BPF_K;
    pub const SUB64_X: u8 = BPF_ALU64 | BPF_SUB | BPF_X;
    pub const SUB32_K: u8 = BPF_ALU | BPF_SUB | BPF_K;
    pub const SUB32_X: u8 = BPF_ALU | BPF_SUB | BPF_X;
    pub const MUL64_K: u8 = BPF_ALU64 | BPF_MUL | BPF_K;
    pub const MUL64_X: u8 = BPF_ALU64 | BPF_MUL | BPF_X;
    pub const MUL32_K: u8 = BPF_ALU | BPF_MUL | BPF_K;
    pub const MUL32_X: u8 = BPF_ALU | BPF_MUL | BPF_X;
    pub const DIV64_K: u8 = BPF_ALU64 | BPF_DIV | BPF_K;
    pub const DIV64_X: u8 = BPF_ALU64 | BPF_DIV | BPF_X;
    pub const DIV32_K: u8 = BPF_ALU | BPF_DIV | BPF_K;
    pub const DIV32_X: u8 = BPF_ALU | BPF_DIV | BPF_X;
    pub const OR64_K: u8 = BPF_ALU64 | BPF_OR | BPF_K;
    pub const OR64_X: u8 = BPF_ALU64 | BPF_OR | BPF_X;
    pub const OR32_K: u8 = BPF_ALU | BPF_OR | BPF_K;
    pub const OR32_X: u8 = BPF_ALU | BPF_OR | BPF_X;
    pub const AND64_K: u8 = BPF_ALU64 | BPF_AND | BPF_K;
    pub const AND64_X: u8 = BPF_ALU64 | BPF_AND | BPF_X;
    pub const AND32_K: u8 = BPF_ALU | BPF_AND | BPF_K;
    pub const AND32_X: u8 = BPF_ALU | BPF_AND | BPF_X;
    pub const LSH64_K: u8 = BPF_ALU64 | BPF_LSH | BPF_K;
    pub const LSH64_X: u8 = BPF_ALU64 | BPF_LSH | BPF_X;
    pub const LSH32_K: u8 = BPF_ALU | BPF_LSH | BPF_K;
    pub const LSH32_X: u8 = BPF_ALU | BPF_LSH | BPF_X;
    pub const RSH64_K: u8 = BPF_ALU64 | BPF_RSH | BPF_K;
    pub const RSH64_X: u8 = BPF_ALU64 | BPF_RSH | BPF_X;
    pub const RSH32_K: u8 = BPF_ALU | BPF_RSH | BPF_K;
    pub const RSH32_X: u8 = BPF_ALU | BPF_RSH | BPF_X;
    pub const NEG64: u8 = BPF_ALU64 | BPF_NEG | BPF_K;
    pub const NEG32: u8 = BPF_ALU | BPF_NEG | BPF_K;
    pub const MOD64_K: u8 = BPF_ALU64 | BPF_MOD | BPF_K;
    pub const MOD64_X: u8 = BPF_ALU64 | BPF_MOD | BPF_X;
    pub const MOD32_K: u8 = BPF_ALU | BPF_MOD | BPF_K;
    pub const MOD32_X: u8 = BPF_ALU | BPF_MOD | BPF_X;
    pub const XOR64_K: u8 = BPF_ALU64 | BPF_XOR | BPF_K;
    pub const XOR64_X: u8 = BPF_ALU64 | BPF_XOR | BPF_X;
    pub const XOR32_K: u8 = BPF_ALU | BPF_XOR | BPF_K;
    pub const XOR32_X: u8 = BPF_ALU | BPF_XOR | BPF_X;
    pub const MOV64_K: u8 = BPF_ALU64 | BPF_MOV | BPF_K;
    pub const MOV64_X: u8 = BPF_ALU64 | BPF_MOV | BPF_X;
    pub const MOV32_K: u8 = BPF_ALU | BPF_MOV | BPF_K;
    pub const MOV32_X: u8 = BPF_ALU | BPF_MOV | BPF_X;
    pub const ARSH64_K: u8 = BPF_ALU64 | BPF_ARSH | BPF_K;
    pub const ARSH64_X: u8 = BPF_ALU64 | BPF_ARSH | BPF_X;
    pub const ARSH32_K: u8 = BPF_ALU | BPF_ARSH | BPF_K;
    pub const ARSH32_X: u8 = BPF_ALU | BPF_ARSH | BPF_X;
    pub const LE: u8 = BPF_ALU | BPF_END | BPF_TO_LE;
    pub const BE: u8 = BPF_ALU | BPF_END | BPF_TO_BE;
    pub const BSWAP: u8 = BPF_ALU64 | BPF_END | BPF_TO_LE;
    pub const JA: u8 = BPF_JMP | BPF_JA;
    pub const JA32: u8 = BPF_JMP32 | BPF_JA;
    pub const JEQ_K: u8 = BPF_JMP | BPF_JEQ | BPF_K;
    pub const JEQ_X: u8 = BPF_JMP | BPF_JEQ | BPF_X;
    pub const JEQ32_K: u8 = BPF_JMP32 | BPF_JEQ | BPF_K;
    pub const JEQ32_X: u8 = BPF_JMP32 | BPF_JEQ | BPF_X;
    pub const JGT_K: u8 = BPF_JMP | BPF_JGT | BPF_K;
    pub const JGT_X: u8 = BPF_JMP | BPF_JGT | BPF_X;
    pub const JGT32_K: u8 = BPF_JMP32 | BPF_JGT | BPF_K;
    pub const JGT32_X: u8 = BPF_JMP32 | BPF_JGT | BPF_X;
    pub const JGE_K: u8 = BPF_JMP | BPF_JGE | BPF_K;
    pub const JGE_X: u8 = BPF_JMP | BPF_JGE | BPF_X;
    pub const JGE32_K: u8 = BPF_JMP32 | BPF_JGE | BPF_K;
    pub const JGE32_X: u8 = BPF_JMP32 | BPF_JGE | BPF_X;
    pub const JSET_K: u8 = BPF_JMP | BPF_JSET | BPF_K;
    pub const JSET_X: u8 = BPF_JMP | BPF_JSET | BPF_X;
    pub const JSET32_K: u8 = BPF_JMP32 | BPF_JSET | BPF_K;
    pub const JSET32_X: u8 = BPF_JMP32 | BPF_JSET | BPF_X;
    pub const JNE_K: u8 = BPF_JMP | BPF_JNE | BPF_K;
    pub const JNE_X: u8 = BPF_JMP | BPF_JNE | BPF_X;
    pub const JNE32_K: u8 = BPF_JMP32 | BPF_JNE | BPF_K;
    pub const JNE32_X: u8 = BPF_JMP32 | BPF_JNE | BPF_X;
    pub const JSGT_K: u8 = BPF_JMP | BPF_JSGT | BPF_K;
    pub const JSGT_X: u8 = BPF_JMP | BPF_JSGT | BPF_X;
    pub const JSGT32_K: u8 = BPF_JMP32 | BPF_JSGT | BPF_K;
    pub const JSGT32_X: u8 = BPF_JMP32 | BPF_JSGT | BPF_X;
    pub const JSGE_K: u8 = BPF_JMP | BPF_JSGE | BPF_K;
    pub const JSGE_X: u8 = BPF_JMP | BPF_JSGE | BPF_X;
    pub const JSGE32_K: u8 = BPF_JMP32 | BPF_JSGE | BPF_K;
    pub const JSGE32_X: u8 = BPF_JMP32 | BPF_JSGE | BPF_X;
    pub const JLT_K: u8 = BPF_JMP | BPF_JLT | BPF_K;
    pub const JLT_X: u8 = BPF_JMP | BPF_JLT | BPF_X;
    pub const JLT32_K: u8 = BPF_JMP32 | BPF_JLT | BPF_K;
    pub const JLT32_X: u8 = BPF_JMP32 | BPF_JLT | BPF_X;
    pub const JLE_K: u8 = BPF_JMP | BPF_JLE | BPF_K;
    pub const JLE_X: u8 = BPF_JMP | BPF_JLE | BPF_X;
    pub const JLE32_K: u8 = BPF_JMP32 | BPF_JLE | BPF_K;
    pub const JLE32_X: u8 = BPF_JMP32 | BPF_JLE | BPF_X;
    pub const JSLT_K: u8 = BPF_JMP | BPF_JSLT | BPF_K;
    pub const JSLT_X: u8 = BPF_JMP | BPF_JSLT | BPF_X;
    pub const JSLT32_K: u8 = BPF_JMP32 | BPF_JSLT | BPF_K;
    pub const JSLT32_X: u8 = BPF_JMP32 | BPF_JSLT | BPF_X;
    pub const JSLE_K: u8 = BPF_JMP | BPF_JSLE | BPF_K;
    pub const JSLE_X: u8 = BPF_JMP | BPF_JSLE | BPF_X;
    pub const JSLE32_K: u8 = BPF_JMP32 | BPF_JSLE | BPF_K;
    pub const JSLE32_X: u8 = BPF_JMP32 | BPF_JSLE | BPF_X;
    pub const CALL: u8 = BPF_JMP | BPF_CALL;
    pub const CALLX: u8 = BPF_JMP | BPF_CALL | BPF_X;
    pub const EXIT: u8 = BPF_JMP | BPF_EXIT;
    pub const LDXW: u8 = BPF_LDX | BPF_MEM | BPF_W;
    pub const LDXH: u8 = BPF_LDX | BPF_MEM | BPF_H;
    pub const LDXB: u8 = BPF_LDX | BPF_MEM | BPF_B;
    pub const LDXDW: u8 = BPF_LDX | BPF_MEM | BPF_DW;
    pub const LDXSW: u8 = BPF_LDX | BPF_MEMSX | BPF_W;
    pub const LDXSH: u8 = BPF_LDX | BPF_MEMSX | BPF_H;
    pub const LDXSB: u8 = BPF_LDX | BPF_MEMSX | BPF_B;
    pub const STW: u8 = BPF_ST | BPF_MEM | BPF_W;
    pub const STH: u8 = BPF_ST | BPF_MEM | BPF_H;
    pub const STB: u8 = BPF_ST | BPF_MEM | BPF_B;
    pub const STDW: u8 = BPF_ST | BPF_MEM | BPF_DW;
    pub const STXW: u8 = BPF_STX | BPF_MEM | BPF_W;
    pub const STXH: u8 = BPF_STX | BPF_MEM | BPF_H;
    pub const STXB: u8 = BPF_STX | BPF_MEM | BPF_B;
    pub const STXDW: u8 = BPF_STX | BPF_MEM | BPF_DW;
    pub const ATOMIC_W: u8 = BPF_STX | BPF_ATOMIC | BPF_W;
    pub const ATOMIC_DW: u8 = BPF_STX | BPF_ATOMIC | BPF_DW;
    pub const LDABSW: u8 = BPF_LD | BPF_ABS | BPF_W;
    pub const LDABSH: u8 = BPF_LD | BPF_ABS | BPF_H;
    pub const LDABSB: u8 = BPF_LD | BPF_ABS | BPF_B;
    pub const LDINDW: u8 = BPF_LD | BPF_IND | BPF_W;
    pub const LDINDH: u8 = BPF_LD | BPF_IND | BPF_H;
    pub const LDINDB: u8 = BPF_LD | BPF_IND | BPF_B;

    /// Atomic operations (the immediate of `ATOMIC_W`/`ATOMIC_DW`, without
    /// `BPF_FETCH`).
    pub const ATOMIC_ADD: i32 = BPF_ADD as i32;
    pub const ATOMIC_OR: i32 = BPF_OR as i32;
    pub const ATOMIC_AND: i32 = BPF_AND as i32;
    pub const ATOMIC_XOR: i32 = BPF_XOR as i32;
    pub const ATOMIC_XCHG: i32 = BPF_XCHG & !BPF_FETCH;
}

/// One raw instruction slot exactly as it is laid out in memory
/// (little-endian: opcode, dst:src nibbles, 16-bit offset, 32-bit immediate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RawInsn {
    pub code: u8,
    /// Destination register (low nibble of the second byte).
    pub dst: u8,
    /// Source register (high nibble of the second byte).
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl RawInsn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        RawInsn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    pub fn from_bytes(b: [u8; 8]) -> Self {
        RawInsn {
            code: b[0],
            dst: b[1] & 0x0f,
            src: b[1] >> 4,
            off: i16::from_le_bytes([b[2], b[3]]),
            imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    pub fn to_bytes(self) -> [u8; 8] {
        let off = self.off.to_le_bytes();
        let imm = self.imm.to_le_bytes();
        [
            self.code,
            (self.dst & 0x0f) | (self.src << 4),
            off[0],
            off[1],
            imm[0],
            imm[1],
            imm[2],
            imm[3],
        ]
    }

    /// The instruction class (low three bits of the opcode).
    pub fn class(self) -> u8 {
        self.code & 0x07
    }
}

/// Splits a byte buffer into raw slots. Fails if the length is not a multiple of 8.
pub fn raw_slots(bytes: &[u8]) -> Result<Vec<RawInsn>, crate::DecodeError> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return Err(crate::DecodeError::TrailingBytes {
            len: bytes.len(),
            extra: bytes.len() % INSN_SIZE,
        });
    }
    Ok(bytes
        .chunks_exact(INSN_SIZE)
        .map(|c| RawInsn::from_bytes(c.try_into().expect("chunk of 8")))
        .collect())
}

/// Serialises raw slots back to bytes.
pub fn slots_to_bytes(slots: &[RawInsn]) -> Vec<u8> {
    slots.iter().flat_map(|s| s.to_bytes()).collect()
}

#[cfg(test)]
mod opcode_tests {
    use super::opcode::*;

    #[test]
    fn opcode_names_are_the_encodings() {
        assert_eq!(ADD64_K, 0x07);
        assert_eq!(ADD64_X, 0x0f);
        assert_eq!(ADD32_K, 0x04);
        assert_eq!(ADD32_X, 0x0c);
        assert_eq!(SUB64_K, 0x17);
        assert_eq!(SUB64_X, 0x1f);
        assert_eq!(SUB32_K, 0x14);
        assert_eq!(SUB32_X, 0x1c);
        assert_eq!(MUL64_K, 0x27);
        assert_eq!(MUL64_X, 0x2f);
        assert_eq!(MUL32_K, 0x24);
        assert_eq!(MUL32_X, 0x2c);
        assert_eq!(DIV64_K, 0x37);
        assert_eq!(DIV64_X, 0x3f);
        assert_eq!(DIV32_K, 0x34);
        assert_eq!(DIV32_X, 0x3c);
        assert_eq!(OR64_K, 0x47);
        assert_eq!(OR64_X, 0x4f);
        assert_eq!(OR32_K, 0x44);
        assert_eq!(OR32_X, 0x4c);
        assert_eq!(AND64_K, 0x57);
        assert_eq!(AND64_X, 0x5f);
        assert_eq!(AND32_K, 0x54);
        assert_eq!(AND32_X, 0x5c);
        assert_eq!(LSH64_K, 0x67);
        assert_eq!(LSH64_X, 0x6f);
        assert_eq!(LSH32_K, 0x64);
        assert_eq!(LSH32_X, 0x6c);
        assert_eq!(RSH64_K, 0x77);
        assert_eq!(RSH64_X, 0x7f);
        assert_eq!(RSH32_K, 0x74);
        assert_eq!(RSH32_X, 0x7c);
        assert_eq!(NEG64, 0x87);
        assert_eq!(NEG32, 0x84);
        assert_eq!(MOD64_K, 0x97);
        assert_eq!(MOD64_X, 0x9f);
        assert_eq!(MOD32_K, 0x94);
        assert_eq!(MOD32_X, 0x9c);
        assert_eq!(XOR64_K, 0xa7);
        assert_eq!(XOR64_X, 0xaf);
        assert_eq!(XOR32_K, 0xa4);
        assert_eq!(XOR32_X, 0xac);
        assert_eq!(MOV64_K, 0xb7);
        assert_eq!(MOV64_X, 0xbf);
        assert_eq!(MOV32_K, 0xb4);
        assert_eq!(MOV32_X, 0xbc);
        assert_eq!(ARSH64_K, 0xc7);
        assert_eq!(ARSH64_X, 0xcf);
        assert_eq!(ARSH32_K, 0xc4);
        assert_eq!(ARSH32_X, 0xcc);
        assert_eq!(LE, 0xd4);
        assert_eq!(BE, 0xdc);
        assert_eq!(BSWAP, 0xd7);
        assert_eq!(JA, 0x05);
        assert_eq!(JA32, 0x06);
        assert_eq!(JEQ_K, 0x15);
        assert_eq!(JEQ_X, 0x1d);
        assert_eq!(JEQ32_K, 0x16);
        assert_eq!(JEQ32_X, 0x1e);
        assert_eq!(JGT_K, 0x25);
        assert_eq!(JGT_X, 0x2d);
        assert_eq!(JGT32_K, 0x26);
        assert_eq!(JGT32_X, 0x2e);
        assert_eq!(JGE_K, 0x35);
        assert_eq!(JGE_X, 0x3d);
        assert_eq!(JGE32_K, 0x36);
        assert_eq!(JGE32_X, 0x3e);
        assert_eq!(JSET_K, 0x45);
        assert_eq!(JSET_X, 0x4d);
        assert_eq!(JSET32_K, 0x46);
        assert_eq!(JSET32_X, 0x4e);
        assert_eq!(JNE_K, 0x55);
        assert_eq!(JNE_X, 0x5d);
        assert_eq!(JNE32_K, 0x56);
        assert_eq!(JNE32_X, 0x5e);
        assert_eq!(JSGT_K, 0x65);
        assert_eq!(JSGT_X, 0x6d);
        assert_eq!(JSGT32_K, 0x66);
        assert_eq!(JSGT32_X, 0x6e);
        assert_eq!(JSGE_K, 0x75);
        assert_eq!(JSGE_X, 0x7d);
        assert_eq!(JSGE32_K, 0x76);
        assert_eq!(JSGE32_X, 0x7e);
        assert_eq!(JLT_K, 0xa5);
        assert_eq!(JLT_X, 0xad);
        assert_eq!(JLT32_K, 0xa6);
        assert_eq!(JLT32_X, 0xae);
        assert_eq!(JLE_K, 0xb5);
        assert_eq!(JLE_X, 0xbd);
        assert_eq!(JLE32_K, 0xb6);
        assert_eq!(JLE32_X, 0xbe);
        assert_eq!(JSLT_K, 0xc5);
        assert_eq!(JSLT_X, 0xcd);
        assert_eq!(JSLT32_K, 0xc6);
        assert_eq!(JSLT32_X, 0xce);
        assert_eq!(JSLE_K, 0xd5);
        assert_eq!(JSLE_X, 0xdd);
        assert_eq!(JSLE32_K, 0xd6);
        assert_eq!(JSLE32_X, 0xde);
        assert_eq!(CALL, 0x85);
        assert_eq!(CALLX, 0x8d);
        assert_eq!(EXIT, 0x95);
        assert_eq!(LDXW, 0x61);
        assert_eq!(LDXH, 0x69);
        assert_eq!(LDXB, 0x71);
        assert_eq!(LDXDW, 0x79);
        assert_eq!(LDXSW, 0x81);
        assert_eq!(LDXSH, 0x89);
        assert_eq!(LDXSB, 0x91);
        assert_eq!(STW, 0x62);
        assert_eq!(STH, 0x6a);
        assert_eq!(STB, 0x72);
        assert_eq!(STDW, 0x7a);
        assert_eq!(STXW, 0x63);
        assert_eq!(STXH, 0x6b);
        assert_eq!(STXB, 0x73);
        assert_eq!(STXDW, 0x7b);
        assert_eq!(ATOMIC_W, 0xc3);
        assert_eq!(ATOMIC_DW, 0xdb);
        assert_eq!(LDABSW, 0x20);
        assert_eq!(LDABSH, 0x28);
        assert_eq!(LDABSB, 0x30);
        assert_eq!(LDINDW, 0x40);
        assert_eq!(LDINDH, 0x48);
        assert_eq!(LDINDB, 0x50);
    }
}
