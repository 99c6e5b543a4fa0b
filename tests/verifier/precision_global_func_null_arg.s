# rule: precision: a global function's memory argument may be a NULL scalar (0) but no other scalar: the 0 passed on the path explored first is precise where the paths meet, so the path passing 5 is checked too
# global: 9 f mem4
# expect: reject
call 7
r1 = 5
if r0 != 0 goto p
r1 = 0
p:
r2 = 0
if r2 == 0 goto q
q:
call f
r0 = 0
exit
f:
r0 = 0
exit
