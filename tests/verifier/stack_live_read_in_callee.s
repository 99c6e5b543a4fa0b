# rule: a caller's stack slot read by a called function through its pointer argument is live in the caller's states
# expect: reject invalid mem access 'scalar'
*(u64 *)(r10 - 16) = 0
call 7
if r0 == 0 goto other
r1 = r10
*(u64 *)(r10 - 8) = r1
goto join
other:
*(u64 *)(r10 - 8) = r0
join:
r1 = r10
r1 += -8
call f
r0 = 0
exit
f:
r2 = *(u64 *)(r1 + 0)
r0 = *(u64 *)(r2 - 16)
exit
