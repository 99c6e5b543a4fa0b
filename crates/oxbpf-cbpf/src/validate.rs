//! The kernel's rules for a classic program (`bpf_check_classic` and
//! `check_load_and_stores`, net/core/filter.c): what `SO_ATTACH_FILTER`
//! and seccomp accept.

use crate::{Insn, MAXINSNS, MEMWORDS, class, misc, mode, op, rval, size, skf, src};

/// The first rule a program breaks, with the instruction it breaks it at.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error("a classic program has 1 to {MAXINSNS} instructions, this one {0}")]
    Length(usize),
    #[error("instruction {pc}: unknown opcode 0x{code:02x}")]
    Opcode { pc: usize, code: u16 },
    #[error("instruction {pc}: {msg}")]
    Rule { pc: usize, msg: String },
}

/// Whether `code` is an opcode the kernel accepts (`chk_code_allowed`).
pub fn known(code: u16) -> bool {
    let c = code & 0x07;
    match c {
        class::LD => matches!(
            code & !0x07,
            x if x == size::W | mode::ABS || x == size::H | mode::ABS || x == size::B | mode::ABS
                || x == size::W | mode::IND || x == size::H | mode::IND || x == size::B | mode::IND
                || x == size::W | mode::LEN || x == mode::IMM || x == mode::MEM
        ),
        class::LDX => matches!(
            code & !0x07,
            x if x == mode::IMM || x == mode::MEM || x == size::W | mode::LEN
                || x == mode::MSH | size::B
        ),
        class::ST | class::STX => code & !0x07 == 0,
        class::ALU => {
            let o = code & 0xf0;
            let s = code & 0x08;
            if code & !0xff != 0 || code & 0x07 != class::ALU {
                return false;
            }
            match o {
                op::NEG => s == 0,
                op::ADD
                | op::SUB
                | op::MUL
                | op::DIV
                | op::MOD
                | op::AND
                | op::OR
                | op::XOR
                | op::LSH
                | op::RSH => true,
                _ => false,
            }
        }
        class::JMP => {
            let o = code & 0xf0;
            code & !0xff == 0
                && match o {
                    op::JA => code & 0x08 == 0,
                    op::JEQ | op::JGT | op::JGE | op::JSET => true,
                    _ => false,
                }
        }
        class::RET => matches!(code & !0x07, rval::K | rval::A),
        class::MISC => matches!(code & !0x07, misc::TAX | misc::TXA),
        _ => false,
    }
}

/// Checks `insns` as the kernel does before it runs a classic program.
pub fn validate(insns: &[Insn]) -> Result<(), ValidateError> {
    let n = insns.len();
    if n == 0 || n > MAXINSNS {
        return Err(ValidateError::Length(n));
    }
    let rule = |pc: usize, msg: String| Err(ValidateError::Rule { pc, msg });
    for (pc, i) in insns.iter().enumerate() {
        if !known(i.code) {
            return Err(ValidateError::Opcode { pc, code: i.code });
        }
        let c = i.class();
        match c {
            class::ALU => {
                let o = i.code & 0xf0;
                if i.code & 0x08 == src::K {
                    if matches!(o, op::DIV | op::MOD) && i.k == 0 {
                        return rule(pc, "division by a constant zero".into());
                    }
                    if matches!(o, op::LSH | op::RSH) && i.k >= 32 {
                        return rule(pc, format!("shift by {} (at most 31)", i.k));
                    }
                }
            }
            class::LD | class::LDX | class::ST | class::STX
                if (c >= class::ST || i.code & 0xe0 == mode::MEM) && i.k >= MEMWORDS =>
            {
                return rule(
                    pc,
                    format!("scratch memory M[{}] does not exist (M[0]..M[15])", i.k),
                );
            }
            class::JMP => {
                if i.code & 0xf0 == op::JA {
                    if i.k as u64 >= (n - pc - 1) as u64 {
                        return rule(
                            pc,
                            format!(
                                "ja jumps to {}, past the end ({n} instructions)",
                                pc as u64 + 1 + i.k as u64
                            ),
                        );
                    }
                } else {
                    for (what, off) in [("jt", i.jt), ("jf", i.jf)] {
                        if pc + 1 + off as usize >= n {
                            return rule(
                                pc,
                                format!(
                                    "{what} jumps to {}, past the end ({n} instructions)",
                                    pc + 1 + off as usize
                                ),
                            );
                        }
                    }
                }
            }
            _ => {}
        }
        if c == class::LD
            && matches!(i.code & 0xe0, mode::ABS)
            && i.k >= skf::AD_OFF
            && skf::ancillary(i.k).is_none()
        {
            return rule(
                pc,
                format!(
                    "ancillary load at SKF_AD_OFF+{} is not one the kernel knows",
                    i.k - skf::AD_OFF
                ),
            );
        }
    }
    let last = insns[n - 1];
    if last.class() != class::RET {
        return rule(n - 1, "the program must end in ret".into());
    }
    // Scratch memory must be written before it is read, on every path
    // (check_load_and_stores: a forward pass, jumps intersect).
    let mut masks = vec![u16::MAX; n];
    let mut valid: u16 = 0;
    for (pc, i) in insns.iter().enumerate() {
        valid &= masks[pc];
        match i.class() {
            class::ST | class::STX => valid |= 1 << i.k,
            class::LD | class::LDX if i.code & 0xe0 == mode::MEM && valid & (1 << i.k) == 0 => {
                return rule(
                    pc,
                    format!("reads M[{}], which is not written on every path here", i.k),
                );
            }
            class::JMP => {
                if i.code & 0xf0 == op::JA {
                    masks[pc + 1 + i.k as usize] &= valid;
                } else {
                    masks[pc + 1 + i.jt as usize] &= valid;
                    masks[pc + 1 + i.jf as usize] &= valid;
                }
                valid = u16::MAX;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble;

    fn check(text: &str) -> Result<(), ValidateError> {
        validate(&assemble(text).unwrap())
    }

    #[test]
    fn each_rule_names_its_instruction() {
        assert_eq!(check("ldh [12]\nret #0\n"), Ok(()));
        assert_eq!(validate(&[]), Err(ValidateError::Length(0)));
        assert!(matches!(
            check("ldh [12]\n"),
            Err(ValidateError::Rule { pc: 0, .. })
        ));
        assert!(matches!(
            check("ld #1\ndiv #0\nret a\n"),
            Err(ValidateError::Rule { pc: 1, .. })
        ));
        assert!(matches!(
            check("ld #1\nlsh #32\nret a\n"),
            Err(ValidateError::Rule { pc: 1, .. })
        ));
        assert!(matches!(
            check("ld M[16]\nret a\n"),
            Err(ValidateError::Rule { pc: 0, .. })
        ));
        assert!(matches!(
            check("ld M[3]\nret a\n"),
            Err(ValidateError::Rule { pc: 0, .. })
        ));
        // Written on one way only.
        let e = check("ldh [12]\njeq #1 jt 2 jf 3\nst M[1]\nld M[1]\nret a\n");
        assert!(matches!(e, Err(ValidateError::Rule { pc: 3, .. })), "{e:?}");
        assert_eq!(
            check("ld #0\nst M[1]\njeq #1 jt 3 jf 4\nld M[1]\nret a\n"),
            Ok(())
        );
        assert_eq!(
            validate(&[Insn::new(0x15, 5, 0, 0), Insn::new(6, 0, 0, 0)]),
            Err(ValidateError::Rule {
                pc: 0,
                msg: "jt jumps to 6, past the end (2 instructions)".into()
            })
        );
        assert_eq!(
            validate(&[Insn::new(0xff, 0, 0, 0)]),
            Err(ValidateError::Opcode { pc: 0, code: 0xff })
        );
        assert!(
            validate(&[
                Insn::new(0x20, 0, 0, skf::AD_OFF + 44),
                Insn::new(0x16, 0, 0, 0)
            ])
            .is_ok()
        );
        assert!(
            validate(&[
                Insn::new(0x20, 0, 0, skf::AD_OFF + 1000),
                Insn::new(0x16, 0, 0, 0)
            ])
            .is_err()
        );
    }
}
