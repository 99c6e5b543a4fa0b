# rule: dereferencing a scalar
# expect: reject invalid mem access 'scalar'
r1 = 4096
r0 = *(u64 *)(r1 + 0)
exit
