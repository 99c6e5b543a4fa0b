/* Socket references: a socket from bpf_sk_lookup_* must be released with
 * bpf_sk_release on every path, once, and not used after that (nor any
 * view of it, such as bpf_tcp_sock's). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

static __always_inline struct bpf_sock *lookup(struct __sk_buff *skb)
{
	struct bpf_sock_tuple t = {};
	return bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
}

// expect: reject BPF_EXIT instruction in main prog would lead to reference leak: the socket | kernel: BPF_EXIT instruction in main prog would lead to reference leak
SEC("tc") int socket_leak(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return 0;
	if (sk->family == 2)
		return 1;
	bpf_sk_release(sk);
	return 0;
}

// expect: reject invalid mem access 'scalar' (it pointed to the reference | kernel: invalid mem access 'scalar'
SEC("tc") int socket_use_after_release(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return sk->family;
}

// expect: reject expected=sock_common, sock, tcp_sock (it pointed to the reference | kernel: type=scalar expected=sock_common
SEC("tc") int socket_double_release(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	bpf_sk_release(sk);
	return 0;
}

// expect: reject expected=sock_common, sock, tcp_sock (it may be NULL | kernel: type=sock_or_null expected=sock_common
SEC("tc") int socket_release_maybe_null(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	bpf_sk_release(sk);
	return 0;
}

// expect: reject invalid mem access 'scalar' (it pointed to the reference | kernel: invalid mem access 'scalar'
SEC("tc") int tcp_view_after_release(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return 0;
	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
	if (!tp) {
		bpf_sk_release(sk);
		return 0;
	}
	bpf_sk_release(sk);
	return tp->snd_cwnd;
}

// expect: reject cannot write into sock | kernel: cannot write into sock
SEC("tc") int socket_write(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return 0;
	*(volatile __u32 *)&sk->mark = 1;
	bpf_sk_release(sk);
	return 0;
}

// expect: reject invalid sock access off=80 size=4 | kernel: invalid sock access off=80 size=4
SEC("tc") int socket_read_past_end(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return 0;
	__u32 v = *(volatile __u32 *)((char *)sk + 80);
	bpf_sk_release(sk);
	return v;
}

// expect: reject invalid sock_common access off=12 size=4 | kernel: invalid sock_common access off=12 size=4
SEC("tc") int sock_common_protocol(struct __sk_buff *skb)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	__u32 p = sk->protocol;
	bpf_sk_release(sk);
	return p;
}

// expect: reject tail_call would lead to reference leak: the socket | kernel: tail_call would lead to reference leak
SEC("tc") int socket_tail_call(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return 0;
	bpf_tail_call(skb, &jumps, 0);
	bpf_sk_release(sk);
	return 0;
}

// expect: accept
SEC("tc") int ok_socket_lookup_release(struct __sk_buff *skb)
{
	struct bpf_sock *sk = lookup(skb);
	if (!sk)
		return TC_ACT_OK;
	__u32 fam = sk->family, port = sk->dst_port;
	struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
	__u32 cwnd = tp ? tp->snd_cwnd : 0;
	bpf_sk_release(sk);
	return fam == 2 && port && cwnd ? TC_ACT_SHOT : TC_ACT_OK;
}

// expect: accept
SEC("xdp") int ok_xdp_socket_lookup(struct xdp_md *ctx)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return XDP_PASS;
	bpf_sk_release(sk);
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
