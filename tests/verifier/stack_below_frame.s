# rule: stack access below fp-512
# expect: reject stack R10 off=-520
*(u64 *)(r10 - 520) = 1
r0 = 0
exit
