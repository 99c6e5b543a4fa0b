# rule: get_current_comm with size 0
# expect: reject zero-sized
# type: kprobe
r1 = r10
r1 += -16
r2 = 0
call 16
r0 = 0
exit
