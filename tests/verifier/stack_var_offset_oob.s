# rule: variable stack offset may leave the frame
# expect: reject stack
r1 = r10
r2 = *(u64 *)(r10 - 8)
r2 &= 1023
r1 -= r2
r0 = *(u8 *)(r1 - 1)
exit
