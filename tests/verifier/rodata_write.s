# rule: writing into .rodata
# expect: reject read-only
# maps: array 4 8 1 ro
ld_pseudo r1, 0x6, 0x0, 0x0
*(u32 *)(r1 + 0) = 1
r0 = 0
exit
