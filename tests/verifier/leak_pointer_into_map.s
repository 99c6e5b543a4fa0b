# rule: storing a pointer in a map value (unprivileged)
# expect: reject leaks addr
# maps: hash 4 8 16
# policy: unprivileged
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
*(u64 *)(r0 + 0) = r10
out:
r0 = 0
exit
