# rule: reading stack never written (unprivileged)
# expect: reject not initialized
# policy: unprivileged
r0 = *(u64 *)(r10 - 8)
exit
