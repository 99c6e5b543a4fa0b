# rule: map lookup result used without a null check
# expect: reject may be NULL
# maps: hash 4 8 16
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
r0 = *(u64 *)(r0 + 0)
exit
