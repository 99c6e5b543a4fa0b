# rule: tc programs may set skb->mark
# expect: accept
# type: tc
*(u32 *)(r1 + 8) = 7
r0 = 0
exit
