# rule: a function returns its own frame's address
# expect: reject own stack frame
call f
r0 = 0
exit
f:
r0 = r10
exit
