# rule: a narrower store does not make a slot dead: the rest of the slot is still read from the earlier state (unprivileged: uninitialized upper bytes)
# expect: reject not initialized
# policy: unprivileged
call 7
if r0 == 0 goto other
*(u64 *)(r10 - 8) = 0
goto join
other:
r0 = 0
join:
*(u32 *)(r10 - 8) = 0
r0 = *(u64 *)(r10 - 8)
r0 = 0
exit
