// Live-events example: the network hooks. Each program counts the packets
// (or connects) it sees in `counts` (0: XDP, 1: tc, 2: socket filter,
// 3: connect4 denials) and the UDP datagrams to port 9999 among them
// (index + 4); with drop_9999 set, XDP and tc drop those datagrams, and
// connect4 refuses every connect to port 9999.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

const volatile __u8 drop_9999 = 0;

static __always_inline void count(__u32 i)
{
	__u64 *n = bpf_map_lookup_elem(&counts, &i);
	if (n)
		__sync_fetch_and_add(n, 1);
}

// Whether the Ethernet frame in [data, end) is a UDP datagram to port 9999.
static __always_inline int is_udp_9999(void *data, void *end)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return 0;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(9999);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	count(0);
	if (!is_udp_9999(data, end))
		return XDP_PASS;
	count(4);
	return drop_9999 ? XDP_DROP : XDP_PASS;
}

SEC("tcx/ingress")
int tc_count(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	count(1);
	if (!is_udp_9999(data, end))
		return 0; // TCX_PASS
	count(5);
	return drop_9999 ? 2 /* TCX_DROP */ : 0;
}

SEC("socket")
int socket_count(struct __sk_buff *skb)
{
	count(2);
	struct iphdr ip;
	struct udphdr udp;
	// A packet socket's filter sees the frame from the Ethernet header.
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) == 0 && ip.protocol == IPPROTO_UDP &&
	    bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &udp, sizeof(udp)) == 0 &&
	    udp.dest == bpf_htons(9999))
		count(6);
	return 0; // keep nothing in the socket
}

SEC("cgroup/connect4")
int connect4_deny_9999(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port == bpf_htons(9999)) {
		count(3);
		return 0; // refuse: connect(2) fails with EPERM
	}
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
