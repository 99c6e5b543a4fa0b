# rule: packet read without comparing against data_end
# expect: reject outside of the packet
# type: xdp
r2 = *(u32 *)(r1 + 0)
r3 = *(u32 *)(r1 + 4)
r0 = *(u8 *)(r2 + 0)
exit
