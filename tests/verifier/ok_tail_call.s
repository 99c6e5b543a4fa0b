# rule: tail call through a prog array
# expect: accept
# maps: prog_array 4 4 4
# type: xdp
ld_pseudo r2, 0x5, 0x0
r3 = 0
call 12
r0 = 2
exit
