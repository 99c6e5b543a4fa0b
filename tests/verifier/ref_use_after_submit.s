# rule: a submitted record may not be written (issue 21: use after submit)
# expect: reject R6 invalid mem access 'scalar' (it pointed to the reference acquired at insn 4, which insn 10 released
# type: tracepoint
# maps: ringbuf 0 0 4096
ld_pseudo r1, 0x5, 0x0
r2 = 8
r3 = 0
call 131
r6 = r0
if r6 == 0 goto out
*(u64 *)(r6 + 0) = 1
r1 = r6
r2 = 0
call 132
*(u64 *)(r6 + 0) = 2
out:
r0 = 0
exit
