/* Global data (.data, .rodata, .bss) and bpf_loop: sums the first bytes of
 * each packet with a callback and keeps running totals in globals. */
#include "common.h"

const volatile __u32 bytes_to_sum = 16; /* .rodata: a load-time constant */
__u64 packets_seen = 0;                  /* .bss */
__u64 checksum_total = 1000;             /* .data */

struct sum_ctx {
	__u8 buf[16];
	__u32 len;
	__u64 sum;
};

static long add_byte(__u32 index, void *c)
{
	struct sum_ctx *s = c;
	if (index >= s->len)
		return 1; /* stop */
	s->sum += s->buf[index & 15];
	return 0;
}

SEC("xdp")
int sum_bytes(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct sum_ctx s = {};
	if (data + sizeof(s.buf) <= data_end) {
		__builtin_memcpy(s.buf, data, sizeof(s.buf));
		s.len = bytes_to_sum < sizeof(s.buf) ? bytes_to_sum : sizeof(s.buf);
	}
	bpf_loop(s.len, add_byte, &s, 0);
	__sync_fetch_and_add(&packets_seen, 1);
	__sync_fetch_and_add(&checksum_total, s.sum);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
