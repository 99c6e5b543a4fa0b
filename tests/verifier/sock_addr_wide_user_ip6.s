# rule: an aligned 8-byte load of user_ip6[2..4] (bpf_ctx_wide_access_ok)
# expect: accept
# type: cgroup_sock_addr
# attach: connect6
r0 = *(u64 *)(r1 + 16)
r0 = 1
exit
