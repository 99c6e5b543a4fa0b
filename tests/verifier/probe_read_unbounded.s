# rule: probe_read with an unbounded size
# expect: reject unbounded size
# type: kprobe
r2 = *(u64 *)(r1 + 0)
r1 = r10
r1 += -8
r3 = 0
call 4
r0 = 0
exit
