# rule: map_lookup_elem with a scalar for the map
# expect: reject expected=map_ptr
r1 = 1
r2 = r10
r2 += -8
call 1
r0 = 0
exit
