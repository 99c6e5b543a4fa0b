# rule: variable offset into ctx
# expect: reject variable ctx access
# type: xdp
r2 = *(u32 *)(r1 + 12)
r2 &= 4
r1 += r2
r0 = 0
exit
