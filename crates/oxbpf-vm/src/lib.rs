//! # oxbpf-vm: running eBPF in user space
//!
//! The interpreter here *defines* oxbpf's execution semantics; the JIT and
//! the kernel backend are tested against it. Its pieces:
//! * [`program`]: structural validation and lowering to compact operations;
//! * [`memory`]: regions of host memory a program may access, every access
//!   checked (one of the few modules with `unsafe`);
//! * [`interpreter`]: the dispatch loop with kernel semantics;
//! * [`helpers`]: host functions called by id.
//!
//! Programs see real host addresses, as in the kernel, so pointers a program
//! computes are meaningful to helpers and to JIT-compiled code alike.

pub mod arena;
pub mod env;
pub mod error;
pub mod helpers;
pub mod interpreter;
pub mod jit;
pub mod loaded;
pub mod lowmem;
pub mod maps;
pub mod memory;
pub mod program;
pub mod stdhelpers;
mod switch;

pub use env::{Env, Output};
pub use error::VmError;
pub use helpers::{HelperContext, HelperError, HelperOutcome, Helpers};
pub use interpreter::{
    Config, CtxPointers, NoTrace, PacketState, RunResult, STACK_FRAME_SIZE, Tracer,
};
pub use jit::{Checks, Engine, JitCode, JitError};
pub use memory::{AccessFault, MemoryMap, Region, RegionKind};
pub use program::{Program, ProgramError};

/// A program with its helpers and limits: the unit users run.
#[derive(Clone)]
pub struct Vm {
    pub program: Program,
    pub helpers: Helpers,
    pub config: Config,
}

/// A proof that does not fit the program it is offered for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the verifier's proof is for other {what}")]
pub struct ProofMismatch {
    pub what: &'static str,
}

impl Vm {
    /// Runs the program without run-time memory checks in the JIT, on the
    /// strength of the verifier's proof for exactly this program. Raw runs
    /// must then use memory of the length the proof assumed.
    pub fn trust(&mut self, proof: &oxbpf_verifier::Proof) -> Result<(), ProofMismatch> {
        if !proof.covers(self.program.slots()) {
            return Err(ProofMismatch {
                what: "instructions",
            });
        }
        // Widened loops prove memory safety, not termination: an unchecked
        // run needs the budget to stop it (set it before trusting).
        if proof.needs_budget() && self.config.instruction_budget.is_none() {
            return Err(ProofMismatch {
                what: "termination (the loops were proven by widening: set an instruction budget)",
            });
        }
        self.config.checks = jit::Checks::proven(proof.mem_len());
        Ok(())
    }

    pub fn new(program: Program) -> Self {
        Vm {
            program,
            helpers: Helpers::new(),
            config: Config::default(),
        }
    }

    /// Runs the program on raw memory: `r1` = address of `mem`, `r2` = its
    /// length. Legacy packet loads read from `mem`.
    pub fn run_raw(&self, mem: &mut [u8]) -> Result<RunResult, VmError> {
        self.run_raw_traced(mem, &mut NoTrace)
    }

    /// [`Vm::run_raw`] reporting every step to `tracer`.
    pub fn run_raw_traced<T: Tracer>(
        &self,
        mem: &mut [u8],
        tracer: &mut T,
    ) -> Result<RunResult, VmError> {
        if self.config.engine == Engine::Jit && !T::ENABLED {
            let checks = self.config.checks.for_raw_len(mem.len() as u64);
            if checks != self.config.checks {
                let config = Config {
                    checks,
                    ..self.config.clone()
                };
                return jit::run_raw(&self.program, &self.helpers, &config, mem);
            }
            return jit::run_raw(&self.program, &self.helpers, &self.config, mem);
        }
        let len = mem.len() as u64;
        let mut memory = MemoryMap::new();
        let start = memory.add_mut(RegionKind::Input, mem);
        // An empty input is passed as a null pointer, as the conformance
        // suite's runners do.
        let start = if len == 0 { 0 } else { start };
        self.run(
            memory,
            [start, len, 0, 0, 0],
            None,
            Some(PacketState::plain(start, len)),
            tracer,
        )
    }

    /// Runs with explicit regions, initial `r1`..`r5`, environment (maps,
    /// tail-call targets, output) and packet.
    pub fn run<T: Tracer>(
        &self,
        memory: MemoryMap<'_>,
        args: [u64; 5],
        env: Option<&Env>,
        packet: Option<PacketState>,
        tracer: &mut T,
    ) -> Result<RunResult, VmError> {
        // Straight to the JIT (a tracer needs the interpreter).
        if self.config.engine == Engine::Jit && !T::ENABLED {
            return jit::run(
                &self.program,
                &self.helpers,
                &self.config,
                memory,
                args,
                env,
                packet,
            );
        }
        interpreter::run(
            interpreter::Setup {
                program: &self.program,
                helpers: &self.helpers,
                config: &self.config,
            },
            memory,
            args,
            env,
            packet,
            tracer,
        )
    }
}
