# rule: __sk_buff.len is read-only
# expect: reject read-only
# type: tc
*(u32 *)(r1 + 0) = 1
r0 = 0
exit
