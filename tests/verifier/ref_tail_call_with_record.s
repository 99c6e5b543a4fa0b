# rule: no tail call while a record is reserved (issue 21)
# expect: reject tail_call would lead to reference leak: the ring buffer record (bpf_ringbuf_reserve) acquired at insn 5
# type: tracepoint
# maps: ringbuf 0 0 4096; prog_array 4 4 1
r6 = r1
ld_pseudo r1, 0x5, 0x0
r2 = 8
r3 = 0
call 131
r7 = r0
if r7 == 0 goto out
r1 = r6
ld_pseudo r2, 0x5, 0x1
r3 = 0
call 12
r1 = r7
r2 = 0
call 133
out:
r0 = 0
exit
