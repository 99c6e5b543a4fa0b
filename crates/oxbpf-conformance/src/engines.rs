//! The engines the suite runs on: oxbpf's interpreter and JIT, and the
//! running kernel (through `BPF_PROG_TEST_RUN`), each running raw bytecode
//! the way bpf_conformance expects.

use oxbpf_vm::{Config, Engine, Helpers, Program, Vm};

/// The engines oxbpf can run programs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum EngineKind {
    /// oxbpf's interpreter (the reference semantics).
    Interpreter,
    /// oxbpf's JIT to x86-64 (memory accesses checked unless the program
    /// was verified).
    Jit,
    /// The running Linux kernel (bpf(2) BPF_PROG_TEST_RUN; needs root).
    Kernel,
}

impl EngineKind {
    /// The in-process engine this names (the kernel has none).
    pub fn vm_engine(self) -> Engine {
        match self {
            EngineKind::Jit => Engine::Jit,
            _ => Engine::Interpreter,
        }
    }

    /// Every engine, the reference first.
    pub const ALL: [EngineKind; 3] = [EngineKind::Interpreter, EngineKind::Jit, EngineKind::Kernel];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Interpreter => "interpreter",
            EngineKind::Jit => "jit",
            EngineKind::Kernel => "kernel",
        }
    }
}

/// Runs raw bytecode the way bpf_conformance expects (helpers of the suite,
/// r1/r2 = memory and length).
pub struct ConformanceEngine {
    pub kind: EngineKind,
}

impl crate::Engine for ConformanceEngine {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn result_bits(&self) -> u32 {
        match self.kind {
            EngineKind::Kernel => 32,
            _ => 64,
        }
    }

    fn run(&self, program: &[u8], mem: &mut [u8]) -> Result<u64, crate::RunError> {
        if self.kind == EngineKind::Kernel {
            return kernel_run(program, mem);
        }
        self.run_interpreter(program, mem)
    }
}

impl ConformanceEngine {
    fn run_interpreter(&self, program: &[u8], mem: &mut [u8]) -> Result<u64, crate::RunError> {
        let program = Program::from_bytes(program).map_err(|e| e.to_string())?;
        let mut vm = Vm::new(program);
        vm.helpers = Helpers::conformance();
        vm.config = Config {
            // A generous budget keeps a looping test from hanging the suite.
            instruction_budget: Some(1 << 32),
            engine: self.kind.vm_engine(),
            ..Config::default()
        };
        {
            {
                // The budgeted run dispatches every instruction; once it has
                // shown the program terminates, the default fast path (fused
                // pairs, collapsed compare trees; for the JIT, per-block
                // instruction counting) must give the same answer.
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
                            "{} fast path disagrees: {fast:?} vs {exact:?}",
                            self.kind.name()
                        )
                        .into());
                    }
                }
                exact.map(|r| r.r0).map_err(|e| e.to_string().into())
            }
        }
    }
}

/// Runs conformance bytecode in the kernel: the memory goes into a one-entry
/// array map, and a prologue sets r1 to its value and r2 to its length
/// before the test's own instructions, loaded as an XDP program and run
/// with BPF_PROG_TEST_RUN. Only the low 32 bits of r0 come back.
fn kernel_run(program: &[u8], mem: &mut [u8]) -> Result<u64, crate::RunError> {
    use oxbpf_abi::helper;
    use oxbpf_isa::RawInsn;
    use oxbpf_isa::raw::opcode::*;
    // Legacy packet loads need an skb in r6: such programs run as tc
    // classifiers (layer 2: the packet starts at the Ethernet header, as
    // for a raw packet socket; a socket filter's test run would start at
    // the network header) with the memory as the packet.
    let legacy = program
        .chunks(8)
        .any(|c| matches!(c[0], LDABSW | LDABSH | LDABSB | LDINDW | LDINDH | LDINDB));
    if legacy {
        let mut code: Vec<u8> = [
            RawInsn::new(MOV64_X, 6, 1, 0, 0),                // r6 = r1
            RawInsn::new(MOV64_K, 1, 0, 0, 0),                // r1 = 0
            RawInsn::new(MOV64_K, 2, 0, 0, mem.len() as i32), // r2 = len
        ]
        .iter()
        .flat_map(|r| r.to_bytes())
        .collect();
        code.extend_from_slice(program);
        let v = oxbpf_sys::load_program(&oxbpf_sys::ProgSpec {
            name: "conformance".into(),
            prog_type: oxbpf_abi::ProgType::SchedCls.id(),
            insns: &code,
            license: "GPL".into(),
            ..Default::default()
        });
        let prog = v.prog.map_err(|e| rejection(&v.log, e.errno))?;
        let r = prog.test_run(mem, None, 1).map_err(|e| e.to_string())?;
        return Ok(r.retval as u64);
    }
    let mut prologue: Vec<RawInsn> = Vec::new();
    let map = if mem.is_empty() {
        prologue.push(RawInsn::new(MOV64_K, 1, 0, 0, 0)); // r1 = 0
        None
    } else {
        let spec = oxbpf_sys::MapSpec {
            name: "conf_mem".into(),
            map_type: oxbpf_abi::map_type::ARRAY,
            key_size: 4,
            value_size: mem.len() as u32,
            max_entries: 1,
            ..Default::default()
        };
        let m = oxbpf_sys::Map::create(&spec).map_err(|e| e.to_string())?;
        m.update(&0u32.to_le_bytes(), mem, 0)
            .map_err(|e| e.to_string())?;
        use std::os::fd::AsRawFd;
        let fd = m.fd.as_raw_fd();
        prologue.extend([
            RawInsn::new(STW, 10, 0, -4, 0),    // *(u32 *)(r10 - 4) = 0
            RawInsn::new(MOV64_X, 2, 10, 0, 0), // r2 = r10
            RawInsn::new(ADD64_K, 2, 0, 0, -4), // r2 += -4
            RawInsn::new(LDDW, 1, 1, 0, fd),    // r1 = map[fd] ll
            RawInsn::new(0, 0, 0, 0, 0),
            RawInsn::new(CALL, 0, 0, 0, helper::MAP_LOOKUP_ELEM as i32), // call map_lookup_elem
            RawInsn::new(JNE_K, 0, 0, 1, 0),                             // if r0 != 0 goto +1
            RawInsn::new(EXIT, 0, 0, 0, 0),                              // exit
            RawInsn::new(MOV64_X, 1, 0, 0, 0),                           // r1 = r0
        ]);
        Some(m)
    };
    prologue.push(RawInsn::new(MOV64_K, 2, 0, 0, mem.len() as i32)); // r2 = len
    let mut code: Vec<u8> = prologue.iter().flat_map(|r| r.to_bytes()).collect();
    code.extend_from_slice(program);
    let v = oxbpf_sys::load_program(&oxbpf_sys::ProgSpec {
        name: "conformance".into(),
        // XDP: any return value is allowed and test runs need no socket.
        prog_type: oxbpf_abi::ProgType::Xdp.id(),
        insns: &code,
        license: "GPL".into(),
        ..Default::default()
    });
    let prog = v.prog.map_err(|e| rejection(&v.log, e.errno))?;
    let r = prog
        .test_run(&[0u8; 64], None, 1)
        .map_err(|e| e.to_string())?;
    if let Some(m) = &map
        && let Ok(Some(v)) = m.lookup(&0u32.to_le_bytes())
    {
        mem.copy_from_slice(&v[..mem.len()]);
    }
    Ok(r.retval as u64)
}

fn rejection(log: &str, errno: i32) -> String {
    format!(
        "kernel verifier rejected it (errno {errno}): {}",
        oxbpf_sys::log_summary(log)
    )
}
