# rule: a jump past the end
# expect: reject jump out of range
r0 = 0
goto +5
exit
