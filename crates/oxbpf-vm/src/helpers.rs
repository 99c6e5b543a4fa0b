//! Host functions that programs call by id (`call N`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::memory::MemoryMap;

/// What a helper tells the engine to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperOutcome {
    /// Continue with this value in `r0`.
    Return(u64),
    /// Stop the whole program now with this value in `r0`.
    Exit(u64),
    /// `bpf_tail_call`: continue in program `program` of the environment
    /// (the engine enforces the limit of 33 and returns an error code in
    /// `r0` when the call cannot be made).
    TailCall { program: u32 },
    /// `bpf_loop`: call the subprogram at `callback` (a function address)
    /// with (index, ctx) up to `nr` times until it returns non-zero.
    Loop { nr: u64, callback: u64, ctx: u64 },
    /// `bpf_for_each_map_elem`: call `callback` with (map, &key, &value,
    /// ctx) for each element of map `map` until it returns non-zero.
    ForEach { map: usize, callback: u64, ctx: u64 },
}

/// What a helper sees besides its five arguments.
pub struct HelperContext<'m, 'a> {
    /// Checked access to every region of the running program.
    pub memory: &'m mut MemoryMap<'a>,
    /// Slot index of the calling instruction.
    pub pc: usize,
    /// Maps, programs and output of the run, when there is one.
    pub env: Option<&'m crate::env::Env>,
    /// The packet of packet programs, which some helpers move or resize.
    pub packet: &'m mut Option<crate::interpreter::PacketState>,
}

/// A helper failure; the engine reports it with the helper id and pc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperError {
    pub message: String,
}

impl HelperError {
    pub fn new(message: impl Into<String>) -> HelperError {
        HelperError {
            message: message.into(),
        }
    }
}

impl<E: std::fmt::Display> From<E> for HelperError {
    fn from(e: E) -> Self {
        HelperError::new(e.to_string())
    }
}

/// Signature of a helper: arguments are `r1`..`r5`.
pub type HelperFn = dyn Fn(&mut HelperContext<'_, '_>, [u64; 5]) -> Result<HelperOutcome, HelperError>
    + Send
    + Sync;

/// Helpers registered by id: the kernel's ids (small numbers) index a
/// vector, anything else goes to a hash map.
#[derive(Clone, Default)]
pub struct Helpers {
    dense: Vec<Option<Arc<HelperFn>>>,
    table: HashMap<u32, Arc<HelperFn>>,
}

/// Ids below this are kept in the vector.
const DENSE_IDS: u32 = 1024;

impl Helpers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the helper with this id.
    pub fn register(
        &mut self,
        id: u32,
        f: impl Fn(&mut HelperContext<'_, '_>, [u64; 5]) -> Result<HelperOutcome, HelperError>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        let f: Arc<HelperFn> = Arc::new(f);
        if id < DENSE_IDS {
            let i = id as usize;
            if self.dense.len() <= i {
                self.dense.resize(i + 1, None);
            }
            self.dense[i] = Some(f);
        } else {
            self.table.insert(id, f);
        }
        self
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<&Arc<HelperFn>> {
        if id < DENSE_IDS {
            self.dense.get(id as usize).and_then(|f| f.as_ref())
        } else {
            self.table.get(&id)
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        self.get(id).is_some()
    }

    /// The helpers bpf_conformance expects: id 5 returns its first argument
    /// and stops the program when that value is zero (ubpf's "unwind").
    pub fn conformance() -> Self {
        let mut h = Helpers::new();
        h.register(CONFORMANCE_UNWIND, |_, args| {
            Ok(if args[0] == 0 {
                HelperOutcome::Exit(0)
            } else {
                HelperOutcome::Return(args[0])
            })
        });
        h
    }
}

/// Helper id the conformance suite uses for its unwind test.
pub const CONFORMANCE_UNWIND: u32 = 5;
