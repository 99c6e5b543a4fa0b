# rule: a global function is verified on its own: its pointer argument may be NULL
# global: 5 f mem4
# expect: reject may be NULL
*(u64 *)(r10 - 8) = 0
r1 = r10
r1 += -8
call f
exit
f:
r0 = *(u32 *)(r1 + 0)
exit
