# rule: socket filters cannot write skb->mark
# expect: reject read-only
# type: socket
*(u32 *)(r1 + 8) = 1
r0 = 0
exit
