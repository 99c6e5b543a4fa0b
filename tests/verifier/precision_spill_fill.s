# rule: precision: a value spilled to the stack and filled back is precise in the stored state's stack slot (4, then 100)
# expect: reject outside
# maps: array 4 64 4
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r9 = r0
call 7
r1 = 100
if r0 != 0 goto p
r1 = 4
p:
*(u64 *)(r10 - 16) = r1
r1 = 0
if r1 == 0 goto q
q:
r8 = *(u64 *)(r10 - 16)
r9 += r8
r0 = *(u8 *)(r9 + 0)
out:
r0 = 0
exit
