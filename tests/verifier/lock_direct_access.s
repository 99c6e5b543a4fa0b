# rule: the lock word of a map value is not accessible by loads and stores
# expect: reject bpf_spin_lock cannot be accessed directly by load/store
# type: tc
# maps: array 4 24 2 lock=8
r1 = 0
*(u32 *)(r10 - 4) = r1
r2 = r10
r2 += -4
ld_pseudo r1, 0x5, 0x0
call 1
if r0 == 0 goto out
r0 = *(u32 *)(r0 + 8)
exit
out:
r0 = 0
exit
