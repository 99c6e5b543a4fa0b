# rule: recvmsg cannot refuse: its programs return 1 (check_return_code)
# expect: reject which should be in [1, 1]
# type: cgroup_sock_addr
# attach: recvmsg4
r0 = 0
exit
