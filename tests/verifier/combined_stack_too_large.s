# rule: two frames use 300 bytes each
# expect: reject combined stack size
*(u64 *)(r10 - 300) = 0
call f
r0 = 0
exit
f:
*(u64 *)(r10 - 300) = 0
r0 = 0
exit
