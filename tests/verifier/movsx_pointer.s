# rule: sign-extending a pointer
# expect: reject sign-extending a pointer
r1 = (s32)r10
r0 = 0
exit
