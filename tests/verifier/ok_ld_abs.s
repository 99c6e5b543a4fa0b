# rule: legacy packet loads in a socket filter
# expect: accept
# type: socket
r6 = r1
r0 = *(u16 *)skb[0xc]
exit
