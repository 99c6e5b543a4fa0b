# rule: a loop counter with no upper bound
# expect: reject too complex
# max-insns: 20000
r0 = 0
loop:
r0 += 1
if r0 != 0 goto loop
exit
