# rule: packet pointers are invalid after bpf_xdp_adjust_head
# expect: reject R7 invalid mem access 'scalar' (it was a packet pointer, invalidated by insn 8
# type: xdp
r2 = *(u32 *)(r1 + 0)
r3 = *(u32 *)(r1 + 4)
r6 = r1
r7 = r2
r4 = r2
r4 += 14
if r4 > r3 goto out
r2 = 0
call 44
r0 = *(u8 *)(r7 + 0)
exit
out:
r0 = 1
exit
