# rule: family is read-only
# expect: reject invalid bpf_context access off=28
# type: cgroup_sock_addr
# attach: connect4
w2 = 2
*(u32 *)(r1 + 28) = r2
r0 = 1
exit
