# rule: 32-bit arithmetic on a pointer
# expect: reject 32-bit pointer arithmetic
r1 = r10
w1 += 8
r0 = 0
exit
