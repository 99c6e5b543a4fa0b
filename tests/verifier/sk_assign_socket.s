# rule: tc steers a packet to a socket it looked up and checked (bpf_sk_assign takes any socket pointer, its reference stays the caller's)
# expect: accept
# type: tc
r6 = r1
r3 = 0
*(u64 *)(r10 - 16) = r3
*(u64 *)(r10 - 8) = r3
r2 = r10
r2 += -16
r3 = 12
r4 = -1
r5 = 0
call 84
if r0 == 0 goto +7
r7 = r0
r1 = r6
r2 = r7
r3 = 0
call 124
r1 = r7
call 86
r0 = 0
exit
