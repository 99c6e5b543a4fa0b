# rule: xdp_md is read-only
# expect: reject read-only
# type: xdp
*(u32 *)(r1 + 12) = 1
r0 = 0
exit
