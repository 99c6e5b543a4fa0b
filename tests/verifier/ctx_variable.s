# rule: a context pointer may move by a variable amount (the kernel allows
# the arithmetic; only a dereference or passing it as the context is refused)
# expect: accept
# type: xdp
r2 = *(u32 *)(r1 + 12)
r2 &= 4
r1 += r2
r0 = 0
exit
