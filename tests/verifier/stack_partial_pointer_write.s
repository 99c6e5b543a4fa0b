# rule: storing 4 bytes of a pointer (unprivileged)
# expect: reject partial copy of a pointer
# policy: unprivileged
*(u32 *)(r10 - 8) = r10
r0 = 0
exit
