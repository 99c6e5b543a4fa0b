/* Emits one event per IPv4 packet through a ring buffer (reserve/submit),
 * and reports a trace_printk line for ICMP. */
#include "common.h"

struct event {
	__u32 saddr;
	__u32 daddr;
	__u16 len;
	__u8 proto;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int emit_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = parse_ipv4(data, data_end);
	if (!ip)
		return XDP_PASS;
	if (ip->protocol == IPPROTO_ICMP)
		bpf_printk("icmp from %x", bpf_ntohl(ip->saddr));
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return XDP_PASS;
	e->saddr = ip->saddr;
	e->daddr = ip->daddr;
	e->len = data_end - data;
	e->proto = ip->protocol;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
