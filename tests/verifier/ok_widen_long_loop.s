# rule: widened loops: a loop of 10 million iterations indexing a 64-byte buffer with its counter masked to the buffer is proven safe for every trip count (walking it, as the kernel does, is too complex)
# expect: accept
# loops: widen
r0 = 0
r6 = 0
loop:
r3 = r6
r3 &= 0x3f
r4 = r1
r4 += r3
r5 = *(u8 *)(r4 + 0)
r0 += r5
r6 += 1
if r6 < 10000000 goto loop
exit
