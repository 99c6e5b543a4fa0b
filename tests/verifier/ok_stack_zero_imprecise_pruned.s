# rule: precision: stack bytes that hold 0 on one path and unknown data on another do not keep the paths apart when nothing uses their value exactly (the kernel compares such stores as imprecise spilled scalars): through six diamonds that each store 0 or an unknown value (64 paths) the paths are pruned at every meeting point
# expect: accept
# max-insns: 80
call 7
if r0 != 0 goto a1
*(u32 *)(r10 - 8) = 0
goto b1
a1:
*(u32 *)(r10 - 8) = r0
b1:
call 7
if r0 != 0 goto a2
*(u32 *)(r10 - 16) = 0
goto b2
a2:
*(u32 *)(r10 - 16) = r0
b2:
call 7
if r0 != 0 goto a3
r1 = 0
*(u64 *)(r10 - 24) = r1
goto b3
a3:
*(u64 *)(r10 - 24) = r0
b3:
call 7
if r0 != 0 goto a4
*(u16 *)(r10 - 32) = 0
goto b4
a4:
*(u16 *)(r10 - 32) = r0
b4:
call 7
if r0 != 0 goto a5
*(u32 *)(r10 - 40) = 0
goto b5
a5:
*(u32 *)(r10 - 40) = r0
b5:
call 7
if r0 != 0 goto a6
*(u32 *)(r10 - 48) = 0
goto b6
a6:
*(u32 *)(r10 - 48) = r0
b6:
r1 = *(u32 *)(r10 - 8)
r2 = *(u32 *)(r10 - 16)
r1 += r2
r0 = 0
exit
