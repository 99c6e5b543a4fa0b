# rule: the combined stack of nested calls is checked on every path: a path whose caller frame reached 304 bytes is not covered, inside the callee, by one whose caller reached 8 (explored first), where the callee's 300 bytes would fit
# expect: reject combined stack size
call 7
if r0 == 0 goto deep
*(u64 *)(r10 - 8) = 0
goto c
deep:
*(u64 *)(r10 - 8) = 0
*(u64 *)(r10 - 304) = 0
c:
call f
r0 = 0
exit
f:
r1 = 0
if r1 == 0 goto g
g:
*(u64 *)(r10 - 300) = 0
r0 = 0
exit
