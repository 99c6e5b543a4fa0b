# rule: connect4 reads the destination address (user_ip4)
# expect: accept
# type: cgroup_sock_addr
# attach: connect4
r0 = *(u32 *)(r1 + 4)
r0 = 1
exit
