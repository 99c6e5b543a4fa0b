//! The one error type every engine reports for a failed run.

use crate::memory::AccessFault;

/// Why an execution stopped without a result. Every variant names the pc
/// (slot index) of the instruction that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VmError {
    #[error("instruction {pc}: memory fault: {fault}")]
    MemoryFault { pc: usize, fault: AccessFault },
    #[error("instruction {pc}: call depth limit of {limit} frames exceeded")]
    CallDepthExceeded { pc: usize, limit: usize },
    #[error("instruction {pc}: call to unknown helper {id}")]
    UnknownHelper { pc: usize, id: u64 },
    #[error("instruction {pc}: helper {id} failed: {message}")]
    HelperFailed { pc: usize, id: u32, message: String },
    #[error("instruction {pc}: instruction budget of {budget} exhausted")]
    BudgetExhausted { pc: usize, budget: u64 },
    #[error("instruction {pc}: execution ran past the last instruction")]
    FellOffEnd { pc: usize },
    #[error("instruction {pc}: kfunc calls (BTF id {btf_id}) need the kernel engine")]
    KfuncUnsupported { pc: usize, btf_id: i32 },
    #[error("instruction {pc}: lddw of a map or BTF reference that no loader resolved")]
    UnresolvedReference { pc: usize },
    #[error("instruction {pc}: legacy packet load without a packet")]
    NoPacket { pc: usize },
    #[error("the JIT could not compile the program: {message}")]
    JitFailed { message: String },
}

impl VmError {
    /// The pc of the failing instruction.
    pub fn pc(&self) -> usize {
        match *self {
            VmError::MemoryFault { pc, .. }
            | VmError::CallDepthExceeded { pc, .. }
            | VmError::UnknownHelper { pc, .. }
            | VmError::HelperFailed { pc, .. }
            | VmError::BudgetExhausted { pc, .. }
            | VmError::FellOffEnd { pc }
            | VmError::KfuncUnsupported { pc, .. }
            | VmError::UnresolvedReference { pc }
            | VmError::NoPacket { pc } => pc,
            VmError::JitFailed { .. } => 0,
        }
    }

    /// A short stable name of the error kind (for differential tests).
    pub fn kind(&self) -> &'static str {
        match self {
            VmError::MemoryFault { .. } => "memory_fault",
            VmError::CallDepthExceeded { .. } => "call_depth",
            VmError::UnknownHelper { .. } => "unknown_helper",
            VmError::HelperFailed { .. } => "helper_failed",
            VmError::BudgetExhausted { .. } => "budget",
            VmError::FellOffEnd { .. } => "fell_off_end",
            VmError::KfuncUnsupported { .. } => "kfunc",
            VmError::UnresolvedReference { .. } => "unresolved",
            VmError::NoPacket { .. } => "no_packet",
            VmError::JitFailed { .. } => "jit",
        }
    }
}
