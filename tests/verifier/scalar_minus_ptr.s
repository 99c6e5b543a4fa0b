# rule: scalar -= pointer
# expect: reject scalar -= pointer
r1 = 8
r1 -= r10
r0 = 0
exit
