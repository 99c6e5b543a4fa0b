//! Classic BPF (cBPF), the filter machine of tcpdump, libpcap, socket
//! filters and seccomp: the `struct sock_filter` encoding (8 bytes: a
//! 16-bit opcode, two 8-bit jump offsets, a 32-bit constant), the text
//! forms libpcap prints (`tcpdump -d` listing, `-dd` C initializers, `-ddd`
//! decimal), an assembler for the listing, the kernel's validation rules
//! (`bpf_check_classic`), a reference interpreter, and the kernel's
//! translation to eBPF (`bpf_convert_filter`) so that every oxbpf engine
//! runs classic filters.

mod asm;
mod disasm;
mod ebpf;
mod filter;
mod interp;
mod opt;
mod validate;

pub use asm::{AsmError, assemble};
pub use disasm::{image, listing};
pub use ebpf::{Hook, TranslateError, to_ebpf, to_ebpf_for};
pub use filter::{FilterError, Link, Options, SNAPLEN, compile, compile_with};
pub use interp::{Meta, run};
pub use opt::optimize;
pub use validate::{ValidateError, known, validate};

/// Instruction classes (`BPF_CLASS`).
pub mod class {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ST: u16 = 0x02;
    pub const STX: u16 = 0x03;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;
}

/// Load sizes (`BPF_SIZE`).
pub mod size {
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
}

/// Addressing modes (`BPF_MODE`).
pub mod mode {
    pub const IMM: u16 = 0x00;
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MEM: u16 = 0x60;
    pub const LEN: u16 = 0x80;
    pub const MSH: u16 = 0xa0;
}

/// ALU operations and jump conditions (`BPF_OP`).
pub mod op {
    pub const ADD: u16 = 0x00;
    pub const SUB: u16 = 0x10;
    pub const MUL: u16 = 0x20;
    pub const DIV: u16 = 0x30;
    pub const OR: u16 = 0x40;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const RSH: u16 = 0x70;
    pub const NEG: u16 = 0x80;
    pub const MOD: u16 = 0x90;
    pub const XOR: u16 = 0xa0;
    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JGE: u16 = 0x30;
    pub const JSET: u16 = 0x40;
}

/// Operand source (`BPF_SRC`): the constant `k` or the index register X.
pub mod src {
    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
}

/// Return value source (`BPF_RVAL`): `k`, X or the accumulator A.
pub mod rval {
    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
    pub const A: u16 = 0x10;
}

/// `BPF_MISC` operations.
pub mod misc {
    pub const TAX: u16 = 0x00;
    pub const TXA: u16 = 0x80;
}

/// Scratch memory words (`BPF_MEMWORDS`).
pub const MEMWORDS: u32 = 16;
/// The kernel's limit on a classic program (`BPF_MAXINSNS`).
pub const MAXINSNS: usize = 4096;

/// The kernel's ancillary loads: `ld [SKF_AD_OFF + n]` reads skb metadata.
pub mod skf {
    pub const AD_OFF: u32 = 0xffff_f000;
    pub const NET_OFF: u32 = 0xfff0_0000;
    pub const LL_OFF: u32 = 0xffe0_0000;
    /// Ancillary fields by offset from [`AD_OFF`], with libpcap's names.
    pub const ANCILLARY: &[(u32, &str)] = &[
        (0, "proto"),
        (4, "type"),
        (8, "ifidx"),
        (12, "nla"),
        (16, "nlan"),
        (20, "mark"),
        (24, "queue"),
        (28, "hatype"),
        (32, "rxhash"),
        (36, "cpu"),
        (40, "xor_x"),
        (44, "vlan_tci"),
        (48, "vlanp"),
        (52, "poff"),
        (56, "rand"),
        (60, "vlan_tpid"),
    ];

    /// The name of ancillary offset `k` (an absolute `ld` constant), if it
    /// is one the kernel knows.
    pub fn ancillary(k: u32) -> Option<&'static str> {
        let off = k.checked_sub(AD_OFF)?;
        ANCILLARY.iter().find(|(o, _)| *o == off).map(|(_, n)| *n)
    }
}

/// One `struct sock_filter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Insn {
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    pub fn class(self) -> u16 {
        self.code & 0x07
    }

    /// The instruction with the fields its opcode ignores zeroed (`k` of
    /// `tax`, `txa`, `neg`, `ret a`, `ld #pktlen` and of X-operand ALU and
    /// jump instructions; `jt`/`jf` of all but conditional jumps). libpcap
    /// leaves stale values there; the listing does not show them.
    pub fn canonical(self) -> Insn {
        let mut i = self;
        let c = i.class();
        let conditional = c == class::JMP && i.code & 0xf0 != op::JA;
        if !conditional {
            i.jt = 0;
            i.jf = 0;
        }
        let x_operand = matches!(c, class::ALU | class::JMP) && i.code & 0x08 == src::X;
        let no_k = c == class::MISC
            || (c == class::ALU && i.code & 0xf0 == op::NEG)
            || (c == class::RET && i.code & 0x18 != rval::K)
            || (matches!(c, class::LD | class::LDX) && i.code & 0xe0 == mode::LEN)
            || (x_operand && !(c == class::JMP && i.code & 0xf0 == op::JA));
        if no_k {
            i.k = 0;
        }
        i
    }

    /// The 8 bytes of the kernel's encoding (host order, as
    /// `SO_ATTACH_FILTER` and `seccomp(2)` take them on this machine).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.code.to_le_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 8]) -> Insn {
        Insn {
            code: u16::from_le_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// Why bytes or text are not a classic program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a classic program is a whole number of 8-byte instructions: {0} bytes is not")]
    Length(usize),
    #[error("line {line}:{col}: {msg}")]
    Text {
        line: usize,
        col: usize,
        msg: String,
    },
}

/// Instructions from the kernel's binary encoding.
pub fn decode(bytes: &[u8]) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(8) {
        return Err(DecodeError::Length(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn::from_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// The kernel's binary encoding.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.to_bytes()).collect()
}

/// `tcpdump -ddd` text: the instruction count, then `code jt jf k` in
/// decimal, one instruction a line (also what `bpf_asm` and iptables'
/// `-m bpf --bytecode` read, with `,` between instructions).
pub fn from_decimal(text: &str) -> Result<Vec<Insn>, DecodeError> {
    let mut lines = Vec::new();
    for (n, line) in text.split(['\n', ',']).enumerate() {
        let t = line.trim();
        if !t.is_empty() {
            lines.push((n + 1, line, t));
        }
    }
    let Some(&(ln, _, first)) = lines.first() else {
        return Err(DecodeError::Text {
            line: 1,
            col: 1,
            msg: "empty program: expected the instruction count".into(),
        });
    };
    let count: usize = first.parse().map_err(|_| DecodeError::Text {
        line: ln,
        col: 1,
        msg: format!("expected the instruction count, found {first:?}"),
    })?;
    let mut out = Vec::new();
    for &(ln, raw, _) in &lines[1..] {
        let mut fields = Vec::new();
        let mut col = 1;
        for part in raw.split(' ') {
            if !part.is_empty() {
                fields.push((col, part));
            }
            col += part.len() + 1;
        }
        if fields.len() != 4 {
            return Err(DecodeError::Text {
                line: ln,
                col: 1,
                msg: format!("expected `code jt jf k`, found {} fields", fields.len()),
            });
        }
        let num = |i: usize, max: u64| -> Result<u64, DecodeError> {
            let (c, s) = fields[i];
            s.parse::<u64>()
                .ok()
                .filter(|v| *v <= max)
                .ok_or_else(|| DecodeError::Text {
                    line: ln,
                    col: c,
                    msg: format!("{s:?} is not a number in 0..={max}"),
                })
        };
        out.push(Insn {
            code: num(0, u16::MAX as u64)? as u16,
            jt: num(1, 255)? as u8,
            jf: num(2, 255)? as u8,
            k: num(3, u32::MAX as u64)? as u32,
        });
    }
    if out.len() != count {
        return Err(DecodeError::Text {
            line: ln,
            col: 1,
            msg: format!("the count says {count} instructions, {} follow", out.len()),
        });
    }
    Ok(out)
}

/// `tcpdump -ddd` text.
pub fn to_decimal(insns: &[Insn]) -> String {
    let mut s = format!("{}\n", insns.len());
    for i in insns {
        s.push_str(&format!("{} {} {} {}\n", i.code, i.jt, i.jf, i.k));
    }
    s
}

/// `tcpdump -dd` text: C initializers of `struct sock_filter`.
pub fn to_c(insns: &[Insn]) -> String {
    insns
        .iter()
        .map(|i| format!("{{ 0x{:x}, {}, {}, 0x{:08x} }},\n", i.code, i.jt, i.jf, i.k))
        .collect()
}

/// Why an input is not a classic program, in any of its forms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Asm(#[from] AsmError),
}

/// A classic program in whichever form `data` is: `tcpdump -ddd` numbers
/// (the first line is the count), a listing (`tcpdump -d`, text), or the
/// kernel's binary encoding.
pub fn read(data: &[u8]) -> Result<Vec<Insn>, ReadError> {
    if let Ok(text) = std::str::from_utf8(data)
        && !text.contains('\0')
    {
        let first = text.lines().map(str::trim).find(|l| !l.is_empty());
        if first.is_some_and(|l| {
            l.split(',')
                .next()
                .unwrap_or("")
                .trim()
                .parse::<usize>()
                .is_ok()
        }) {
            return Ok(from_decimal(text)?);
        }
        if first.is_some() {
            return Ok(assemble(text)?);
        }
    }
    Ok(decode(data)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let p = vec![
            Insn::new(0x28, 0, 0, 12),
            Insn::new(0x15, 0, 1, 0x800),
            Insn::new(6, 0, 0, 0xffff),
        ];
        assert_eq!(decode(&encode(&p)).unwrap(), p);
        assert_eq!(decode(&[0; 9]), Err(DecodeError::Length(9)));
    }

    #[test]
    fn decimal_round_trip_and_errors() {
        let p = vec![Insn::new(0x28, 0, 0, 12), Insn::new(6, 0, 0, 262144)];
        assert_eq!(from_decimal(&to_decimal(&p)).unwrap(), p);
        assert_eq!(from_decimal("2,40 0 0 12,6 0 0 262144").unwrap(), p);
        let e = from_decimal("1\n40 0 x 12\n").unwrap_err().to_string();
        assert_eq!(e, "line 2:6: \"x\" is not a number in 0..=255");
        assert!(
            from_decimal("3\n6 0 0 0\n")
                .unwrap_err()
                .to_string()
                .contains("count says 3")
        );
        assert_eq!(to_c(&p[..1]), "{ 0x28, 0, 0, 0x0000000c },\n");
    }

    #[test]
    fn read_takes_every_form() {
        let p = vec![Insn::new(0x28, 0, 0, 12), Insn::new(6, 0, 0, 262144)];
        assert_eq!(read(&encode(&p)).unwrap(), p);
        assert_eq!(read(to_decimal(&p).as_bytes()).unwrap(), p);
        assert_eq!(read(listing(&p).as_bytes()).unwrap(), p);
        assert!(
            read(b"ldh [12]\nfrob\n")
                .unwrap_err()
                .to_string()
                .starts_with("line 2:1:")
        );
    }
}
