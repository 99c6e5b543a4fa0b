# rule: a pointer spilled to the stack and filled back
# expect: accept
# maps: hash 4 8 16
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
*(u64 *)(r10 - 16) = r0
r1 = *(u64 *)(r10 - 16)
if r1 == 0 goto out
r0 = *(u64 *)(r1 + 0)
exit
out:
r0 = 0
exit
