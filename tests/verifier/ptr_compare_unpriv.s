# rule: comparing pointers of different kinds (unprivileged)
# expect: reject pointer comparison prohibited
# type: xdp
# policy: unprivileged
if r10 > r1 goto out
out:
r0 = 0
exit
