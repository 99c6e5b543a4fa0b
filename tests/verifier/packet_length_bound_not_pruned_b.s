# rule: (the other order of exploration) a length computed as data_end - data bounds the packet when tested; an unrelated scalar tested the same way does not, so a state where the register holds the length must not cover one where it holds any other value
# type: xdp
# expect: reject outside of the packet
r6 = *(u32 *)(r1 + 0)
r7 = *(u32 *)(r1 + 4)
call 7
if r0 != 0 goto lb
call 7
r8 = r0
r8 &= 255
goto p
lb:
r8 = r7
r8 -= r6
p:
if r8 < 14 goto out
r0 = *(u8 *)(r6 + 13)
out:
r0 = 0
exit
