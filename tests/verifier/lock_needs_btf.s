# rule: a spin lock lives in a map whose value type is known from BTF
# expect: reject map 'map0' has to have BTF in order to use bpf_spin_lock
# type: tc
# maps: array 4 24 2
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
r1 = r6
r1 += 8
call 94
out:
r0 = 0
exit
