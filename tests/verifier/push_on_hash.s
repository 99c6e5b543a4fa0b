# rule: map_push_elem on a hash map
# expect: reject cannot pass map_type
# maps: hash 4 8 16
*(u64 *)(r10 - 8) = 0
r2 = r10
r2 += -8
ld_pseudo r1, 0x5, 0x0
r3 = 0
call 87
r0 = 0
exit
