/* Callbacks run any number of times: what they do to the caller's stack
 * must hold after every number of calls, not just after one. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[4]);
} table SEC(".maps");

struct counter {
	__u64 n;
};

static int count_cb(__u32 i, struct counter *c)
{
	c->n++;
	return 0;
}

// expect: reject unbounded memory access | kernel: min value is outside of the allowed memory range
SEC("xdp") int index_counted_by_callback(struct xdp_md *ctx)
{
	/* After one call n is 1, a valid index; after nine calls it is not. */
	struct counter c = { .n = 0 };
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&table, &k);
	if (!v)
		return XDP_PASS;
	bpf_loop(9, count_cb, &c, 0);
	return v[c.n] ? XDP_DROP : XDP_PASS;
}

// expect: accept
SEC("xdp") int ok_index_checked_after_callback(struct xdp_md *ctx)
{
	struct counter c = { .n = 0 };
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&table, &k);
	if (!v)
		return XDP_PASS;
	bpf_loop(9, count_cb, &c, 0);
	if (c.n >= 4)
		return XDP_PASS;
	return v[c.n] ? XDP_DROP : XDP_PASS;
}

static int step_cb(__u32 i, struct counter *c)
{
	if (c->n < 3)
		c->n++;
	return 0;
}

// expect: accept
SEC("xdp") int ok_callback_keeps_bound(struct xdp_md *ctx)
{
	/* The callback keeps n below 4 on every call; the caller indexes
	 * without a check of its own. */
	struct counter c = { .n = 0 };
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&table, &k);
	if (!v)
		return XDP_PASS;
	bpf_loop(9, step_cb, &c, 0);
	return v[c.n & 3] ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
