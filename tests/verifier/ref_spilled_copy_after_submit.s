# rule: release invalidates copies spilled to the stack too
# expect: reject R2 invalid mem access 'scalar' (it pointed to the reference acquired at insn 4
# type: tracepoint
# maps: ringbuf 0 0 4096
ld_pseudo r1, 0x5, 0x0
r2 = 8
r3 = 0
call 131
if r0 == 0 goto out
*(u64 *)(r10 - 8) = r0
r1 = r0
r2 = 0
call 132
r2 = *(u64 *)(r10 - 8)
*(u64 *)(r2 + 0) = 4
out:
r0 = 0
exit
