# rule: bind may return 2 or 3 (keep the port)
# expect: accept
# type: cgroup_sock_addr
# attach: bind4
r0 = 3
exit
