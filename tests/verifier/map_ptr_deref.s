# rule: reading through a map pointer
# expect: reject invalid mem access 'map_ptr
# maps: hash 4 8 16
ld_pseudo r1, 0x5, 0x0
r0 = *(u64 *)(r1 + 0)
exit
