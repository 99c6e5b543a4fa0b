# rule: exit with r0 unset
# expect: reject R0 !read_ok
exit
