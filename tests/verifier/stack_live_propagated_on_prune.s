# rule: stack reads of the code after a state that pruned a path belong to that path's own earlier states too (the kernel's propagate_liveness): the path through route2 read slot fp-8 only by being pruned at c1, and its state at route2 must then keep the slot against the path that stored a scalar there
# expect: reject invalid mem access 'scalar'
*(u64 *)(r10 - 16) = 0
call 7
r6 = r0
call 7
r7 = r0
r1 = r10
*(u64 *)(r10 - 8) = r1
if r6 == 0 goto bad
if r7 == 0 goto route2
r0 = 1
goto c1
route2:
r0 = 2
goto c1
bad:
*(u64 *)(r10 - 8) = r6
goto route2
c1:
r1 = *(u64 *)(r10 - 8)
r0 = *(u64 *)(r1 - 16)
r0 = 0
exit
