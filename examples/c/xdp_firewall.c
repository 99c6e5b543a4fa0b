/* XDP firewall: drops IPv4 packets whose source address is in a blocklist
 * (a hash map the operator fills), counts drops and passes per CPU. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   /* IPv4 source, network byte order */
	__type(value, __u64); /* packets dropped from it */
} blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);   /* 0 = passed, 1 = dropped */
	__type(value, __u64);
} stats SEC(".maps");

/* Pre-seeded address to block: 10.0.0.66 (the program adds it on first use,
 * so the example needs no separate control plane). */
const volatile __u32 seed_block = 0x4200000a;

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 key = 0;
	__u64 one = 1;

	__u32 seed = seed_block;
	bpf_map_update_elem(&blocklist, &seed, &one, BPF_NOEXIST);

	struct iphdr *ip = parse_ipv4(data, data_end);
	if (ip) {
		__u32 src = ip->saddr;
		__u64 *hits = bpf_map_lookup_elem(&blocklist, &src);
		if (hits) {
			__sync_fetch_and_add(hits, 1);
			key = 1;
			__u64 *c = bpf_map_lookup_elem(&stats, &key);
			if (c)
				*c += 1;
			return XDP_DROP;
		}
	}
	__u64 *c = bpf_map_lookup_elem(&stats, &key);
	if (c)
		*c += 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
