use oxbpf_isa::*;
use proptest::prelude::*;

fn slot(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Vec<u8> {
    RawInsn::new(code, dst, src, off, imm).to_bytes().to_vec()
}

fn text(bytes: &[u8]) -> String {
    let insns = decode_bytes(bytes).expect("valid");
    insns[0].insn.to_string()
}

#[test]
fn displays_like_llvm_objdump() {
    // Expected strings are llvm-objdump-19 output for the same bytes.
    let cases: &[(Vec<u8>, &str)] = &[
        (slot(0x04, 1, 0, 0, -3), "w1 += -0x3"),
        (slot(0x3c, 1, 2, 1, 0), "w1 s/= w2"),
        (slot(0x97, 1, 0, 1, 100), "r1 s%= 0x64"),
        (slot(0x84, 1, 0, 0, 0), "w1 = -w1"),
        (slot(0xbc, 1, 2, 8, 0), "w1 = (s8)w2"),
        (slot(0xbf, 1, 2, 32, 0), "r1 = (s32)r2"),
        (slot(0xdc, 1, 0, 0, 16), "r1 = be16 r1"),
        (slot(0xd7, 1, 0, 0, 64), "r1 = bswap64 r1"),
        (slot(0x05, 0, 0, -2, 0), "goto -0x2"),
        (slot(0x06, 0, 0, 0, 5), "gotol +0x5"),
        (
            slot(0x15, 1, 0, -2, 0x7fffffff),
            "if r1 == 0x7fffffff goto -0x2",
        ),
        (slot(0xde, 1, 2, 3, 0), "if w1 s<= w2 goto +0x3"),
        (slot(0x85, 0, 0, 0, 12), "call 0xc"),
        (slot(0x8d, 3, 0, 0, 0), "callx r3"),
        (slot(0x95, 0, 0, 0, 0), "exit"),
        (slot(0x61, 1, 2, -8, 0), "r1 = *(u32 *)(r2 - 0x8)"),
        (slot(0x81, 1, 2, 8, 0), "r1 = *(s32 *)(r2 + 0x8)"),
        (
            slot(0x62, 1, 0, -8, 0x7ffffff),
            "*(u32 *)(r1 - 0x8) = 0x7ffffff",
        ),
        (slot(0x7b, 1, 2, -16, 0), "*(u64 *)(r1 - 0x10) = r2"),
        (slot(0x20, 0, 0, 0, 0x10), "r0 = *(u32 *)skb[0x10]"),
        (slot(0x40, 0, 3, 0, 0), "r0 = *(u32 *)skb[r3]"),
        (slot(0xc3, 1, 2, -8, 0), "lock *(u32 *)(r1 - 0x8) += r2"),
        (
            slot(0xc3, 1, 2, -8, 0x41),
            "w2 = atomic_fetch_or((u32 *)(r1 - 0x8), w2)",
        ),
        (slot(0xc3, 1, 2, -8, 0xe1), "w2 = xchg32_32(r1 - 0x8, w2)"),
        (
            slot(0xdb, 1, 2, -8, 0x01),
            "r2 = atomic_fetch_add((u64 *)(r1 - 0x8), r2)",
        ),
        (
            slot(0xdb, 1, 2, -8, 0xf1),
            "r0 = cmpxchg_64(r1 - 0x8, r0, r2)",
        ),
        (
            [slot(0x18, 1, 0, 0, -1), slot(0, 0, 0, 0, -1)].concat(),
            "r1 = -0x1 ll",
        ),
        (
            [slot(0x18, 1, 0, 0, 0x12345678), slot(0, 0, 0, 0, 0x9abc)].concat(),
            "r1 = 0x9abc12345678 ll",
        ),
        (
            [slot(0x18, 1, 1, 0, 0x12345678), slot(0, 0, 0, 0, 0)].concat(),
            "ld_pseudo r1, 0x1, 0x12345678",
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(&text(bytes), want, "bytes {bytes:02x?}");
    }
}

#[test]
fn rejects_reserved_fields_with_index() {
    let prog = [slot(0xb7, 0, 0, 0, 1), slot(0x07, 0, 3, 0, 1)].concat();
    let err = decode_bytes(&prog).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::ReservedField {
                index: 1,
                field: "src_reg",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("instruction 1"));

    for bad in [
        slot(0x95, 0, 0, 0, 1),                                    // exit with imm
        slot(0x87, 1, 0, 0, 5),                                    // neg with imm
        slot(0xbf, 1, 2, 4, 0),                                    // movsx with bad width
        slot(0xbc, 1, 2, 32, 0),                                   // movsx32 from 32 bits
        slot(0xdf, 1, 0, 0, 16),                                   // ALU64 END with BE bit
        slot(0xd4, 1, 0, 0, 8),                                    // endian width 8
        slot(0x99, 1, 2, 0, 0),                                    // MEMSX dw
        slot(0x38, 0, 0, 0, 0),                                    // ld_abs dw
        slot(0xc3, 1, 2, 0, 0x02),                                 // unknown atomic op
        slot(0xd3, 1, 2, 0, 0x01),                                 // atomic on bytes
        slot(0x8e, 0, 0, 0, 0),                                    // jmp32 call
        slot(0x17, 11, 0, 0, 0),                                   // r11
        slot(0x37, 1, 0, 2, 3),                                    // div with offset 2
        slot(0x18, 1, 0, 0, 0),                                    // truncated lddw
        [slot(0x18, 1, 7, 0, 0), slot(0, 0, 0, 0, 0)].concat(),    // bad pseudo source
        [slot(0x18, 1, 0, 0, 0), slot(0x04, 0, 0, 0, 0)].concat(), // bad second slot
        slot(0xff, 0, 0, 0, 0),
    ] {
        assert!(decode_bytes(&bad).is_err(), "accepted {bad:02x?}");
    }
    assert!(matches!(
        decode_bytes(&[0u8; 9]),
        Err(DecodeError::TrailingBytes { extra: 1, .. })
    ));
}

proptest! {
    #[test]
    fn decode_encode_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let len = bytes.len() / 8 * 8;
        let bytes = &bytes[..len];
        if let Ok(again) = reencode(bytes) {
            prop_assert_eq!(again, bytes.to_vec());
        }
    }

    #[test]
    fn valid_opcode_space_round_trips(code in any::<u8>(), regs in any::<u8>(), off in any::<i16>(), imm in any::<i32>(), hi in any::<i32>()) {
        let slots = [RawInsn::new(code, regs & 0xf, regs >> 4, off, imm), RawInsn::new(0, 0, 0, 0, hi)];
        if let Ok(insn) = decode_at(&slots, 0) {
            let enc = insn.encode();
            prop_assert_eq!(&enc[..], &slots[..enc.len()]);
        }
    }
}
