# rule: a loop that never converges, once the state lists at its instructions are full, is explored with a bounded history per path (found by fuzzing: 13 GB and over a minute before, now about what it took without precision tracking)
# expect: reject too complex
# max-insns: 200000
l0:
r0 = 2097152
w1 -= 24576
if r1 s<= r0 goto l3
l3:
if w0 s>= 30208 goto l4
l4:
if r2 <= -64843 goto l0
r0 = 0
exit
