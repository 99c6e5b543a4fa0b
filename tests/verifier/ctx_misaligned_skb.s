# rule: reading __sk_buff at an odd field offset
# expect: reject invalid bpf_context access
# type: tc
r0 = *(u32 *)(r1 + 2)
exit
