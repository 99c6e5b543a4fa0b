# rule: connect4 rewrites the destination port (user_port, a u32 store)
# expect: accept
# type: cgroup_sock_addr
# attach: connect4
w2 = 80
*(u32 *)(r1 + 24) = r2
r0 = 1
exit
