# rule: precision: a constant added to a map value pointer is precise in the state where two paths meet (4 on the path explored first, 100 on the other): the second is not pruned
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
r8 = 100
if r0 != 0 goto p
r8 = 4
p:
r9 += r8
r0 = *(u8 *)(r9 + 0)
out:
r0 = 0
exit
