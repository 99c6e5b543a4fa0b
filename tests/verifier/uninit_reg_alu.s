# rule: arithmetic on an uninitialized register
# expect: reject R3 !read_ok
r0 = 0
r0 += r3
exit
