# rule: a tracepoint's record is read only by loads aligned to their size (tp_prog_is_valid_access: off % size)
# expect: reject invalid bpf_context access
# type: tracepoint
r0 = *(u32 *)(r1 + 34)
exit
