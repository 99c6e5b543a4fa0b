# rule: r10 cannot be moved
# expect: reject frame pointer is read only
r10 += -8
r0 = 0
exit
