# rule: precision: a subprogram's argument added to a pointer there is precise in the caller's state before the call (4, then 100)
# expect: reject outside
# maps: array 4 64 4
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r6 = r0
call 7
r1 = 100
if r0 != 0 goto p
r1 = 4
p:
r2 = r6
call f
out:
r0 = 0
exit
f:
r2 += r1
r0 = *(u8 *)(r2 + 0)
r0 = 0
exit
