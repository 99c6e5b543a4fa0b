# rule: a connect4 program has no IPv6 address (user_ip6)
# expect: reject invalid bpf_context access off=8
# type: cgroup_sock_addr
# attach: connect4
r0 = *(u32 *)(r1 + 8)
r0 = 1
exit
