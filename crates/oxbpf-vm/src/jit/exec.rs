//! Running generated code: the one module of the JIT with `unsafe`.
//!
//! Invariants the code generator (`emit/`) upholds and these blocks rely
//! on (greppable: JIT-CONTRACT):
//! * the entry follows the System V ABI: it saves and restores every
//!   callee-saved register and returns with the stack as it found it, also
//!   when the program faults (it unwinds to the stack pointer saved at
//!   entry);
//! * generated code touches memory only through the [`JitCtx`] it is given,
//!   its own native stack, the BPF stack buffer, and addresses the program
//!   computes — which in checked mode are checked against the run's
//!   [`MemoryMap`](crate::memory::MemoryMap) first, and in trusted mode were
//!   proven in bounds by the verifier (its proof, checked against the
//!   program by `Vm::trust` / `LoadedObject::trust`, or the caller's promise
//!   through [`Checks::trust_unproven`](super::Checks::trust_unproven));
//! * it calls back into Rust only through `helper_fn` and `check_fn`, with
//!   a 16-byte aligned stack and the context pointer as first argument;
//!   leaf code (`emit::Compiled::leaf`) never does, and runs on a bare
//!   context (`enter_leaf`).

use super::{JitCtx, Runtime};

type EntryFn = unsafe extern "sysv64" fn(*mut JitCtx, *const u64, u64, u64) -> u64;

/// Runs the code at `target` (a program body or an entry thunk of `code`)
/// with r1..r5 = `args` and r10 = `fp`; returns r0. Errors are left in
/// the runtime.
pub(super) fn enter(
    rt: *mut Runtime<'_, '_>,
    entry: u64,
    args: [u64; 5],
    fp: u64,
    target: u64,
) -> u64 {
    let ctx: *mut JitCtx = rt.cast();
    // SAFETY: `entry` is `JitCode::entry_addr()` of the runtime's current
    // code (`rt.code`, owned by its program's cache, which outlives the
    // run): the entry routine `emit::compile` emitted into a read+execute
    // mapping, with the `EntryFn` signature (JIT-CONTRACT). `ctx` is the
    // first field of a `#[repr(C)]` Runtime that outlives the call, so the
    // callbacks may turn it back into the runtime. `target` was produced by
    // `JitCode::body_addr`/`thunk_addr` of a `JitCode` owned by a program
    // of this run (the entry program or a tail-call target of its
    // environment), so it stays mapped during the call.
    unsafe {
        (*ctx).helper_fn = on_helper as *const () as u64;
        (*ctx).check_fn = on_check as *const () as u64;
        let f: EntryFn = std::mem::transmute(entry as *const u8);
        f(ctx, args.as_ptr(), fp, target)
    }
}

/// Runs leaf code (`JitCode::leaf`: trusted, no calls, no stack, no
/// packet, no budget) on a bare context: such code touches only `ctx`
/// (and the verified program's memory) and never calls back, so no
/// runtime is needed.
pub(super) fn enter_leaf(
    ctx: &mut JitCtx,
    code: &super::JitCode,
    entry: u64,
    args: [u64; 5],
    fp: u64,
    target: u64,
) -> u64 {
    assert!(code.leaf, "enter_leaf needs leaf code");
    // Never called by leaf code; null, so that a broken promise faults at
    // address 0 instead of reading a runtime that is not there.
    ctx.helper_fn = 0;
    ctx.check_fn = 0;
    // SAFETY: `entry` and `target` are `entry_addr()`/`body_addr()` of
    // `code`, which its program's cache owns and keeps mapped read+execute
    // for the call (JIT-CONTRACT for the entry routine's signature). The
    // code is leaf code (asserted): the code generator emitted no helper
    // call, memory check, local call, thunk, packet load or budget check,
    // and uses no stack (`uses_fp` false), so it reads and writes only
    // `ctx` (a whole `JitCtx`, live and exclusively borrowed for the call),
    // its native stack and addresses the verified program computes
    // (trusted code only).
    unsafe {
        let f: EntryFn = std::mem::transmute(entry as *const u8);
        f(ctx, args.as_ptr(), fp, target)
    }
}

/// Helper calls from generated code.
extern "sysv64" fn on_helper(ctx: *mut JitCtx) -> u64 {
    // SAFETY: generated code passes the pointer `enter` gave it, which is
    // the first field of a live `#[repr(C)]` Runtime; no other reference to
    // that runtime is used while generated code runs (`enter` holds only
    // the raw pointer until it returns).
    let rt = unsafe { &mut *ctx.cast::<Runtime<'_, '_>>() };
    rt.on_helper()
}

/// Memory checks outside the stack fast path.
extern "sysv64" fn on_check(ctx: *mut JitCtx, addr: u64, info: u64) -> u64 {
    // SAFETY: as in `on_helper`.
    let rt = unsafe { &mut *ctx.cast::<Runtime<'_, '_>>() };
    rt.on_check(addr, info)
}
