# rule: a context pointer moved by a variable amount cannot be dereferenced
# expect: reject dereference of modified ctx ptr
# type: xdp
r2 = *(u32 *)(r1 + 12)
r2 &= 4
r1 += r2
r0 = *(u32 *)(r1 + 0)
exit
