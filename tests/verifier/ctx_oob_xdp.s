# rule: xdp_md has 24 bytes
# expect: reject invalid bpf_context access
# type: xdp
r0 = *(u32 *)(r1 + 24)
exit
