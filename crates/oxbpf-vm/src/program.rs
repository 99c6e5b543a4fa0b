//! A validated program, lowered into the interpreter's compact operations.
//!
//! Validation here is structural (what any engine needs to run safely), not
//! the verifier's proof of safety: instructions decode strictly, every jump
//! and local call lands on an instruction inside the program, and `r10` is
//! never written. Memory safety without the verifier comes from the checked
//! accesses in [`crate::memory`].

use oxbpf_isa::{
    CallTarget, DecodeError, Imm64, Instruction, Located, RawInsn, Reg, Source, decode,
};

/// Why bytecode cannot be run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("program is empty")]
    Empty,
    #[error("instruction {index}: jump to {target} is outside the program (0..{len})")]
    JumpOutOfRange {
        index: usize,
        target: i64,
        len: usize,
    },
    #[error("instruction {index}: jump to {target} lands in the middle of an lddw")]
    JumpIntoLddw { index: usize, target: i64 },
    #[error("instruction {index}: r10 (the frame pointer) is read-only")]
    WritesFramePointer { index: usize },
    #[error("program too large: {len} instructions (at most {max})")]
    TooLarge { len: usize, max: usize },
}

/// Largest program accepted (the kernel's limit for privileged programs).
pub const MAX_INSNS: usize = 1_000_000;

/// Value tag of a function address made by `lddw rX, func` (BPF_PSEUDO_FUNC):
/// the low 32 bits hold the target instruction index. `callx` on such a value
/// calls the subprogram; on a plain number it calls that helper id.
pub const FUNC_ADDR_TAG: u64 = 0xf0f0_0000_0000_0000;

/// Internal operation: one per instruction slot (the second slot of lddw
/// becomes a never-executed filler), so pc values are slot indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Op {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    /// Memory offset, or absolute target for jumps and local calls, or the
    /// signed-division flag for ALU ops, or the width for movsx.
    pub off: i32,
    /// Sign-extended immediate; the full 64-bit value for lddw.
    pub imm: i64,
}

/// Opcode of the filler after lddw and of the end-of-program sentinel
/// (0x00 is never a valid instruction).
pub(crate) const OP_INVALID: u8 = 0x00;
/// Opcode of an lddw whose map/BTF reference no loader resolved
/// (0x08 is never a valid instruction).
pub(crate) const OP_UNRESOLVED: u8 = 0x08;
/// Opcode of a collapsed compare tree (0x10 is never a valid instruction).
pub(crate) const OP_SWITCH: u8 = 0x10;
// Fused `rD = rS; rD op= K` pairs (clang emits them constantly); the
// immediate of the second instruction is in `imm`. These LDX encodings with
// mode 0 are never valid instructions.
pub(crate) const OP_MOV_ADD_K: u8 = 0x01;
pub(crate) const OP_MOV_AND_K: u8 = 0x09;
pub(crate) const OP_MOV_LSH_K: u8 = 0x11;
pub(crate) const OP_MOV_RSH_K: u8 = 0x19;
/// Fused `rD = rS; rD += rX` (`off` holds X).
pub(crate) const OP_MOV_ADD_X: u8 = 0x21;

/// A validated program ready to run.
#[derive(Clone, Debug)]
pub struct Program {
    insns: Vec<Located>,
    slots: Vec<RawInsn>,
    pub(crate) ops: Vec<Op>,
    /// `ops` with compare trees collapsed into `OP_SWITCH` lookups; used
    /// when neither a budget nor a tracer needs every instruction.
    pub(crate) fast_ops: Vec<Op>,
    pub(crate) switches: Vec<crate::switch::SwitchTable>,
    /// JIT-compiled code, per mode, made on first use.
    pub(crate) jit: crate::jit::JitCache,
}

impl Program {
    /// Decodes and validates bytecode (8 bytes per slot, little-endian).
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, ProgramError> {
        Program::from_slots(oxbpf_isa::raw_slots(bytes)?)
    }

    /// Validates instructions given in typed form.
    pub fn from_instructions(insns: &[Instruction]) -> Result<Program, ProgramError> {
        Program::from_slots(oxbpf_isa::encode_all(insns))
    }

    /// Decodes and validates raw slots.
    pub fn from_slots(slots: Vec<RawInsn>) -> Result<Program, ProgramError> {
        if slots.is_empty() {
            return Err(ProgramError::Empty);
        }
        if slots.len() > MAX_INSNS {
            return Err(ProgramError::TooLarge {
                len: slots.len(),
                max: MAX_INSNS,
            });
        }
        let insns = decode(&slots)?;
        let len = slots.len();
        let mut starts = vec![false; len];
        for l in &insns {
            starts[l.index] = true;
        }
        for l in &insns {
            if let Some(rel) = l.insn.branch_offset() {
                let target = l.index as i64 + 1 + rel;
                if target < 0 || target >= len as i64 {
                    return Err(ProgramError::JumpOutOfRange {
                        index: l.index,
                        target,
                        len,
                    });
                }
                if !starts[target as usize] {
                    return Err(ProgramError::JumpIntoLddw {
                        index: l.index,
                        target,
                    });
                }
            }
            if writes_register(&l.insn) == Some(Reg::FP) {
                return Err(ProgramError::WritesFramePointer { index: l.index });
            }
        }
        let ops = lower(&insns, len);
        let mut fast_ops = ops.clone();
        let mut switches = Vec::new();
        let mut interior = vec![false; ops.len()];
        for pc in 0..len {
            if interior[pc] {
                continue;
            }
            if let Some((table, nodes)) = crate::switch::build(&ops, pc) {
                for n in nodes {
                    interior[n] = true;
                }
                fast_ops[pc] = Op {
                    code: OP_SWITCH,
                    dst: ops[pc].dst,
                    src: 0,
                    off: 0,
                    imm: switches.len() as i64,
                };
                switches.push(table);
            }
        }
        fuse_pairs(&ops, &mut fast_ops, &insns);
        Ok(Program {
            insns,
            slots,
            ops,
            fast_ops,
            switches,
            jit: Default::default(),
        })
    }

    /// A copy without the compiled code (to measure compilation).
    pub fn clone_uncompiled(&self) -> Program {
        Program {
            jit: Default::default(),
            ..self.clone()
        }
    }

    /// The decoded instructions with their slot indices.
    pub fn instructions(&self) -> &[Located] {
        &self.insns
    }

    /// The raw slots.
    pub fn slots(&self) -> &[RawInsn] {
        &self.slots
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Replaces the value an unresolved `lddw` at slot `pc` (a map or map
    /// value reference) loads; called by the loader once maps exist.
    pub fn resolve_imm64(&mut self, pc: usize, value: u64) {
        for ops in [&mut self.ops, &mut self.fast_ops] {
            if let Some(op) = ops.get_mut(pc).filter(|o| o.code == OP_UNRESOLVED) {
                op.code = 0x18;
                op.imm = value as i64;
            }
        }
        self.jit = Default::default();
    }

    /// The instruction starting at slot `pc`, if any.
    pub fn instruction_at(&self, pc: usize) -> Option<&Instruction> {
        self.insns
            .binary_search_by_key(&pc, |l| l.index)
            .ok()
            .map(|i| &self.insns[i].insn)
    }
}

/// Fuses `mov64 rD, rS` with a following 64-bit ALU op on `rD` into one
/// operation when nothing jumps to the second instruction.
fn fuse_pairs(ops: &[Op], fast: &mut [Op], insns: &[Located]) {
    let mut target = vec![false; ops.len()];
    for l in insns {
        if let Some(rel) = l.insn.branch_offset() {
            target[(l.index as i64 + 1 + rel) as usize] = true;
        }
    }
    let mut pc = 0;
    while pc + 1 < ops.len() {
        let (a, b) = (fast[pc], fast[pc + 1]);
        if a.code == 0xbf && a.off == 0 && b.dst == a.dst && !target[pc + 1] {
            let fused = match b.code {
                0x07 => Some(OP_MOV_ADD_K),
                0x57 => Some(OP_MOV_AND_K),
                0x67 => Some(OP_MOV_LSH_K),
                0x77 => Some(OP_MOV_RSH_K),
                0x0f => Some(OP_MOV_ADD_X),
                _ => None,
            };
            if let Some(code) = fused {
                fast[pc] = Op {
                    code,
                    dst: a.dst,
                    src: a.src,
                    off: if code == OP_MOV_ADD_X {
                        b.src as i32
                    } else {
                        0
                    },
                    imm: b.imm,
                };
                pc += 2;
                continue;
            }
        }
        pc += 1;
    }
}

/// The register an instruction writes (for the read-only r10 check).
fn writes_register(i: &Instruction) -> Option<Reg> {
    match *i {
        Instruction::Alu { dst, .. }
        | Instruction::MovSx { dst, .. }
        | Instruction::Neg { dst, .. }
        | Instruction::Endian { dst, .. }
        | Instruction::LoadImm64 { dst, .. }
        | Instruction::Load { dst, .. } => Some(dst),
        Instruction::Atomic { op, src, .. } => match op {
            oxbpf_isa::AtomicOp::Cmpxchg => None,
            oxbpf_isa::AtomicOp::Xchg => Some(src),
            oxbpf_isa::AtomicOp::Add { fetch }
            | oxbpf_isa::AtomicOp::Or { fetch }
            | oxbpf_isa::AtomicOp::And { fetch }
            | oxbpf_isa::AtomicOp::Xor { fetch } => fetch.then_some(src),
        },
        _ => None,
    }
}

fn lower(insns: &[Located], len: usize) -> Vec<Op> {
    // One extra sentinel op so falling off the end is detected without a
    // separate bounds check in the dispatch loop.
    let mut ops = vec![Op::default(); len + 1];
    for l in insns {
        let raw = oxbpf_isa::encode_all([&l.insn]);
        let r = raw[0];
        let mut op = Op {
            code: r.code,
            dst: r.dst,
            src: r.src,
            off: r.off as i32,
            imm: r.imm as i64,
        };
        match l.insn {
            Instruction::LoadImm64 { imm, .. } => {
                op.imm = match imm {
                    Imm64::Value(v) => v as i64,
                    Imm64::Func(rel) => {
                        (FUNC_ADDR_TAG | (l.index as i64 + 1 + rel as i64) as u64) as i64
                    }
                    // Map and BTF references must be resolved by a loader
                    // before they can run.
                    _ => {
                        op.code = OP_UNRESOLVED;
                        0
                    }
                };
            }
            Instruction::Ja { offset, .. } => op.off = (l.index as i64 + 1 + offset as i64) as i32,
            Instruction::Jmp { offset, src, .. } => {
                op.off = (l.index as i64 + 1 + offset as i64) as i32;
                if let Source::Imm(i) = src {
                    op.imm = i as i64;
                }
            }
            Instruction::Call(CallTarget::Local(rel)) => {
                op.off = (l.index as i64 + 1 + rel as i64) as i32;
            }
            _ => {}
        }
        ops[l.index] = op;
    }
    ops
}
