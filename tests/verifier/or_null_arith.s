# rule: arithmetic on a maybe-null pointer
# expect: reject null-check it first
# maps: hash 4 8 16
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
r0 += 8
if r0 == 0 goto out
out:
r0 = 0
exit
