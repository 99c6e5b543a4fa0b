//! Entry, exits and the code shared by every program: the entry routine,
//! the saving of BPF argument registers around calls into Rust, the shared
//! routines, the per-instruction entry thunks (callx and callbacks), the
//! cold error paths and the budget check.

#![allow(clippy::useless_conversion)]

use super::*;

impl Emitter<'_> {
    /// `extern "sysv64" fn(ctx, args: *const [u64; 5], fp, target) -> u64`:
    /// saves the host's callee-saved registers, loads r1..r5 and r10, calls
    /// `target` and returns r0; errors and early exits unwind to it with
    /// their result in the context.
    pub(super) fn entry(&mut self) -> usize {
        let start = self.a.offset().0;
        let unwind = self.unwind;
        dynasm!(self.a
            ; push rbp
            ; push rbx
            ; push r12
            ; push r13
            ; push r14
            ; push r15
            ; mov r12, rdi
            ; push QWORD [r12 + off::SAVED_RSP]
            ; mov [r12 + off::SAVED_RSP], rsp
            ; mov rbp, rdx
            ; mov r11, rcx
            ; mov r10, rsi
            ; mov rdi, [r10]
            ; mov rsi, [r10 + 8]
            ; mov rdx, [r10 + 16]
            ; mov rcx, [r10 + 24]
            ; mov r8, [r10 + 32]
            ; xor eax, eax
            ; xor ebx, ebx
            ; xor r13d, r13d
            ; xor r14d, r14d
            ; xor r15d, r15d
            ; mov r9, [r12 + off::EXECUTED]
            ; call r11
            // A normal return: r0 in rax, the stack as saved.
            ; done:
            ; mov [r12 + off::EXECUTED], r9
            ; pop QWORD [r12 + off::SAVED_RSP]
            ; pop r15
            ; pop r14
            ; pop r13
            ; pop r12
            ; pop rbx
            ; pop rbp
            ; ret
            // Errors and early exits: from any depth, with the result (if
            // any) in the context.
            ; =>unwind
            ; mov rsp, [r12 + off::SAVED_RSP]
            ; mov rax, [r12 + off::RESULT]
            ; jmp <done
        );
        start
    }

    /// Stores BPF r0..r5 (rax, rdi, rsi, rdx, rcx, r8) in the context.
    pub(super) fn save_bpf_args(&mut self) {
        dynasm!(self.a
            ; mov [r12 + off::REGS], rax
            ; mov [r12 + off::REGS + 8], rdi
            ; mov [r12 + off::REGS + 16], rsi
            ; mov [r12 + off::REGS + 24], rdx
            ; mov [r12 + off::REGS + 32], rcx
            ; mov [r12 + off::REGS + 40], r8
        );
    }

    /// Reloads BPF r1..r5 from the context (r0 is the caller's business).
    pub(super) fn restore_bpf_args(&mut self) {
        dynasm!(self.a
            ; mov rdi, [r12 + off::REGS + 8]
            ; mov rsi, [r12 + off::REGS + 16]
            ; mov rdx, [r12 + off::REGS + 24]
            ; mov rcx, [r12 + off::REGS + 32]
            ; mov r8, [r12 + off::REGS + 40]
        );
    }

    /// Calls the Rust function whose address is in rax, arguments already
    /// in place, with the stack aligned to 16 bytes as System V requires.
    pub(super) fn call_rust(&mut self) {
        dynasm!(self.a
            ; mov r11, rsp
            ; and rsp, -16
            ; push r11
            ; push r11
            ; call rax
            ; mov rsp, [rsp]
        );
    }

    /// The shared out-of-line routines.
    pub(super) fn routines(&mut self) {
        let (helper, check, error, unwind) = (self.helper, self.check, self.error, self.unwind);
        let tail = self.a.new_dynamic_label();
        // Helper call: r10 = info (pc | rem << 32 | flags), r11 = id.
        dynasm!(self.a ; =>helper);
        self.save_bpf_args();
        dynasm!(self.a
            ; mov [r12 + off::REGS + 80], rbp
            ; mov [r12 + off::EXECUTED], r9
            ; mov [r12 + off::CALL_INFO], r10
            ; mov [r12 + off::CALL_ID], r11
            ; mov rdi, r12
            ; mov rax, QWORD [r12 + off::HELPER_FN]
        );
        self.call_rust();
        dynasm!(self.a ; mov r9, [r12 + off::EXECUTED]);
        self.restore_bpf_args();
        dynasm!(self.a
            ; cmp eax, 1
            ; je =>unwind
            ; ja =>tail
            ; mov rax, [r12 + off::REGS]
            ; ret
            ; =>tail
            ; mov rax, [r12 + off::REGS]
            ; add rsp, 8
            ; jmp QWORD [r12 + off::TAIL_ENTRY]
        );
        // Memory check: r11 = address, r10 = info; keeps every register.
        dynasm!(self.a ; =>check);
        self.save_bpf_args();
        dynasm!(self.a
            ; mov [r12 + off::EXECUTED], r9
            ; mov [r12 + off::CHECK_ADDR], r11
            ; mov rsi, r11
            ; mov rdx, r10
            ; mov rdi, r12
            ; mov rax, QWORD [r12 + off::CHECK_FN]
        );
        self.call_rust();
        dynasm!(self.a
            ; test eax, eax
            ; jnz =>unwind
            ; mov r9, [r12 + off::EXECUTED]
            ; mov r11, [r12 + off::CHECK_ADDR]
            ; mov rax, [r12 + off::REGS]
        );
        self.restore_bpf_args();
        dynasm!(self.a ; ret);
        // Error: r10 = kind << 32 | pc.
        dynasm!(self.a
            ; =>error
            ; mov [r12 + off::ERR_INFO], r10
            ; jmp =>unwind
        );
    }

    /// Fixed-size entry points, one per slot, for `callx` and callbacks:
    /// each adds the instructions its block will run from there.
    pub(super) fn emit_thunks(&mut self, len: usize) -> Option<usize> {
        let label = self.thunks?;
        // Align the table so a thunk's address is base + 16 * pc.
        while !self.a.offset().0.is_multiple_of(THUNK_SIZE) {
            dynasm!(self.a ; int3);
        }
        let base = self.a.offset().0;
        dynasm!(self.a ; =>label);
        let mut fillers = Vec::new();
        for pc in 0..len {
            let start = self.a.offset().0;
            let is_start = !(pc > 0 && matches!(self.ops[pc - 1].code, 0x18 | OP_UNRESOLVED));
            if is_start {
                let add = if self.mode.budget || !self.mode.count || self.block_len[pc] != 0 {
                    0
                } else {
                    self.rem[pc] + 1
                };
                if add != 0 {
                    dynasm!(self.a ; add r9, add as i32);
                }
                let l = self.labels[pc];
                dynasm!(self.a ; jmp =>l);
            } else {
                let stub = self.a.new_dynamic_label();
                fillers.push((stub, pc));
                dynasm!(self.a ; jmp =>stub);
            }
            while self.a.offset().0 - start < THUNK_SIZE {
                dynasm!(self.a ; int3);
            }
        }
        for (stub, pc) in fillers {
            dynasm!(self.a ; =>stub);
            self.error_jump(err::FELL_OFF, pc);
        }
        Some(base)
    }

    pub(super) fn emit_cold(&mut self) {
        let cold = std::mem::take(&mut self.cold);
        for c in cold {
            match c {
                Cold::Error { at, kind, pc } => {
                    dynasm!(self.a ; =>at);
                    self.error_jump(kind, pc);
                }
                Cold::Check {
                    at,
                    back,
                    info,
                    stack_first,
                } => {
                    let check = self.check;
                    let slow = self.a.new_dynamic_label();
                    let (size, write) = ((info >> 1) & 0x7f, info & 1 != 0);
                    dynasm!(self.a ; =>at);
                    if stack_first {
                        self.cached_range(size, write, slow);
                    } else {
                        self.stack_range(size, slow);
                    }
                    dynasm!(self.a
                        ; jmp =>back
                        ; =>slow
                        ; mov r10, QWORD info as i64
                        ; call =>check
                        ; jmp =>back
                    );
                }
                Cold::DivSpecial {
                    at,
                    back,
                    dst,
                    wide,
                    modulo,
                    minus_one,
                } => {
                    dynasm!(self.a ; =>at);
                    match (minus_one, modulo, wide) {
                        // x / 0 = 0; INT_MIN % -1 = 0 and x % -1 = 0.
                        (false, false, _) | (true, true, _) => {
                            dynasm!(self.a ; xor Rd(dst), Rd(dst))
                        }
                        // x % 0 = x (zero-extended for the 32-bit form).
                        (false, true, true) => {}
                        (false, true, false) => dynasm!(self.a ; mov Rd(dst), Rd(dst)),
                        // x / -1 = -x (wrapping).
                        (true, false, true) => dynasm!(self.a ; neg Rq(dst)),
                        (true, false, false) => dynasm!(self.a ; neg Rd(dst)),
                    }
                    dynasm!(self.a ; jmp =>back);
                }
                Cold::PacketEnd { at, rem } => {
                    let unwind = self.unwind;
                    dynasm!(self.a ; =>at);
                    if rem != 0 {
                        dynasm!(self.a ; sub r9, rem as i32);
                    }
                    dynasm!(self.a
                        ; mov QWORD [r12 + off::RESULT], 0
                        ; jmp =>unwind
                    );
                }
            }
        }
    }

    pub(super) fn error_jump(&mut self, kind: u64, pc: usize) {
        let error = self.error;
        let info = (kind << 32 | pc as u64) as i64;
        dynasm!(self.a
            ; mov r10, QWORD info
            ; jmp =>error
        );
    }

    pub(super) fn cold_error(&mut self, kind: u64, pc: usize) -> DynamicLabel {
        let at = self.a.new_dynamic_label();
        self.cold.push(Cold::Error { at, kind, pc });
        at
    }

    pub(super) fn budget_check(&mut self, pc: usize) {
        let stub = self.cold_error(err::BUDGET, pc);
        dynasm!(self.a
            ; cmp r9, [r12 + off::BUDGET]
            ; jae =>stub
            ; add r9, 1
        );
    }
}
