# rule: key on uninitialized stack (unprivileged)
# expect: reject not initialized
# maps: hash 4 8 16
# policy: unprivileged
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
r0 = 0
exit
