# rule: perf_event_output to a hash map
# expect: reject cannot pass map_type
# maps: hash 4 8 16
# type: xdp
r2 = r10
r2 += -8
*(u64 *)(r10 - 8) = 0
r4 = r2
ld_pseudo r2, 0x5, 0x0
r3 = 0
r5 = 8
call 25
r0 = 0
exit
