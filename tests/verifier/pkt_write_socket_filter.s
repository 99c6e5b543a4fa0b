# rule: socket filters cannot read skb->data
# expect: reject invalid bpf_context access
# type: socket
r2 = *(u32 *)(r1 + 76)
r0 = 0
exit
