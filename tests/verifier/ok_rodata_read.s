# rule: reading .rodata
# expect: accept
# maps: array 4 8 1 ro
ld_pseudo r1, 0x6, 0x0, 0x0
r0 = *(u32 *)(r1 + 4)
exit
