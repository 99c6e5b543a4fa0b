# rule: widened loops: a counter bounded by the loop test (i < 64) indexes a 64-byte buffer safely
# expect: accept
# loops: widen
r0 = 0
r6 = 0
loop:
r4 = r1
r4 += r6
r5 = *(u8 *)(r4 + 0)
r0 += r5
r6 += 1
if r6 < 64 goto loop
exit
