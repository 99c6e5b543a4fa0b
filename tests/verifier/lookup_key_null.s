# rule: a NULL key
# expect: reject not NULL
# maps: hash 4 8 16
r2 = 0
ld_pseudo r1, 0x5, 0x0
call 1
r0 = 0
exit
