# rule: precision: a subprogram's return value added to a pointer by the caller is precise inside the subprogram (4 on one path there, 100 on the other)
# expect: reject outside
# maps: array 4 64 4
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r6 = r0
call f
r6 += r0
r0 = *(u8 *)(r6 + 0)
out:
r0 = 0
exit
f:
call 7
r1 = 100
if r0 != 0 goto p
r1 = 4
p:
r0 = r1
exit
