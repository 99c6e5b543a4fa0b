# rule: getpeername returns 1
# expect: accept
# type: cgroup_sock_addr
# attach: getpeername6
r0 = 1
exit
