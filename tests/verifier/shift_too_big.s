# rule: shift by 64
# expect: reject invalid shift
r0 = 1
r0 <<= 64
exit
