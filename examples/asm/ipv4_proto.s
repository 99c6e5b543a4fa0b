# Classify an Ethernet frame: returns the IPv4 protocol number (6 = TCP,
# 17 = UDP, ...) and 0 for anything that is not IPv4.
#
# Input (r1 = frame, r2 = its length), kernel/LLVM dialect.
        r0 = 0
        if r2 < 34 goto out              # Ethernet (14) + minimal IPv4 (20)
        r3 = *(u16 *)(r1 + 12)           # EtherType, network byte order
        r3 = be16 r3
        if r3 != 0x800 goto out
        r4 = *(u8 *)(r1 + 14)            # version and header length
        r5 = r4
        r5 >>= 4
        if r5 != 4 goto out
        r0 = *(u8 *)(r1 + 23)            # protocol
out:
        exit
