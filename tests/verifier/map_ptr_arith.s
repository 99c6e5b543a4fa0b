# rule: arithmetic on a map pointer
# expect: reject pointer arithmetic on map_ptr
# maps: hash 4 8 16
ld_pseudo r1, 0x5, 0x0
r1 += 8
r0 = 0
exit
