# rule: pointer difference between the stack and ctx
# expect: reject another kind
# type: xdp
r2 = r10
r2 -= r1
r0 = 0
exit
