# rule: an instruction no path reaches
# expect: reject unreachable insn
r0 = 0
exit
r0 = 1
exit
