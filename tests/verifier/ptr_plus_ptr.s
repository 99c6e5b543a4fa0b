# rule: pointer += pointer
# expect: reject pointer += pointer
r1 = r10
r1 += r10
r0 = 0
exit
