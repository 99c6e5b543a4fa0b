# rule: sendmsg4 rewrites the message's source (msg_src_ip4)
# expect: accept
# type: cgroup_sock_addr
# attach: sendmsg4
w2 = 1
*(u32 *)(r1 + 40) = r2
r0 = 1
exit
