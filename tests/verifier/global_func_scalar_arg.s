# rule: a global function's scalar argument cannot receive a pointer
# global: 3 f scalar
# expect: reject is a scalar
r1 = r10
call f
exit
f:
r0 = r1
exit
