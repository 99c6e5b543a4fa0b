# rule: storing a pointer into the context
# expect: reject leaks addr
# type: tc
*(u32 *)(r1 + 48) = r10
r0 = 0
exit
