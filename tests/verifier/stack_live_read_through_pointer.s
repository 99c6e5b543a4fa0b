# rule: a stack slot read through a register other than r10 is live: a state whose slot holds a scalar is not covered by one whose slot held a stack pointer (explored first)
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
r2 = r10
r2 += -8
r1 = *(u64 *)(r2 + 0)
r0 = *(u64 *)(r1 - 16)
r0 = 0
exit
