//! Which BPF registers are live after each instruction (backward dataflow
//! to a fixed point), so the code generator can drop work whose result
//! nothing reads: the byte a joined 16-bit load makes redundant, the
//! address register of a store addressed as `[base + index]`.
//!
//! Conservative where the program leaves the analysed code: a call
//! (helper, subprogram or `callx`) reads every register, atomics and
//! legacy packet loads are assumed to write nothing, and an opcode not
//! listed here reads everything.

use crate::program::{FUNC_ADDR_TAG, Op};
use oxbpf_isa::raw::opcode::*;
use oxbpf_isa::raw::*;

/// Bit `r` set: BPF register `r` is live.
pub(crate) type Regs = u16;

const ALL: Regs = (1 << 11) - 1;

fn bit(r: u8) -> Regs {
    if r <= 10 { 1 << r } else { ALL }
}

/// Registers read and written by one instruction; `in_sub`: the
/// instruction belongs to a subprogram, whose `exit` hands r0..r5 back to
/// the caller (the interpreter restores only r6..r10 after a call).
fn use_def(o: &Op, in_sub: bool) -> (Regs, Regs) {
    let class = o.code & 7;
    let x = o.code & BPF_X != 0;
    match class {
        BPF_ALU | BPF_ALU64 => match o.code & 0xf0 {
            BPF_MOV if x => (bit(o.src), bit(o.dst)),
            BPF_MOV => (0, bit(o.dst)),
            BPF_NEG | BPF_END => (bit(o.dst), bit(o.dst)),
            _ if x => (bit(o.dst) | bit(o.src), bit(o.dst)),
            _ => (bit(o.dst), bit(o.dst)),
        },
        BPF_LDX => (bit(o.src), bit(o.dst)),
        BPF_ST => (bit(o.dst), 0),
        BPF_STX => match o.code {
            0x63 | 0x6b | 0x73 | 0x7b => (bit(o.dst) | bit(o.src), 0),
            // Atomics: read the address, the operand and r0 (cmpxchg).
            _ => (bit(o.dst) | bit(o.src) | 1, 0),
        },
        BPF_LD => match o.code {
            LDDW => (0, bit(o.dst)),
            // Legacy packet loads read r6 (the context) and the index.
            0x20 | 0x28 | 0x30 | 0x40 | 0x48 | 0x50 => (bit(6) | bit(o.src), 0),
            _ => (ALL, 0),
        },
        BPF_JMP | BPF_JMP32 => match o.code {
            0x05 | 0x06 => (0, 0),
            CALL | CALLX => (ALL, 1),
            EXIT if in_sub => (0b11_1111, 0),
            EXIT => (1, 0),
            _ if x => (bit(o.dst) | bit(o.src), 0),
            _ => (bit(o.dst), 0),
        },
        _ => (ALL, 0),
    }
}

/// Live registers after each instruction of `ops` (one per slot plus the
/// end sentinel, as the code generator gets them).
pub(crate) fn live_out(ops: &[Op]) -> Vec<Regs> {
    let len = ops.len().saturating_sub(1);
    // Subprograms start at the first call target or function address; the
    // main program is everything before.
    let first_sub = ops[..len]
        .iter()
        .filter_map(|o| match o.code {
            CALL if o.src == BPF_PSEUDO_CALL => Some(o.off as usize),
            LDDW if (o.imm as u64) & !0xffff_ffff == FUNC_ADDR_TAG => {
                Some((o.imm as u64 & 0xffff_ffff) as usize)
            }
            _ => None,
        })
        .min()
        .unwrap_or(len);
    let mut live_in = vec![0 as Regs; len + 1];
    let mut out = vec![0 as Regs; len + 1];
    let succ = |pc: usize, o: &Op| -> [Option<usize>; 2] {
        let next = pc + if o.code == LDDW { 2 } else { 1 };
        let target = (o.off as usize).min(len);
        match o.code {
            EXIT => [None, None],
            0x05 | 0x06 => [Some(target), None],
            c if matches!(c & 7, BPF_JMP | BPF_JMP32) && !matches!(c, CALL | CALLX) => {
                [Some(next.min(len)), Some(target)]
            }
            _ => [Some(next.min(len)), None],
        }
    };
    loop {
        let mut changed = false;
        for pc in (0..len).rev() {
            let o = &ops[pc];
            let mut live = 0;
            for s in succ(pc, o).into_iter().flatten() {
                live |= live_in[s];
            }
            let (u, d) = use_def(o, pc >= first_sub);
            let inn = u | (live & !d);
            out[pc] = live;
            if inn != live_in[pc] {
                live_in[pc] = inn;
                changed = true;
            }
        }
        if !changed {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Program;

    fn ops(text: &[(u8, u8, u8, i16, i32)]) -> Vec<Op> {
        let slots = text
            .iter()
            .map(|&(c, d, s, o, i)| oxbpf_isa::RawInsn::new(c, d, s, o, i))
            .collect();
        Program::from_slots(slots).expect("valid").ops
    }

    #[test]
    fn straight_line_and_exit() {
        // r2 = 1; r3 = r2; r0 = r3; exit
        let o = ops(&[
            (0xb7, 2, 0, 0, 1),
            (0xbf, 3, 2, 0, 0),
            (0xbf, 0, 3, 0, 0),
            (EXIT, 0, 0, 0, 0),
        ]);
        let l = live_out(&o);
        assert_eq!(l[0], 1 << 2);
        assert_eq!(l[1], 1 << 3);
        assert_eq!(l[2], 1 << 0);
        assert_eq!(l[3], 0);
    }

    #[test]
    fn loops_carry_liveness_around_the_back_edge() {
        // r1 = 0; r2 = 0; loop: r2 += r1; r1 += 1; if r1 != 10 goto loop;
        // r0 = r2; exit — r1 and r2 stay live across the back edge, r3
        // (written inside and never read) never is.
        let o = ops(&[
            (0xb7, 1, 0, 0, 0),
            (0xb7, 2, 0, 0, 0),
            (0x0f, 2, 1, 0, 0),
            (0xb7, 3, 0, 0, 5),
            (0x07, 1, 0, 0, 1),
            (0x55, 1, 0, -4, 10),
            (0xbf, 0, 2, 0, 0),
            (EXIT, 0, 0, 0, 0),
        ]);
        let l = live_out(&o);
        assert_eq!(l[5], 1 << 1 | 1 << 2);
        assert_eq!(l[3], 1 << 1 | 1 << 2);
        assert!(l.iter().all(|&r| r & 1 << 3 == 0));
    }

    #[test]
    fn subprogram_exits_hand_back_r0_to_r5() {
        // r3 = 0; call +3; r0 = r3; r0 -= r1; exit; sub: r3 = r1;
        // r3 += 5; r0 = 1; exit — the caller reads the callee's r3.
        let o = ops(&[
            (0xb7, 3, 0, 0, 0),
            (CALL, 0, 1, 0, 3),
            (0xbf, 0, 3, 0, 0),
            (0x1f, 0, 1, 0, 0),
            (EXIT, 0, 0, 0, 0),
            (0xbf, 3, 1, 0, 0),
            (0x07, 3, 0, 0, 5),
            (0xb7, 0, 0, 0, 1),
            (EXIT, 0, 0, 0, 0),
        ]);
        let l = live_out(&o);
        assert_ne!(l[6] & 1 << 3, 0, "r3 live at the subprogram's exit");
        assert_eq!(l[4], 0, "nothing is read after the main exit");
    }

    #[test]
    fn calls_read_every_register() {
        // r6 = 1; call 5; r0 = 0; exit: r6 is live before the call.
        let o = ops(&[
            (0xb7, 6, 0, 0, 1),
            (CALL, 0, 0, 0, 5),
            (0xb7, 0, 0, 0, 0),
            (EXIT, 0, 0, 0, 0),
        ]);
        assert_eq!(live_out(&o)[0], ALL);
    }
}
