# rule: precision: a scalar whose range nothing uses does not keep paths apart: through six diamonds each path sets r7 differently (64 paths), and they are pruned at every meeting point (accepted within 400 instructions; without precision tracking the paths stay apart)
# expect: accept
# max-insns: 400
r7 = 0
call 7
if r0 != 0 goto a1
r7 += 1
a1:
r7 += 10
call 7
if r0 != 0 goto a2
r7 += 2
a2:
r7 += 20
call 7
if r0 != 0 goto a3
r7 += 3
a3:
r7 += 30
call 7
if r0 != 0 goto a4
r7 += 4
a4:
r7 += 40
call 7
if r0 != 0 goto a5
r7 += 5
a5:
r7 += 50
call 7
if r0 != 0 goto a6
r7 += 6
a6:
r7 += 60
*(u64 *)(r10 - 8) = r7
r0 = 0
exit
