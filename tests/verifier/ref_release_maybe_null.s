# rule: a reservation must be null-checked before it is submitted
# expect: reject R1 type=mem_or_null(size=8) expected=ringbuf_mem (it may be NULL
# type: tracepoint
# maps: ringbuf 0 0 4096
ld_pseudo r1, 0x5, 0x0
r2 = 8
r3 = 0
call 131
r1 = r0
r2 = 0
call 132
r0 = 0
exit
