# rule: precision: a helper's size argument is precise (8 fits the 8-byte buffer on the path explored first, 64 does not)
# type: kprobe
# expect: reject
call 7
r2 = 64
if r0 != 0 goto p
r2 = 8
p:
r1 = r10
r1 += -8
r3 = 0
call 113
r0 = 0
exit
