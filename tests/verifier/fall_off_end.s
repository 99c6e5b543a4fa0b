# rule: the last instruction is not an exit or jump
# expect: reject falls off the end
r0 = 0
