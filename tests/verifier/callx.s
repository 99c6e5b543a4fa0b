# rule: indirect calls
# expect: reject callx
r1 = 1
callx r1
r0 = 0
exit
