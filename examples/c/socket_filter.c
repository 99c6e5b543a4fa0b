/* Socket filter: keep DNS (UDP port 53) packets, drop everything else.
 * Uses the legacy packet loads (LD_ABS) that classic socket filters use. */
#include "common.h"

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32); /* 0 = dropped, 1 = kept */
	__type(value, __u64);
} verdicts SEC(".maps");

SEC("socket")
int dns_only(struct __sk_buff *skb)
{
	__u32 key = 0;
	int keep = 0;
	if (load_half(skb, offsetof(struct ethhdr, h_proto)) == ETH_P_IP &&
	    load_byte(skb, ETH_HLEN + offsetof(struct iphdr, protocol)) == IPPROTO_UDP) {
		__u32 ihl = (load_byte(skb, ETH_HLEN) & 0xf) * 4;
		__u32 dport = load_half(skb, ETH_HLEN + ihl + offsetof(struct udphdr, dest));
		__u32 sport = load_half(skb, ETH_HLEN + ihl + offsetof(struct udphdr, source));
		keep = dport == 53 || sport == 53;
	}
	key = keep;
	__u64 *c = bpf_map_lookup_elem(&verdicts, &key);
	if (c)
		__sync_fetch_and_add(c, 1);
	return keep ? skb->len : 0;
}

char LICENSE[] SEC("license") = "GPL";
