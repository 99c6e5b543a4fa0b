# rule: connect returns 0 or 1
# expect: reject which should be in [0, 1]
# type: cgroup_sock_addr
# attach: connect4
r0 = 2
exit
