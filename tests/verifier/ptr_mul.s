# rule: pointer *= scalar
# expect: reject multiplicative operator on pointer
r1 = r10
r1 *= 2
r0 = 0
exit
