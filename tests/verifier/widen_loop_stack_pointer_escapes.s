# rule: widened loops: a stack pointer moved down 8 bytes per iteration leaves the 512-byte stack after 64 iterations; widening its offset is caught at the store
# expect: reject stack
# loops: widen
r6 = r10
r7 = 0
loop:
r6 += -8
*(u64 *)(r6 + 0) = r7
r7 += 1
if r7 < 1000000 goto loop
r0 = 0
exit
