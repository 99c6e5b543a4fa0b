# rule: dereference of a modified ctx pointer
# expect: reject modified ctx ptr
# type: xdp
r1 += 4
r0 = *(u32 *)(r1 + 0)
exit
