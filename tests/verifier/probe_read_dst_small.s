# rule: probe_read of 16 bytes into 8 bytes of stack
# expect: reject stack
# type: kprobe
r1 = r10
r1 += -8
r2 = 16
r3 = 0
call 4
r0 = 0
exit
