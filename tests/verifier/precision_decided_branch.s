# rule: precision: a branch that only one way could take (r8 = 4 > 10 is never true) makes r8 precise where paths meet, so the path with r8 = 100 takes the other way and its bad access is seen
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
r8 = 100
if r0 != 0 goto p
r8 = 4
p:
if r8 > 10 goto bad
r0 = *(u8 *)(r9 + 0)
goto out
bad:
r0 = *(u8 *)(r9 + 100)
out:
r0 = 0
exit
