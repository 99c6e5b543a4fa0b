/* Packet pointers die with every helper that may move or resize the
 * packet: the XDP and skb adjusters, stores and checksum rewrites, tail
 * calls, and global functions that do any of these. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

#define PKT_START(ctx, T)                                                              \
	void *data = (void *)(long)(ctx)->data, *end = (void *)(long)(ctx)->data_end; \
	if (data + 64 > end)                                                           \
		return 0

// expect: reject invalid mem access 'scalar' (it was a packet pointer, invalidated by insn | kernel: invalid mem access 'scalar'
SEC("xdp") int xdp_after_adjust_head(struct xdp_md *ctx)
{
	PKT_START(ctx, xdp);
	if (bpf_xdp_adjust_head(ctx, 14))
		return XDP_DROP;
	return ((volatile __u8 *)data)[20];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("xdp") int xdp_after_adjust_tail(struct xdp_md *ctx)
{
	PKT_START(ctx, xdp);
	bpf_xdp_adjust_tail(ctx, -40);
	return ((volatile __u8 *)data)[60];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("xdp") int xdp_after_adjust_meta(struct xdp_md *ctx)
{
	PKT_START(ctx, xdp);
	bpf_xdp_adjust_meta(ctx, -4);
	return ((volatile __u8 *)data)[1];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("xdp") int spilled_pointer_after_adjust_head(struct xdp_md *ctx)
{
	__u8 *volatile spill;
	PKT_START(ctx, xdp);
	spill = data;
	bpf_xdp_adjust_head(ctx, 14);
	return spill[10];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_pull_data(struct __sk_buff *skb)
{
	PKT_START(skb, tc);
	bpf_skb_pull_data(skb, 64);
	return ((volatile __u8 *)data)[12];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_change_tail(struct __sk_buff *skb)
{
	PKT_START(skb, tc);
	bpf_skb_change_tail(skb, 60, 0);
	return ((volatile __u8 *)data)[12];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_store_bytes(struct __sk_buff *skb)
{
	__u32 v = 0;
	PKT_START(skb, tc);
	bpf_skb_store_bytes(skb, 0, &v, 4, 0);
	return ((volatile __u8 *)data)[12];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_l3_csum_replace(struct __sk_buff *skb)
{
	PKT_START(skb, tc);
	bpf_l3_csum_replace(skb, 24, 0, 1, 2);
	return ((volatile __u8 *)data)[12];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_l4_csum_replace(struct __sk_buff *skb)
{
	PKT_START(skb, tc);
	bpf_l4_csum_replace(skb, 50, 0, 1, 2);
	return ((volatile __u8 *)data)[12];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_vlan_push(struct __sk_buff *skb)
{
	PKT_START(skb, tc);
	bpf_skb_vlan_push(skb, 0x8100, 7);
	return ((volatile __u8 *)data)[12];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_adjust_room(struct __sk_buff *skb)
{
	PKT_START(skb, tc);
	bpf_skb_adjust_room(skb, 4, BPF_ADJ_ROOM_NET, 0);
	return ((volatile __u8 *)data)[12];
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int tc_after_change_proto(struct __sk_buff *skb)
{
	PKT_START(skb, tc);
	bpf_skb_change_proto(skb, 0x86dd, 0);
	return ((volatile __u8 *)data)[12];
}

// expect: accept
SEC("tc") int ok_after_failed_tail_call(struct __sk_buff *skb)
{
	/* A tail call that returns failed: the packet is unchanged. */
	PKT_START(skb, tc);
	bpf_tail_call(skb, &jumps, 0);
	return ((volatile __u8 *)data)[12];
}

static __noinline int static_tail_call(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jumps, 0);
	return 0;
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("tc") int after_subprog_tail_call(struct __sk_buff *skb)
{
	/* A tail call from a subprogram returns to this caller from another
	 * program, which may have changed the packet. */
	PKT_START(skb, tc);
	static_tail_call(skb);
	return ((volatile __u8 *)data)[12];
}

__noinline int global_shrink(struct xdp_md *ctx)
{
	return bpf_xdp_adjust_head(ctx, 14);
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("xdp") int after_global_that_adjusts(struct xdp_md *ctx)
{
	PKT_START(ctx, xdp);
	if (global_shrink(ctx))
		return XDP_DROP;
	return ((volatile __u8 *)data)[20];
}

static __noinline int static_shrink(struct xdp_md *ctx)
{
	return bpf_xdp_adjust_head(ctx, 14);
}

// expect: reject invalid mem access 'scalar' (it was a packet pointer | kernel: invalid mem access 'scalar'
SEC("xdp") int after_static_that_adjusts(struct xdp_md *ctx)
{
	PKT_START(ctx, xdp);
	if (static_shrink(ctx))
		return XDP_DROP;
	return ((volatile __u8 *)data)[20];
}

// expect: accept
SEC("xdp") int ok_reload_after_adjust_head(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_head(ctx, 14))
		return XDP_DROP;
	PKT_START(ctx, xdp);
	return ((volatile __u8 *)data)[20] ? XDP_PASS : XDP_DROP;
}

__noinline int global_reads(struct xdp_md *ctx)
{
	return ctx->ingress_ifindex;
}

// expect: accept
SEC("xdp") int ok_pointer_across_pure_global(struct xdp_md *ctx)
{
	PKT_START(ctx, xdp);
	if (global_reads(ctx) == 7)
		return XDP_DROP;
	return ((volatile __u8 *)data)[20] ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
