# rule: a socket filter (loadable without CAP_PERFMON) may not key a map by its context pointer: map contents are visible to user space (allowed only with --allow-ptr-leaks)
# expect: reject leaks addr into map
# type: socket
# maps: hash 8 8 16
*(u64 *)(r10 - 8) = r1
*(u64 *)(r10 - 16) = 0
r2 = r10
r2 += -8
r3 = r10
r3 += -16
ld_pseudo r1, 0x5, 0x0
r4 = 0
call 2
r0 = 0
exit
