# rule: division by an immediate zero
# expect: reject div by zero
r0 = 5
r0 /= 0
exit
