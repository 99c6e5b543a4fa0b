# rule: bpf_sk_assign's socket must not be NULL: a lookup's result is checked first
# expect: reject expected=sock_common, sock, tcp_sock (argument of bpf_sk_assign): compare it with 0 first
# type: tc
r6 = r1
r3 = 0
*(u64 *)(r10 - 16) = r3
*(u64 *)(r10 - 8) = r3
r2 = r10
r2 += -16
r3 = 12
r4 = -1
r5 = 0
call 84
r7 = r0
r1 = r6
r2 = r7
r3 = 0
call 124
r0 = 0
exit
