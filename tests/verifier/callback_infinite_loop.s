# rule: a loop inside one call of a callback that never changes its state loops forever
# expect: reject infinite loop detected
r1 = 10
ld_pseudo r2, 0x4, 0x6
r3 = 0
r4 = 0
call 181
r0 = 0
exit
cb:
r0 = 0
if r0 == 0 goto -1
r0 = 0
exit
