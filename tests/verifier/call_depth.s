# rule: recursion deeper than 8 frames
# expect: reject too deep
call f
r0 = 0
exit
f:
call f
r0 = 0
exit
