# rule: 32-bit comparison of packet pointers
# expect: reject 32-bit pointer comparison
# type: xdp
r2 = *(u32 *)(r1 + 0)
r3 = *(u32 *)(r1 + 4)
if w2 > w3 goto out
out:
r0 = 0
exit
