# rule: returning a pointer from the program
# expect: reject must return a scalar
r0 = r10
exit
