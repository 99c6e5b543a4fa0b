# rule: precision: a path pruned by a state whose proof needed r8 precise passes that need back to the states it came through (here the one at p1, where a later path arrives with r8 = 100)
# expect: reject outside
# maps: array 4 64 4
*(u32 *)(r10 - 4) = 0
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r9 = r0
call 7
r6 = r0
r8 = 100
if r6 == 0 goto p1
r8 = 4
if r6 == 1 goto p1
goto q
p1:
r1 = 0
if r1 == 0 goto q
q:
r9 += r8
r0 = *(u8 *)(r9 + 0)
out:
r0 = 0
exit
