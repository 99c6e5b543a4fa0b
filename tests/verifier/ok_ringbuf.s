# rule: reserve, write, submit
# expect: accept
# maps: ringbuf 0 0 4096
ld_pseudo r1, 0x5, 0x0
r2 = 16
r3 = 0
call 131
if r0 == 0 goto out
*(u64 *)(r0 + 8) = 1
r1 = r0
r2 = 0
call 132
out:
r0 = 0
exit
