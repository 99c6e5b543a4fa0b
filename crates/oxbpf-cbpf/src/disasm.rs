//! The listing libpcap prints (`tcpdump -d`, its `bpf_image`), exactly.

use crate::{Insn, class, mode, op, rval, size, src};

/// Mnemonic and operand of an instruction (`n` its index, for `ja`).
fn parts(i: Insn, n: usize) -> (&'static str, String) {
    let k = i.k;
    let sk = k as i32;
    let c = i.code;
    let hex = || format!("#0x{k:x}");
    let dec = || format!("#{sk}");
    match c {
        x if x == class::RET | rval::K => ("ret", dec()),
        x if x == class::RET | rval::A => ("ret", String::new()),
        // Ancillary loads by libpcap's names (`ldb [vlanp]`).
        x if x & 0xe7 == class::LD | mode::ABS
            && let Some(name) = crate::skf::ancillary(k) =>
        {
            (
                ["ld", "ldh", "ldb"][(x as usize >> 3) & 3],
                format!("[{name}]"),
            )
        }
        x if x == class::LD | size::W | mode::ABS => ("ld", format!("[{sk}]")),
        x if x == class::LD | size::H | mode::ABS => ("ldh", format!("[{sk}]")),
        x if x == class::LD | size::B | mode::ABS => ("ldb", format!("[{sk}]")),
        x if x == class::LD | size::W | mode::LEN => ("ld", "#pktlen".into()),
        x if x == class::LDX | size::W | mode::LEN => ("ldx", "#pktlen".into()),
        x if x == class::LD | size::W | mode::IND => ("ld", format!("[x + {sk}]")),
        x if x == class::LD | size::H | mode::IND => ("ldh", format!("[x + {sk}]")),
        x if x == class::LD | size::B | mode::IND => ("ldb", format!("[x + {sk}]")),
        x if x == class::LD | mode::IMM => ("ld", hex()),
        x if x == class::LDX | mode::IMM => ("ldx", hex()),
        x if x == class::LDX | mode::MSH | size::B => ("ldxb", format!("4*([{sk}]&0xf)")),
        x if x == class::LD | mode::MEM => ("ld", format!("M[{sk}]")),
        x if x == class::LDX | mode::MEM => ("ldx", format!("M[{sk}]")),
        x if x == class::ST => ("st", format!("M[{sk}]")),
        x if x == class::STX => ("stx", format!("M[{sk}]")),
        x if x == class::JMP | op::JA => ("ja", format!("{}", n as i64 + 1 + k as i64)),
        x if x == class::MISC | crate::misc::TAX => ("tax", String::new()),
        x if x == class::MISC | crate::misc::TXA => ("txa", String::new()),
        x if x == class::ALU | op::NEG => ("neg", String::new()),
        x if x & 0x07 == class::JMP => {
            let name = match x & 0xf0 {
                op::JGT => "jgt",
                op::JGE => "jge",
                op::JEQ => "jeq",
                op::JSET => "jset",
                _ => return unimp(c),
            };
            match x & !0xf0 {
                y if y == class::JMP | src::K => (name, hex()),
                y if y == class::JMP | src::X => (name, "x".into()),
                _ => unimp(c),
            }
        }
        x if x & 0x07 == class::ALU => {
            let (name, hexk) = match x & 0xf0 {
                op::ADD => ("add", false),
                op::SUB => ("sub", false),
                op::MUL => ("mul", false),
                op::DIV => ("div", false),
                op::MOD => ("mod", false),
                op::AND => ("and", true),
                op::OR => ("or", true),
                op::XOR => ("xor", true),
                op::LSH => ("lsh", false),
                op::RSH => ("rsh", false),
                _ => return unimp(c),
            };
            match x & !0xf0 {
                y if y == class::ALU | src::K => (name, if hexk { hex() } else { dec() }),
                y if y == class::ALU | src::X => (name, "x".into()),
                _ => unimp(c),
            }
        }
        _ => unimp(c),
    }
}

fn unimp(code: u16) -> (&'static str, String) {
    ("unimp", format!("0x{code:x}"))
}

/// One line of the listing for instruction `i` at index `n`, as libpcap's
/// `bpf_image` prints it.
pub fn image(i: Insn, n: usize) -> String {
    let (op, operand) = parts(i, n);
    if i.class() == class::JMP && i.code & 0xf0 != op::JA {
        format!(
            "({n:03}) {op:<8} {operand:<16} jt {}\tjf {}",
            n + 1 + i.jt as usize,
            n + 1 + i.jf as usize
        )
    } else {
        format!("({n:03}) {op:<8} {operand}")
    }
}

/// The whole listing (`tcpdump -d`), a line per instruction.
pub fn listing(insns: &[Insn]) -> String {
    insns
        .iter()
        .enumerate()
        .map(|(n, i)| image(*i, n) + "\n")
        .collect()
}
