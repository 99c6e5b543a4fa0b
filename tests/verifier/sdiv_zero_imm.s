# rule: signed division by an immediate zero
# expect: reject div by zero
r0 = 5
r0 s/= 0
exit
