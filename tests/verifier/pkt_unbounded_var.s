# rule: unbounded variable offset into the packet
# expect: reject unbounded
# type: xdp
r2 = *(u32 *)(r1 + 0)
r3 = *(u32 *)(r1 + 4)
r4 = *(u32 *)(r1 + 12)
r2 += r4
r0 = 0
exit
