# rule: msg_src_ip4 exists for sendmsg4 only
# expect: reject invalid bpf_context access off=40
# type: cgroup_sock_addr
# attach: connect4
w2 = 1
*(u32 *)(r1 + 40) = r2
r0 = 1
exit
