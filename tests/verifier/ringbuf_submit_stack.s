# rule: submitting stack memory
# expect: reject R1 type=fp0 expected=ringbuf_mem
r1 = r10
r1 += -8
r2 = 0
call 132
r0 = 0
exit
