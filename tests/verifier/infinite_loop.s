# rule: a loop that never changes anything
# expect: reject infinite loop
r0 = 0
loop:
goto loop
