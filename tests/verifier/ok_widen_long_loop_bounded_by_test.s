# rule: widened loops: a counter bounded only by the loop's own test (i < 60 over 64 bytes, read 4 bytes ahead... within the buffer) keeps that bound through widening (widening stops at the constants the program compares with), here inside an outer loop of 10 million iterations
# expect: accept
# loops: widen
r0 = 0
r7 = 0
outer:
r6 = 0
inner:
r4 = r1
r4 += r6
r5 = *(u32 *)(r4 + 0)
r0 += r5
r6 += 1
if r6 < 60 goto inner
r7 += 1
if r7 < 10000000 goto outer
exit
