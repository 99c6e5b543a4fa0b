# rule: bind returns 0 to 3
# expect: reject which should be in [0, 3]
# type: cgroup_sock_addr
# attach: bind4
r0 = 4
exit
