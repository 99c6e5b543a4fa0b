# rule: stores to the address fields are whole u32s
# expect: reject invalid bpf_context access off=24 size=2
# type: cgroup_sock_addr
# attach: connect4
w2 = 1
*(u16 *)(r1 + 24) = r2
r0 = 1
exit
