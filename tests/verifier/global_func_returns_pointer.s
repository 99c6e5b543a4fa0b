# rule: a global function must return a scalar
# global: 3 f
# expect: reject must return a scalar
r1 = 0
call f
exit
f:
r0 = r10
exit
