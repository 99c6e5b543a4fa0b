# rule: a callback that accumulates into its caller's stack and branches on it is accepted: its calls converge (the false "infinite loop" this once drew is pinned by tests/trace/compile/for_map.bt)
# expect: accept
*(u64 *)(r10 - 8) = 0
*(u64 *)(r10 - 16) = 0
r1 = 10
ld_pseudo r2, 0x4, 0x7
r3 = r10
r3 += -16
r4 = 0
call 181
r0 = 0
exit
cb:
r6 = r2
r0 = *(u64 *)(r6 + 0)
r1 = *(u64 *)(r6 + 8)
r0 += r1
*(u64 *)(r6 + 0) = r0
r8 = *(u64 *)(r6 + 8)
r9 = 5
if r8 s> r9 goto +2
r8 = 0
goto +1
r8 = 1
if r8 == 0 goto +1
goto +2
r0 = 0
exit
r0 = 1
exit
