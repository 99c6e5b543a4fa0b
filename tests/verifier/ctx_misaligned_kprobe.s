# rule: pt_regs is read only by loads aligned to their size (kprobe_prog_is_valid_access)
# expect: reject invalid bpf_context access
# type: kprobe
r0 = *(u64 *)(r1 + 4)
exit
