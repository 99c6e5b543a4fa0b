# rule: the memory passed to a global function must cover its argument type
# global: 5 f mem8
# expect: reject argument 1 of global function f
*(u32 *)(r10 - 4) = 0
r1 = r10
r1 += -4
call f
exit
f:
r0 = 0
exit
