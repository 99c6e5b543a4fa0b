# rule: a loop whose state repeats
# expect: reject infinite loop
r0 = 0
loop:
r1 = 1
if r1 == 1 goto loop
exit
