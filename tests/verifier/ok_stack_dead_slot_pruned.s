# rule: slots the code ahead never reads do not stop pruning: six slots that each hold a stack pointer or a number, never read again, join within 300 instructions (2^6 states otherwise)
# expect: accept
# max-insns: 300
call 7
r6 = r0
*(u64 *)(r10 - 8) = r6
if r6 & 2 goto a1
r1 = r10
*(u64 *)(r10 - 8) = r1
a1:
*(u64 *)(r10 - 16) = r6
if r6 & 4 goto a2
r1 = r10
*(u64 *)(r10 - 16) = r1
a2:
*(u64 *)(r10 - 24) = r6
if r6 & 8 goto a3
r1 = r10
*(u64 *)(r10 - 24) = r1
a3:
*(u64 *)(r10 - 32) = r6
if r6 & 16 goto a4
r1 = r10
*(u64 *)(r10 - 32) = r1
a4:
*(u64 *)(r10 - 40) = r6
if r6 & 32 goto a5
r1 = r10
*(u64 *)(r10 - 40) = r1
a5:
*(u64 *)(r10 - 48) = r6
if r6 & 64 goto a6
r1 = r10
*(u64 *)(r10 - 48) = r1
a6:
r0 = 0
exit
