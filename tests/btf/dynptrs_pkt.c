// Dynptrs over packets (bpf_dynptr_from_skb, bpf_dynptr_from_xdp): slices
// of the packet that die when a helper may change it, writable where the
// program type may write packet data. Names give the kernel's verdict
// (ok_ accepted, bad_ rejected), checked against oxbpf's verifier and the
// running kernel by crates/oxbpf/tests/typed_pointers.rs.
// Rebuild: make -C tests/btf
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

extern int bpf_dynptr_from_skb(struct __sk_buff *s, u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_dynptr_from_xdp(struct xdp_md *x, u64 flags, struct bpf_dynptr *ptr__uninit) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, u32 offset, void *buffer__opt, u32 buffer__szk) __ksym;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *p, u32 offset, void *buffer__opt, u32 buffer__szk) __ksym;

SEC("tc")
int ok_tc_parse(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	struct ethhdr buf, *eth;
	if (bpf_dynptr_from_skb(skb, 0, &d))
		return 0;
	eth = bpf_dynptr_slice(&d, 0, &buf, sizeof(buf));
	if (!eth)
		return 0;
	return eth->h_proto == 8 ? 1 : 0;
}

SEC("xdp")
int ok_xdp_read(struct xdp_md *ctx)
{
	struct bpf_dynptr d;
	u32 word = 0;
	bpf_dynptr_from_xdp(ctx, 0, &d);
	bpf_dynptr_read(&word, sizeof(word), &d, 0, 0);
	return word ? XDP_PASS : XDP_DROP;
}

// A socket filter may not write the packet: the slice is read-only.
// (The reference kernel refuses bpf_dynptr_slice_rdwr in every program
// type, "bpf_dynptr_slice_rdwr() is not allowed", with EPERM; oxbpf
// follows the kernel's source and allows it where the program type may
// write packet data, tc and xdp.)
SEC("socket")
int bad_socket_write(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	struct ethhdr *eth;
	bpf_dynptr_from_skb(skb, 0, &d);
	eth = bpf_dynptr_slice_rdwr(&d, 0, NULL, sizeof(*eth));
	if (eth)
		eth->h_proto = 0;
	return 0;
}

// A slice is packet data: a helper that may change the packet ends it.
SEC("tc")
int bad_slice_after_change(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	struct ethhdr *eth;
	bpf_dynptr_from_skb(skb, 0, &d);
	eth = bpf_dynptr_slice(&d, 0, NULL, sizeof(*eth));
	if (!eth)
		return 0;
	bpf_skb_pull_data(skb, 64);
	return eth->h_proto;
}

// So does a write through the dynptr.
SEC("tc")
int bad_slice_after_write(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	struct ethhdr *eth;
	u16 zero = 0;
	bpf_dynptr_from_skb(skb, 0, &d);
	eth = bpf_dynptr_slice(&d, 0, NULL, sizeof(*eth));
	if (!eth)
		return 0;
	bpf_dynptr_write(&d, 12, &zero, sizeof(zero), 0);
	return eth->h_proto;
}

SEC("xdp")
int bad_xdp_beyond_slice(struct xdp_md *ctx)
{
	struct bpf_dynptr d;
	u8 *p;
	bpf_dynptr_from_xdp(ctx, 0, &d);
	p = bpf_dynptr_slice(&d, 0, NULL, 4);
	if (!p)
		return XDP_PASS;
	return p[4];
}

// The context itself, not a pointer into it.
SEC("tc")
int bad_not_ctx(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	u64 buf[4] = {};
	bpf_dynptr_from_skb((struct __sk_buff *)buf, 0, &d);
	return 0;
}

SEC("socket")
int ok_socket_read(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	u8 b = 0;
	bpf_dynptr_from_skb(skb, 0, &d);
	bpf_dynptr_read(&b, 1, &d, 0, 0);
	return b;
}

SEC("cgroup_skb/ingress")
int ok_cgroup_data(struct __sk_buff *skb)
{
	struct bpf_dynptr d;
	u8 *p;
	bpf_dynptr_from_skb(skb, 0, &d);
	p = bpf_dynptr_data(&d, 0, 4);
	return p && p[0] == 0x45;
}

// Not for xdp programs: bpf_dynptr_from_skb is in the skb kfunc set.
SEC("xdp")
int bad_skb_in_xdp(struct xdp_md *ctx)
{
	struct bpf_dynptr d;
	bpf_dynptr_from_skb((struct __sk_buff *)ctx, 0, &d);
	return XDP_PASS;
}
