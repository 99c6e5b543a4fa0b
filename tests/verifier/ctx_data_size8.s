# rule: xdp_md.data is a u32
# expect: reject invalid bpf_context access
# type: xdp
r0 = *(u64 *)(r1 + 0)
exit
