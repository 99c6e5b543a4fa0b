use super::*;
use oxbpf_isa::{decode_bytes, listing};

fn asm_hex(src: &str) -> Vec<String> {
    assemble_raw(src)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.to_bytes().iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

fn err(src: &str) -> String {
    assemble(src).unwrap_err().to_string()
}

#[test]
fn llvm_dialect() {
    assert_eq!(asm_hex("r0 += 1"), ["0700000001000000"]);
    assert_eq!(asm_hex("w1 = w2"), ["bc21000000000000"]);
    assert_eq!(asm_hex("if r1 s> 5 goto +2"), ["6501020005000000"]);
    assert_eq!(asm_hex("*(u32 *)(r10 - 4) = r1"), ["631afcff00000000"]);
    assert_eq!(
        asm_hex("r1 = 0x1234 ll"),
        ["1801000034120000", "0000000000000000"]
    );
    assert_eq!(asm_hex("call 1"), ["8500000001000000"]);
    assert_eq!(
        asm_hex("lock *(u64 *)(r10 - 8) += r1"),
        ["db1af8ff00000000"]
    );
    assert_eq!(
        asm_hex("r0 = atomic_fetch_add((u64 *)(r10 - 8), r0)"),
        ["db0af8ff01000000"]
    );
    assert_eq!(asm_hex("r0 = (s8)r1"), ["bf10080000000000"]);
    assert_eq!(asm_hex("r0 = bswap16 r0"), ["d700000010000000"]);
    assert_eq!(asm_hex("gotol +3"), ["0600000003000000"]);
    assert_eq!(
        asm_hex("r0 = cmpxchg_64(r1 - 0x8, r0, r2)"),
        ["db21f8fff1000000"]
    );
    assert_eq!(
        asm_hex("w2 = xchg32_32(r1 + 4, w2)"),
        ["c32104 00e1000000".replace(' ', "")]
    );
    assert_eq!(asm_hex("r0 = *(u16 *)skb[r3 + 0x10]"), ["4830000010000000"]);
    assert_eq!(asm_hex("r2 = *(s16 *)(r1 + 2)"), ["8912020000000000"]);
    assert_eq!(asm_hex("r3 s>>= r4"), ["cf43000000000000"]);
    assert_eq!(asm_hex("w1 = -w1"), ["8401000000000000"]);
    assert_eq!(
        asm_hex("r1 = -1 ll"),
        ["18010000ffffffff", "00000000ffffffff"]
    );
    assert_eq!(asm_hex("r1 = 0xffffffff"), ["b7010000ffffffff"]);
    assert_eq!(asm_hex("call pc+3"), ["8510000003000000"]);
    assert_eq!(asm_hex("call -0x1 <pc-0x1>"), ["85100000ffffffff"]);
    assert_eq!(asm_hex("call 0x3e8 <kfunc>"), ["85200000e8030000"]);
}

#[test]
fn labels_in_both_dialects() {
    let src = "
        r0 = 0
    loop:
        r0 += 1
        if r0 < 10 goto loop
        call sub
        exit
    sub:
        mov %r0, 7
        jne %r0, 7, exit
        exit
    ";
    let insns = assemble(src).unwrap();
    let text = listing(&decode_bytes(&assemble_bytes(src).unwrap()).unwrap());
    assert_eq!(insns.len(), 8);
    assert!(text.contains("if r0 < 0xa goto -0x2"), "{text}");
    assert!(text.contains("call 0x1 <pc+0x1>"), "{text}");
    // `exit` as a label means the first exit (bpf_conformance convention).
    assert!(text.contains("if r0 != 0x7 goto -0x3"), "{text}");
}

#[test]
fn ubpf_dialect() {
    assert_eq!(asm_hex("add32 %r0, 1"), ["0400000001000000"]);
    assert_eq!(asm_hex("ldxw %r0, [%r1+4]"), ["6110040000000000"]);
    assert_eq!(
        asm_hex("lock fetch add [%r10-8], %r1"),
        ["db1af8ff01000000"]
    );
    assert_eq!(
        asm_hex("lock cmpxchg32 [%r10-8], %r1"),
        ["c31af8fff1000000"]
    );
    assert_eq!(asm_hex("sdiv32 %r0, -3"), ["34000100fdffffff"]);
    assert_eq!(asm_hex("movsx1664 %r8, %r7"), ["bf78100000000000"]);
    assert_eq!(asm_hex("ldxsh %r0, [%r10-2]"), ["89a0feff00000000"]);
    assert_eq!(asm_hex("call %r2"), ["8d02000000000000"]);
    assert_eq!(asm_hex("be16 %r0"), ["dc00000010000000"]);
    assert_eq!(asm_hex("swap32 %r0"), ["d700000020000000"]);
    assert_eq!(asm_hex("ldabsh 12"), ["280000000c000000"]);
    assert_eq!(asm_hex("ldindb %r2, -1"), ["50200000ffffffff"]);
    assert_eq!(asm_hex("stdw [%r10-8], 0x7fffffff"), ["7a0af8ffffffff7f"]);
    assert_eq!(
        asm_hex("lddw %r0, 0x1122334455667788"),
        ["1800000088776655", "0000000044332211"]
    );
}

#[test]
fn diagnostics_carry_line_and_column() {
    assert_eq!(
        err("r0 = 1\n  r0 += r11"),
        "2:9: invalid register `r11` (registers are r0..r10)"
    );
    assert_eq!(err("goto nowhere"), "1:6: undefined label `nowhere`");
    assert_eq!(err("frob %r1"), "1:1: unknown mnemonic `frob`");
    assert_eq!(err("w0 += r1"), "1:7: both operands must be rN or both wN");
    assert_eq!(
        err("r0 = 0x1ffffffff"),
        "1:6: immediate 8589934591 does not fit in 32 bits"
    );
    assert_eq!(err("a:\na:\nexit"), "2:1: label `a` is defined twice");
    assert_eq!(err("r0 = 1 2"), "1:8: unexpected number 2");
    assert_eq!(err("r0 = \u{e9}"), "1:6: unexpected character `\u{e9}`");
    let many = assemble("bogus\nexit\nalso bogus").unwrap_err();
    assert_eq!(many.0.len(), 2);
}
