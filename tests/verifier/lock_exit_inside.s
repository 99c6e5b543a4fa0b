# rule: no exit between bpf_spin_lock and bpf_spin_unlock (issue 21)
# expect: reject BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region: the lock taken at insn 11
# type: tc
# maps: array 4 24 2 lock=8
r1 = 0
*(u32 *)(r10 - 4) = r1
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r6 = r0
r1 = r6
r1 += 8
call 93
r1 = *(u64 *)(r6 + 0)
if r1 > 10 goto out
r1 = r6
r1 += 8
call 94
out:
r0 = 0
exit
