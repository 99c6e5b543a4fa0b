# rule: cgroup_skb programs return 0..3
# expect: reject should be in
# type: cgroup_skb
r0 = 7
exit
