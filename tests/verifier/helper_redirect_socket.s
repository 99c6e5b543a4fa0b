# rule: bpf_redirect in a socket filter
# expect: reject cannot use helper
# type: socket
r1 = 1
r2 = 0
call 23
r0 = 0
exit
