# rule: a jump before the start
# expect: reject jump out of range
r0 = 0
goto -3
exit
