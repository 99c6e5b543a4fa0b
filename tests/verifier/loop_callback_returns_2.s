# rule: a bpf_loop callback returning 2
# expect: reject callback must return 0 or 1
r1 = 4
ld_pseudo r2, 0x4, 0x6
r3 = 0
r4 = 0
call 181
r0 = 0
exit
cb:
r0 = 2
exit
