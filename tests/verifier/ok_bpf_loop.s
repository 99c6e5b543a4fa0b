# rule: bpf_loop with a callback
# expect: accept
r1 = 10
ld_pseudo r2, 0x4, 0x6
r3 = 0
r4 = 0
call 181
r0 = 0
exit
cb:
r0 = 0
exit
