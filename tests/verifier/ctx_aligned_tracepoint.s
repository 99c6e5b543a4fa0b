# rule: a tracepoint's record: a 2-byte load at an even offset is aligned
# expect: accept
# type: tracepoint
r0 = *(u16 *)(r1 + 34)
r0 = 0
exit
