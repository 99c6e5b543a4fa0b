/* A dispatcher that tail-calls one program per protocol through a
 * prog_array initialised in the object (BTF __array values). */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32); /* 0 = tcp, 1 = udp, 2 = other */
	__type(value, __u64);
} handled SEC(".maps");

static __always_inline int count(__u32 key, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&handled, &key);
	if (c)
		*c += 1;
	return verdict;
}

SEC("xdp")
int handle_tcp(struct xdp_md *ctx)
{
	return count(0, XDP_PASS);
}

SEC("xdp")
int handle_udp(struct xdp_md *ctx)
{
	return count(1, XDP_DROP);
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int(void *));
} jump_table SEC(".maps") = {
	.values = {
		[0] = (void *)&handle_tcp,
		[1] = (void *)&handle_udp,
	},
};

SEC("xdp")
int dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = parse_ipv4(data, data_end);
	if (ip) {
		if (ip->protocol == IPPROTO_TCP)
			bpf_tail_call(ctx, &jump_table, 0);
		else if (ip->protocol == IPPROTO_UDP)
			bpf_tail_call(ctx, &jump_table, 1);
	}
	return count(2, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
