# rule: bpf_trace_printk from a non-GPL program
# expect: reject GPL-restricted
# license: MIT
*(u64 *)(r10 - 8) = 0
r1 = r10
r1 += -8
r2 = 8
call 6
r0 = 0
exit
