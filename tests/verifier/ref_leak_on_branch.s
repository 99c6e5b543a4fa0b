# rule: a ring buffer record must be submitted or discarded on every path (issue 21: leak)
# expect: reject BPF_EXIT instruction in main prog would lead to reference leak: the ring buffer record (bpf_ringbuf_reserve) acquired at insn 4
# type: tracepoint
# maps: ringbuf 0 0 4096
ld_pseudo r1, 0x5, 0x0
r2 = 8
r3 = 0
call 131
r6 = r0
if r6 == 0 goto out
call 7
*(u64 *)(r6 + 0) = r0
r1 = *(u64 *)(r6 + 0)
r1 &= 1
if r1 != 0 goto out
r1 = r6
r2 = 0
call 132
out:
r0 = 0
exit
