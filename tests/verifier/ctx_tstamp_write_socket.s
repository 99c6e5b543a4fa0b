# rule: a socket filter may not write __sk_buff.tstamp
# expect: reject invalid bpf_context write off=152: the field is read-only
# type: socket
r2 = 1000
*(u64 *)(r1 + 152) = r2
r0 = 0
exit
