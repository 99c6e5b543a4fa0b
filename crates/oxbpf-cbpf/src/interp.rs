//! A classic program run directly: the reference the eBPF translation is
//! checked against. Semantics are the kernel's (those of its translation):
//! 32-bit A and X, big-endian packet loads that end the filter with 0 when
//! out of bounds, division by X == 0 returning 0, shifts by X masked to 5
//! bits.

use crate::{Insn, class, misc, mode, op, rval, size, skf, src};

/// What ancillary loads read (the skb's metadata).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// `skb->protocol` in host order (the Ethernet type).
    pub protocol: u16,
    pub pkt_type: u32,
    pub ifindex: u32,
    pub mark: u32,
    pub queue: u32,
    pub hash: u32,
    pub vlan_tci: u32,
    pub vlan_present: u32,
    pub vlan_tpid: u16,
    pub cpu: u32,
    /// The length on the wire, which `len` loads (libpcap's `pktlen`);
    /// the captured length when not given.
    pub wire_len: Option<u32>,
}

/// An ALU operation on A and its operand; `None` for a division by zero
/// (which ends the filter with 0) or an unknown operation.
pub(crate) fn alu(o: u16, a: u32, b: u32) -> Option<u32> {
    Some(match o {
        op::ADD => a.wrapping_add(b),
        op::SUB => a.wrapping_sub(b),
        op::MUL => a.wrapping_mul(b),
        op::DIV => a.checked_div(b)?,
        op::MOD => a.checked_rem(b)?,
        op::AND => a & b,
        op::OR => a | b,
        op::XOR => a ^ b,
        op::LSH => a.wrapping_shl(b & 31),
        op::RSH => a.wrapping_shr(b & 31),
        op::NEG => a.wrapping_neg(),
        _ => return None,
    })
}

/// Runs `insns` (which must pass [`crate::validate`]) on `packet`; the
/// return value is the number of bytes to keep (0: drop).
pub fn run(insns: &[Insn], packet: &[u8], meta: &Meta) -> u32 {
    let (mut a, mut x): (u32, u32) = (0, 0);
    let mut m = [0u32; 16];
    let mut pc = 0usize;
    // A big-endian load of `n` bytes at `at`; past the end: None.
    let be = |at: usize, n: usize| -> Option<u32> {
        let b = packet.get(at..at.checked_add(n)?)?;
        Some(match n {
            1 => b[0] as u32,
            2 => u16::from_be_bytes([b[0], b[1]]) as u32,
            _ => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        })
    };
    let width = |code: u16| match code & 0x18 {
        size::W => 4,
        size::H => 2,
        _ => 1,
    };
    // The instructions filters run most, by whole opcode (one jump
    // table), before the general decoding below.
    const LDW: u16 = class::LD | size::W | mode::ABS;
    const LDH: u16 = class::LD | size::H | mode::ABS;
    const LDB: u16 = class::LD | size::B | mode::ABS;
    const LDH_IND: u16 = class::LD | size::H | mode::IND;
    const LDB_IND: u16 = class::LD | size::B | mode::IND;
    const LDX_MSH: u16 = class::LDX | size::B | mode::MSH;
    const JEQ: u16 = class::JMP | op::JEQ | src::K;
    const JGT: u16 = class::JMP | op::JGT | src::K;
    const JGE: u16 = class::JMP | op::JGE | src::K;
    const JSET: u16 = class::JMP | op::JSET | src::K;
    const RET: u16 = class::RET | rval::K;
    const AND: u16 = class::ALU | op::AND | src::K;
    while let Some(&i) = insns.get(pc) {
        pc += 1;
        let k = i.k;
        let cond = |c: bool| if c { i.jt } else { i.jf } as usize;
        match i.code {
            LDW | LDH | LDB if k < skf::AD_OFF => {
                match be(k as usize, width(i.code)) {
                    Some(v) => a = v,
                    None => return 0,
                }
                continue;
            }
            LDH_IND | LDB_IND if (k as i32) >= 0 && (x as i32) >= 0 => {
                match be((k as usize) + (x as usize), width(i.code)) {
                    Some(v) => a = v,
                    None => return 0,
                }
                continue;
            }
            LDX_MSH => {
                match be(k as usize, 1) {
                    Some(v) => x = (v & 0xf) << 2,
                    None => return 0,
                }
                continue;
            }
            JEQ => {
                pc += cond(a == k);
                continue;
            }
            JGT => {
                pc += cond(a > k);
                continue;
            }
            JGE => {
                pc += cond(a >= k);
                continue;
            }
            JSET => {
                pc += cond(a & k != 0);
                continue;
            }
            AND => {
                a &= k;
                continue;
            }
            RET => return k,
            _ => {}
        }
        let operand = if i.code & 0x08 == src::X { x } else { k };
        match i.class() {
            class::LD => match i.code & 0xe0 {
                mode::ABS if k >= skf::AD_OFF => {
                    a = match skf::ancillary(k) {
                        Some("proto") => meta.protocol as u32,
                        Some("type") => meta.pkt_type,
                        Some("ifidx") => meta.ifindex,
                        Some("mark") => meta.mark,
                        Some("queue") => meta.queue,
                        Some("rxhash") => meta.hash,
                        Some("vlan_tci") => meta.vlan_tci,
                        Some("vlanp") => meta.vlan_present,
                        Some("vlan_tpid") => meta.vlan_tpid as u32,
                        Some("xor_x") => a ^ x,
                        Some("cpu") => meta.cpu,
                        _ => 0,
                    }
                }
                mode::ABS => match be(k as usize, width(i.code)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                // X + k as a signed 32-bit offset; below 0 ends the filter.
                mode::IND => match usize::try_from((k as i32).wrapping_add(x as i32))
                    .ok()
                    .and_then(|off| be(off, width(i.code)))
                {
                    Some(v) => a = v,
                    None => return 0,
                },
                mode::LEN => a = meta.wire_len.unwrap_or(packet.len() as u32),
                mode::IMM => a = k,
                mode::MEM => a = m[k as usize & 15],
                _ => return 0,
            },
            class::LDX => match i.code & 0xe0 {
                mode::IMM => x = k,
                mode::MEM => x = m[k as usize & 15],
                mode::LEN => x = meta.wire_len.unwrap_or(packet.len() as u32),
                mode::MSH => match be(k as usize, 1) {
                    Some(v) => x = (v & 0xf) << 2,
                    None => return 0,
                },
                _ => return 0,
            },
            class::ST => m[k as usize & 15] = a,
            class::STX => m[k as usize & 15] = x,
            class::ALU => match alu(i.code & 0xf0, a, operand) {
                Some(v) => a = v,
                None => return 0,
            },
            class::JMP => {
                let taken = match i.code & 0xf0 {
                    op::JA => {
                        pc += k as usize;
                        continue;
                    }
                    op::JEQ => a == operand,
                    op::JGT => a > operand,
                    op::JGE => a >= operand,
                    op::JSET => a & operand != 0,
                    _ => return 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            class::RET => {
                return match i.code & 0x18 {
                    rval::K => k,
                    rval::A => a,
                    _ => x,
                };
            }
            class::MISC => {
                if i.code & 0xf8 == misc::TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return 0,
        }
    }
    0
}
