//! Choosing an execution engine.

use clap::ValueEnum;
use oxbpf_vm::{Config, Helpers, Program, Vm};

/// The engines `--engine` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EngineKind {
    /// oxbpf's interpreter (the reference semantics).
    Interpreter,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Interpreter => "interpreter",
        }
    }
}

/// Runs raw bytecode the way bpf_conformance expects (helpers of the suite,
/// r1/r2 = memory and length).
pub struct ConformanceEngine {
    pub kind: EngineKind,
}

impl oxbpf_conformance::Engine for ConformanceEngine {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn run(&self, program: &[u8], mem: &mut [u8]) -> Result<u64, String> {
        let program = Program::from_bytes(program).map_err(|e| e.to_string())?;
        let mut vm = Vm::new(program);
        vm.helpers = Helpers::conformance();
        vm.config = Config {
            // A generous budget keeps a looping test from hanging the suite.
            instruction_budget: Some(1 << 32),
            ..Config::default()
        };
        match self.kind {
            EngineKind::Interpreter => {
                // The budgeted run dispatches every instruction; once it has
                // shown the program terminates, the default fast path (fused
                // pairs, collapsed compare trees) must give the same answer.
                // Both runs use the same buffer, so addresses agree too.
                let before = mem.to_vec();
                let exact = vm.run_raw(mem);
                if exact.is_ok() {
                    let after = mem.to_vec();
                    mem.copy_from_slice(&before);
                    let mut fast_vm = vm.clone();
                    fast_vm.config.instruction_budget = None;
                    let fast = fast_vm.run_raw(mem);
                    if fast != exact || after != mem {
                        return Err(format!(
                            "interpreter fast path disagrees: {fast:?} vs {exact:?}"
                        ));
                    }
                }
                exact.map(|r| r.r0).map_err(|e| e.to_string())
            }
        }
    }
}
