# rule: an index bounded by a mask
# expect: accept
# maps: array 4 64 4
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r1 = *(u64 *)(r0 + 0)
r1 &= 31
r0 += r1
r0 = *(u32 *)(r0 + 0)
exit
out:
r0 = 0
exit
