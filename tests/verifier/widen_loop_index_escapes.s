# rule: widened loops: an index that leaves the 64-byte buffer only after 64 million iterations (the counter shifted right by 20) is caught by widening (the counter kept below the loop test 100000000, the index below 96), where walking the loop gives up as too complex long before
# expect: reject invalid access to memory of size 64: [0, 96)
# loops: widen
r0 = 0
r6 = 0
loop:
r3 = r6
r3 >>= 20
r4 = r1
r4 += r3
r5 = *(u8 *)(r4 + 0)
r0 += r5
r6 += 1
if r6 < 100000000 goto loop
exit
