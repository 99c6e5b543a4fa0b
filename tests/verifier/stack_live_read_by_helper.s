# rule: stack bytes a helper reads (a map key) are live: unprivileged, a state whose key is uninitialized is not covered by one whose key was written (explored first)
# expect: reject not initialized
# maps: hash 8 8 16
# policy: unprivileged
call 7
if r0 == 0 goto other
*(u64 *)(r10 - 8) = 0
goto join
other:
r0 = 0
join:
r2 = r10
r2 += -8
ld_pseudo r1, 0x5, 0x0
call 1
r0 = 0
exit
