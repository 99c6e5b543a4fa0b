# rule: map_update_elem with a scalar value pointer
# expect: reject expected=pointer to memory
# maps: hash 4 8 16
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
r3 = 7
r4 = 0
ld_pseudo r1, 0x5, 0x0
call 2
r0 = 0
exit
