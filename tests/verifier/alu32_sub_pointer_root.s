# rule: a 32-bit subtraction involving a pointer gives root an unknown scalar (adjust_ptr_min_max_vals: BPF_SUB with allow_ptr_leaks)
# expect: accept
# type: tc
r2 = *(u32 *)(r1 + 76)
w3 = 5
w3 -= w2
r0 = 0
exit
