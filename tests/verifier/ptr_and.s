# rule: pointer &= mask
# expect: reject bitwise
r1 = r10
r1 &= 0xff
r0 = 0
exit
