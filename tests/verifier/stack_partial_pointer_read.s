# rule: 4 bytes of a spilled pointer (unprivileged)
# expect: reject spilled pointer
# policy: unprivileged
*(u64 *)(r10 - 8) = r10
r0 = *(u32 *)(r10 - 8)
exit
