# rule: an atomic that stores a pointer
# expect: reject leaks addr
*(u64 *)(r10 - 8) = 0
lock *(u64 *)(r10 - 8) += r10
r0 = 0
exit
