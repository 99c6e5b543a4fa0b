# rule: reading 8 bytes where only 4 were written (unprivileged)
# expect: reject not initialized
# policy: unprivileged
*(u32 *)(r10 - 8) = 1
r0 = *(u64 *)(r10 - 8)
exit
