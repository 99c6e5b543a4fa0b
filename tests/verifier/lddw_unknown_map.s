# rule: reference to a map that does not exist
# expect: reject does not exist
# maps: hash 4 8 16
ld_pseudo r1, 0x5, 0x7
r0 = 0
exit
