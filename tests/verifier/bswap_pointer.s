# rule: byte-swapping a pointer
# expect: reject byte swap of a pointer
r1 = r10
r1 = be64 r1
r0 = 0
exit
