# rule: ringbuf reservation used without a null check
# expect: reject may be NULL
# maps: ringbuf 0 0 4096
ld_pseudo r1, 0x5, 0x0
r2 = 8
r3 = 0
call 131
*(u64 *)(r0 + 0) = 1
r0 = 0
exit
