# rule: the memory passed to a global function must be initialized
# global: 3 f mem8
# expect: reject not initialized
r1 = r10
r1 += -8
call f
exit
f:
r0 = 0
exit
