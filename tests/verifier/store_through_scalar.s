# rule: storing through a scalar
# expect: reject invalid mem access 'scalar'
r1 = 4096
*(u64 *)(r1 + 0) = 1
r0 = 0
exit
