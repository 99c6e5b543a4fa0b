# rule: legacy packet loads in XDP
# expect: reject not allowed for this program type
# type: xdp
r6 = r1
r0 = *(u8 *)skb[0x0]
exit
