# rule: precision: a spilled 0 read back and added to a pointer is precise where paths meet, so the path that wrote unknown bytes over the same slot is not pruned by it, and its unbounded access is seen
# expect: reject unbounded
# maps: array 4 64 4
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r9 = r0
call 7
if r0 != 0 goto p
r1 = 0
*(u64 *)(r10 - 16) = r1
goto j
p:
*(u32 *)(r10 - 16) = r0
*(u32 *)(r10 - 12) = r0
j:
r1 = *(u64 *)(r10 - 16)
r9 += r1
r0 = *(u8 *)(r9 + 0)
out:
r0 = 0
exit
