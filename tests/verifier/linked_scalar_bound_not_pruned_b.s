# rule: a scalar linked to another (r8 = r7) is bounded by a test of the other only on that path: the same with the unlinked path explored first (the kernel's check_scalar_ids)
# expect: reject unbounded
# maps: array 4 64 4
call 7
r7 = r0
call 7
r8 = r0
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r9 = r0
call 7
if r0 != 0 goto lb
r1 = 0
goto p
lb:
r8 = r7
p:
if r7 > 10 goto out
r9 += r8
r0 = *(u8 *)(r9 + 0)
exit
out:
r0 = 0
exit
