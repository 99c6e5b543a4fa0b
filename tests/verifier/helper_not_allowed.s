# rule: xdp_adjust_head in a socket filter
# expect: reject cannot use helper
# type: socket
r2 = 0
call 44
r0 = 0
exit
