# rule: precision: the program's return value is precise (1 on the path explored first, 7 on the other; a cgroup_skb program returns 0 or 1)
# type: cgroup_skb
# expect: reject
call 7
r6 = 7
if r0 != 0 goto p
r6 = 1
p:
r0 = r6
exit
