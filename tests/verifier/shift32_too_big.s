# rule: 32-bit shift by 32
# expect: reject invalid shift
w0 = 1
w0 >>= 32
exit
