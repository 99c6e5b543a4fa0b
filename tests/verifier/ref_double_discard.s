# rule: a record is released once (issue 21: double discard)
# expect: reject R1 type=scalar expected=ringbuf_mem (it pointed to the reference acquired at insn 4, which insn 9 released
# type: tracepoint
# maps: ringbuf 0 0 4096
ld_pseudo r1, 0x5, 0x0
r2 = 8
r3 = 0
call 131
r6 = r0
if r6 == 0 goto out
r1 = r6
r2 = 0
call 133
r1 = r6
r2 = 0
call 133
out:
r0 = 0
exit
