# rule: bpf_loop with a scalar callback
# expect: reject must be a function
r1 = 4
r2 = 7
r3 = 0
r4 = 0
call 181
r0 = 0
exit
