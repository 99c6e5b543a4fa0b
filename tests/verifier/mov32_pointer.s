# rule: 32-bit move of a pointer (unprivileged)
# expect: reject 32-bit move of a pointer
# policy: unprivileged
w1 = w10
r0 = 0
exit
