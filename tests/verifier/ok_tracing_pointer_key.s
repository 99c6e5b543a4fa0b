# rule: a tracing program (which only CAP_PERFMON may load) may key a map by a kernel pointer, as libbpf-tools do with `struct request *`: the kernel's allow_ptr_leaks holds for perfmon program types
# expect: accept
# type: kprobe
# maps: hash 8 8 16
r6 = *(u64 *)(r1 + 112)
*(u64 *)(r10 - 8) = r1
*(u64 *)(r10 - 16) = 0
r2 = r10
r2 += -8
r3 = r10
r3 += -16
ld_pseudo r1, 0x5, 0x0
r4 = 0
call 2
r0 = 0
exit
