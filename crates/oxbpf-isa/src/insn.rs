//! The typed, decoded form of an instruction that the rest of oxbpf works with.

use std::fmt;

/// A register `r0`..`r10`. Construction checks the range, so holding a `Reg`
/// means the number is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
    pub const R6: Reg = Reg(6);
    pub const R10: Reg = Reg(10);
    /// Frame pointer, read-only.
    pub const FP: Reg = Reg(10);

    pub const fn new(n: u8) -> Option<Reg> {
        if n <= 10 { Some(Reg(n)) } else { None }
    }

    pub const fn num(self) -> u8 {
        self.0
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Operation width of ALU and jump instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    /// `BPF_ALU` / `BPF_JMP32`: operate on the low 32 bits.
    W32,
    /// `BPF_ALU64` / `BPF_JMP`.
    W64,
}

/// The second operand of ALU, jump and store instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Reg(Reg),
    Imm(i32),
}

/// Two-operand ALU operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Signed division (`BPF_DIV` with offset 1, v4).
    Sdiv,
    Or,
    And,
    Lsh,
    Rsh,
    Mod,
    /// Signed modulo (`BPF_MOD` with offset 1, v4).
    Smod,
    Xor,
    Mov,
    Arsh,
}

/// Byte-order operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndianOp {
    /// `BPF_ALU | BPF_END | BPF_TO_LE`
    ToLe,
    /// `BPF_ALU | BPF_END | BPF_TO_BE`
    ToBe,
    /// `BPF_ALU64 | BPF_END` (v4): unconditional swap.
    Swap,
}

/// Conditions of conditional jumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JmpCond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

/// Memory access sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    pub const fn bits(self) -> u32 {
        (self.bytes() * 8) as u32
    }
}

/// Atomic read-modify-write operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add {
        fetch: bool,
    },
    Or {
        fetch: bool,
    },
    And {
        fetch: bool,
    },
    Xor {
        fetch: bool,
    },
    /// Always fetches into `src`.
    Xchg,
    /// Compares with `r0`, always fetches the old value into `r0`.
    Cmpxchg,
}

/// Targets of `call`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallTarget {
    /// Helper function by static id (`src_reg` 0).
    Helper(i32),
    /// bpf-to-bpf call, `imm` is relative to the next instruction (`src_reg` 1).
    Local(i32),
    /// Kernel function by BTF id (`src_reg` 2); `module` is the fd-array index
    /// of the module BTF (0 for vmlinux), carried in `off`.
    Kfunc { btf_id: i32, module: i16 },
}

/// What a 64-bit immediate load means, by its `src_reg` pseudo value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Imm64 {
    /// Plain 64-bit constant (`src_reg` 0).
    Value(u64),
    /// `BPF_PSEUDO_MAP_FD`: address of the map with this fd.
    MapFd(i32),
    /// `BPF_PSEUDO_MAP_VALUE`: address of the map's value at `offset`.
    MapValue { fd: i32, offset: i32 },
    /// `BPF_PSEUDO_BTF_ID`: address of a kernel variable.
    BtfId { btf_id: i32, module: i32 },
    /// `BPF_PSEUDO_FUNC`: address of a subprogram, relative to the next instruction.
    Func(i32),
    /// `BPF_PSEUDO_MAP_IDX`: map by index in the fd array.
    MapIdx(i32),
    /// `BPF_PSEUDO_MAP_IDX_VALUE`: map value by index in the fd array.
    MapIdxValue { idx: i32, offset: i32 },
}

/// Legacy packet-access addressing (`BPF_LD | BPF_ABS/BPF_IND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketAddr {
    Abs(i32),
    Ind { src: Reg, imm: i32 },
}

/// One decoded instruction. `LoadImm64` occupies two slots; every other
/// instruction occupies one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Instruction {
    Alu {
        width: Width,
        op: AluOp,
        dst: Reg,
        src: Source,
    },
    /// Sign-extending move (v4): `dst = (s8|s16|s32) src`.
    MovSx {
        width: Width,
        bits: u8,
        dst: Reg,
        src: Reg,
    },
    Neg {
        width: Width,
        dst: Reg,
    },
    Endian {
        op: EndianOp,
        bits: u8,
        dst: Reg,
    },
    /// Unconditional jump: `goto` (16-bit offset) or `gotol` (32-bit immediate, v4).
    Ja {
        offset: i32,
        long: bool,
    },
    Jmp {
        width: Width,
        cond: JmpCond,
        dst: Reg,
        src: Source,
        offset: i16,
    },
    Call(CallTarget),
    /// Indirect call through a register (`BPF_CALL | BPF_X`, register in `dst_reg`).
    Callx {
        reg: Reg,
    },
    Exit,
    LoadImm64 {
        dst: Reg,
        imm: Imm64,
    },
    /// `dst = *(size *)(src + off)`, sign-extended for `BPF_MEMSX`.
    Load {
        size: Size,
        sign_extend: bool,
        dst: Reg,
        src: Reg,
        offset: i16,
    },
    /// `*(size *)(dst + off) = src`.
    Store {
        size: Size,
        dst: Reg,
        offset: i16,
        src: Source,
    },
    Atomic {
        size: Size,
        op: AtomicOp,
        dst: Reg,
        src: Reg,
        offset: i16,
    },
    /// Legacy `r0 = *(size *)skb[...]`.
    LoadPacket {
        size: Size,
        addr: PacketAddr,
    },
}

impl Instruction {
    /// Number of 8-byte slots this instruction occupies.
    pub fn slots(&self) -> usize {
        match self {
            Instruction::LoadImm64 { .. } => 2,
            _ => 1,
        }
    }

    /// For pc-relative control transfers: the offset added to `pc + 1`.
    pub fn branch_offset(&self) -> Option<i64> {
        match *self {
            Instruction::Ja { offset, .. } => Some(offset as i64),
            Instruction::Jmp { offset, .. } => Some(offset as i64),
            Instruction::Call(CallTarget::Local(imm)) => Some(imm as i64),
            Instruction::LoadImm64 {
                imm: Imm64::Func(imm),
                ..
            } => Some(imm as i64),
            _ => None,
        }
    }
}
