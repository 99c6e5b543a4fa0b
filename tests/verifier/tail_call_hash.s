# rule: tail call through a hash map
# expect: reject cannot pass map_type
# maps: hash 4 8 16
# type: xdp
ld_pseudo r2, 0x5, 0x0
r3 = 0
call 12
r0 = 0
exit
