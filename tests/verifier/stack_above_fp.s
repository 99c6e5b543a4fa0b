# rule: stack write at fp+0
# expect: reject stack R10 off=0
*(u8 *)(r10 + 0) = 1
r0 = 0
exit
