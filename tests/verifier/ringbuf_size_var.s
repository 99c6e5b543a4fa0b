# rule: ringbuf_reserve with a non-constant size
# expect: reject constant size
# maps: ringbuf 0 0 4096
r2 = *(u64 *)(r10 - 8)
ld_pseudo r1, 0x5, 0x0
r3 = 0
call 131
r0 = 0
exit
