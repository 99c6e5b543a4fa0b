# rule: tc may set the packet's departure time (__sk_buff.tstamp, tc_cls_act_is_valid_access)
# expect: accept
# type: tc
r2 = 1000
*(u64 *)(r1 + 152) = r2
r0 = 0
exit
