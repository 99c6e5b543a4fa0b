# rule: reading an uninitialized register
# expect: reject R3 !read_ok
r0 = r3
exit
