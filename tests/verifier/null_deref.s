# rule: dereferencing NULL
# expect: reject null pointer
r1 = 0
r0 = *(u64 *)(r1 + 0)
exit
