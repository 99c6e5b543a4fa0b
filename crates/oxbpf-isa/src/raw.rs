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
