# rule: map value reference beyond the value
# expect: reject invalid offset
# maps: array 4 8 1
ld_pseudo r1, 0x6, 0x0, 0x40
r0 = 0
exit
