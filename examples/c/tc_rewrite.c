/* tc: redirect TCP port 80 to port 8080 on 10.0.0.2, rewriting the
 * destination address and port and fixing the IP and TCP checksums
 * incrementally with bpf_l3_csum_replace / bpf_l4_csum_replace. */
#include "common.h"
#include <stddef.h>

#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define TCP_DPORT_OFF (ETH_HLEN + sizeof(struct iphdr) + offsetof(struct tcphdr, dest))
#define TCP_CSUM_OFF (ETH_HLEN + sizeof(struct iphdr) + offsetof(struct tcphdr, check))

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64); /* packets rewritten */
} rewritten SEC(".maps");

SEC("tc")
int rewrite_http(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = parse_ipv4(data, data_end);
	if (!ip || ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return TC_ACT_OK;
	struct tcphdr *tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;
	if (tcp->dest != bpf_htons(80))
		return TC_ACT_OK;

	__u32 old_ip = ip->daddr;
	__u32 new_ip = bpf_htonl(0x0a000002);
	__u16 old_port = tcp->dest;
	__u16 new_port = bpf_htons(8080);

	bpf_l4_csum_replace(skb, TCP_CSUM_OFF, old_ip, new_ip, BPF_F_PSEUDO_HDR | sizeof(new_ip));
	bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip));
	bpf_skb_store_bytes(skb, IP_DST_OFF, &new_ip, sizeof(new_ip), 0);
	bpf_l4_csum_replace(skb, TCP_CSUM_OFF, old_port, new_port, sizeof(new_port));
	bpf_skb_store_bytes(skb, TCP_DPORT_OFF, &new_port, sizeof(new_port), 0);

	__u32 key = 0;
	__u64 *c = bpf_map_lookup_elem(&rewritten, &key);
	if (c)
		*c += 1;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
