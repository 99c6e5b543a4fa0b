# rule: 32-bit arithmetic on a pointer other than a subtraction is refused
# expect: reject 32-bit pointer arithmetic prohibited
# type: tc
r2 = *(u32 *)(r1 + 76)
w2 += 4
r0 = 0
exit
