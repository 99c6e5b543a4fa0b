# rule: bpf_spin_lock on the stack
# expect: reject bpf_spin_lock
r1 = r10
r1 += -8
call 93
r0 = 0
exit
