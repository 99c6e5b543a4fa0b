/* Global data (.data, .rodata, .bss) and bpf_loop: sums the first bytes of
 * each packet with a callback and keeps running totals in globals. */
#include "common.h"

const volatile __u32 bytes_to_sum = 16; /* .rodata: a load-time constant */
__u64 packets_seen = 0;                  /* .bss */
__u64 checksum_total = 1000;             /* .data */

struct sum_ctx {
	__u8 *data;
	__u8 *data_end;
	__u64 sum;
};

static long add_byte(__u32 index, void *c)
{
	struct sum_ctx *s = c;
	__u8 *p = s->data + index;
	if ((void *)(p + 1) > (void *)s->data_end)
		return 1; /* stop */
	s->sum += *p;
	return 0;
}

SEC("xdp")
int sum_bytes(struct xdp_md *ctx)
{
	struct sum_ctx s = {
		.data = (void *)(long)ctx->data,
		.data_end = (void *)(long)ctx->data_end,
		.sum = 0,
	};
	bpf_loop(bytes_to_sum, add_byte, &s, 0);
	__sync_fetch_and_add(&packets_seen, 1);
	__sync_fetch_and_add(&checksum_total, s.sum);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
