# rule: 8-byte read at fp-4 crosses the top
# expect: reject stack R10 off=-4
r0 = *(u64 *)(r10 - 4)
exit
