# rule: legacy packet loads need the ctx in r6
# expect: reject R6 != pointer to skb
# type: socket
r6 = 0
r0 = *(u8 *)skb[0x0]
exit
