# rule: kernel function calls
# expect: reject kfunc
call 0x3e8 <kfunc>
r0 = 0
exit
