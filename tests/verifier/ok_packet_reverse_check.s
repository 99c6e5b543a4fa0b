# rule: data_end compared on the left
# expect: accept
# type: xdp
r2 = *(u32 *)(r1 + 0)
r3 = *(u32 *)(r1 + 4)
r4 = r2
r4 += 14
if r3 < r4 goto out
r0 = *(u16 *)(r2 + 12)
exit
out:
r0 = 2
exit
