# rule: helper id 999
# expect: reject invalid func unknown#999
call 999
r0 = 0
exit
