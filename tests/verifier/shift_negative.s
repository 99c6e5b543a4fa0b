# rule: arithmetic shift by -1
# expect: reject invalid shift
r0 = 1
r0 s>>= -1
exit
