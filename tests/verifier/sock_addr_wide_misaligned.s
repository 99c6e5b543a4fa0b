# rule: an 8-byte load of user_ip6 not at an 8-byte boundary
# expect: reject invalid bpf_context access off=12 size=8
# type: cgroup_sock_addr
# attach: connect6
r0 = *(u64 *)(r1 + 12)
r0 = 1
exit
