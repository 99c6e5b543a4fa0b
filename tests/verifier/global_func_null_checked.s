# rule: a global function that checks its pointer argument for NULL is safe
# global: 5 f mem4
# expect: accept
*(u64 *)(r10 - 8) = 0
r1 = r10
r1 += -8
call f
exit
f:
r0 = 0
if r1 == 0 goto out
r0 = *(u32 *)(r1 + 0)
out:
exit
