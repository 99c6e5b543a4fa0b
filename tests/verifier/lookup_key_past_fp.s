# rule: a 4-byte key at fp-2 runs past the frame
# expect: reject stack
# maps: hash 4 8 16
r2 = r10
r2 += -2
ld_pseudo r1, 0x5, 0x0
call 1
r0 = 0
exit
