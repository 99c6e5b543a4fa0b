# rule: sk is a socket pointer (PTR_TO_SOCKET): its family readable
# expect: accept
# type: cgroup_sock_addr
# attach: connect4
r2 = *(u64 *)(r1 + 64)
r0 = *(u32 *)(r2 + 4)
r0 = 1
exit
