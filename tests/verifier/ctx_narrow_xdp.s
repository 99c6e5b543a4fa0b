# rule: narrow loads of xdp_md.data are not allowed
# expect: reject invalid bpf_context access
# type: xdp
r0 = *(u16 *)(r1 + 0)
exit
