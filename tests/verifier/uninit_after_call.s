# rule: r1-r5 are clobbered by helper calls
# expect: reject R1 !read_ok
r6 = 1
r1 = 1
call 5
r0 = r1
exit
