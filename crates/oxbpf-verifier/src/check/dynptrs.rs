//! Dynptrs (`struct bpf_dynptr`), as the kernel's verifier treats them: 16
//! bytes on the stack (STACK_DYNPTR slots) that only the dynptr helpers and
//! kfuncs may use, made by `bpf_dynptr_from_mem` (a local dynptr over a
//! map value) or `bpf_ringbuf_reserve_dynptr` (a ring buffer record: a
//! reference, submitted or discarded on every path, even when the
//! reservation failed), read and written through `bpf_dynptr_read/write`,
//! sliced by `bpf_dynptr_data` and the `bpf_dynptr_slice` kfuncs.

use super::{Path, STACK, VResult, Verifier, err};
use crate::state::{DynKind, DynSlot, Kind, RefKind, Reg, byte};

/// What a dynptr argument must be.
#[derive(Clone, Copy, Debug)]
pub(super) struct Want {
    /// Uninitialized stack the call makes a dynptr of (`MEM_UNINIT`).
    pub init: bool,
    pub local: bool,
    pub ringbuf: bool,
}

/// A dynptr argument: where it is and what it is (after the call's
/// initialization, for `init`).
#[derive(Clone, Copy, Debug)]
pub(super) struct DynArg {
    pub frame: usize,
    pub at: usize,
    pub slot: DynSlot,
}

impl Verifier<'_> {
    /// A dynptr argument, checked as the kernel's process_dynptr_func: a
    /// constant, 8-byte aligned stack address of 16 bytes; for `init`
    /// stack holding no referenced dynptr (then written and made one of the
    /// kind `want` names), else an initialized dynptr of a kind `want`
    /// allows. `what` names the helper or kfunc.
    pub(super) fn dynptr_arg(
        &mut self,
        path: &mut Path,
        pc: usize,
        rn: usize,
        r: &Reg,
        want: Want,
        what: &str,
    ) -> VResult<DynArg> {
        let Kind::Stack { frame } = r.kind else {
            return err(
                pc,
                format!(
                    "arg#{} expected pointer to stack or const struct bpf_dynptr: R{rn} is {} ({what})",
                    rn - 1,
                    r.kind.name()
                ),
            );
        };
        let Some(v) = r.var.konst() else {
            return err(
                pc,
                format!("dynptr has to be at a constant offset (R{rn} of {what})"),
            );
        };
        let off = r.off.wrapping_add(v as i64);
        let at = off + STACK;
        if off % 8 != 0 || at < 0 || at + 16 > STACK {
            return err(pc, format!("cannot pass in dynptr at an offset={off}"));
        }
        let (fi, at) = (frame as usize, at as usize);
        if fi >= path.state.frames.len() {
            return err(pc, format!("R{rn} points into a frame that has returned"));
        }
        if want.init {
            let held = path.state.frames[fi]
                .stack
                .dynptrs
                .range(at.saturating_sub(15)..at + 16)
                .find(|(k, d)| **k + 16 > at && d.ref_id != 0)
                .map(|(k, _)| *k);
            if let Some(k) = held {
                return err(
                    pc,
                    format!(
                        "cannot overwrite referenced dynptr at fp{} ({what} makes a new one there): submit or discard it first",
                        k as i64 - STACK
                    ),
                );
            }
            if path.state.frames[fi].stack.bytes[at..at + 16].contains(&byte::ITER) {
                return err(
                    pc,
                    format!(
                        "arg#{} expected uninitialized dynptr: fp{off} holds an iterator",
                        rn - 1
                    ),
                );
            }
            // The call writes the whole dynptr (destroying a local one).
            for j in [0, 8] {
                self.mem_access(path, pc, rn, r, j, 8, Some(Reg::unknown()))?;
            }
            let kind = if want.ringbuf {
                DynKind::Ringbuf
            } else {
                DynKind::Local
            };
            let ref_id = if kind == DynKind::Ringbuf {
                path.state.acquire(RefKind::RingbufDynptr, pc)
            } else {
                0
            };
            let slot = DynSlot {
                kind,
                ref_id,
                rdonly: false,
            };
            self.make_dynptr(path, fi, at, slot);
            return Ok(DynArg {
                frame: fi,
                at,
                slot,
            });
        }
        let Some(slot) = path.state.frames[fi].stack.dynptrs.get(&at).copied() else {
            return err(
                pc,
                format!(
                    "Expected an initialized dynptr as arg #{} of {what}: fp{off} holds none",
                    rn - 1
                ),
            );
        };
        let kind_ok = match slot.kind {
            DynKind::Ringbuf => want.ringbuf || !want.local,
            _ => want.local || !want.ringbuf,
        };
        if !kind_ok {
            return err(
                pc,
                format!(
                    "Expected a dynptr of type {} as arg #{} of {what}: fp{off} is a {} dynptr",
                    if want.ringbuf { "ringbuf" } else { "local" },
                    rn - 1,
                    slot.kind.name()
                ),
            );
        }
        self.stack_read(path, fi, at, at + 16);
        Ok(DynArg {
            frame: fi,
            at,
            slot,
        })
    }

    /// Makes bytes `at..at + 16` of frame `fi` the dynptr `slot` (spills
    /// and constants there end).
    pub(super) fn make_dynptr(&mut self, path: &mut Path, fi: usize, at: usize, slot: DynSlot) {
        let stack = &mut path.state.frames[fi].stack;
        stack.spills.retain(|k, _| *k + 8 <= at || *k >= at + 16);
        stack.consts.retain(|k, _| *k + 8 <= at || *k >= at + 16);
        stack.bytes[at..at + 16].fill(byte::DYNPTR);
        stack.dynptrs.insert(at, slot);
    }
}
