# rule: privileged programs may read uninitialized stack
# expect: accept
r0 = *(u64 *)(r10 - 8)
exit
