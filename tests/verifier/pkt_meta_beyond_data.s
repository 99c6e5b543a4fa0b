# rule: metadata read without a check against data
# expect: reject outside of the packet
# type: xdp
r2 = *(u32 *)(r1 + 8)
r0 = *(u8 *)(r2 + 0)
exit
