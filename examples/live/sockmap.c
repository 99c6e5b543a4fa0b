// sk_msg and sk_skb programs on a sockmap: the sockets user space puts in
// `socks` have their sendmsg() data seen by count_msg and what they
// receive judged by count_skb (both pass everything and count it).
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);   // 0 messages, 1 message bytes, 2 skbs, 3 skb bytes
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void add(__u32 slot, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &slot);

	if (v)
		__sync_fetch_and_add(v, n);
}

SEC("sk_msg")
int count_msg(struct sk_msg_md *msg)
{
	add(0, 1);
	add(1, msg->size);
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int count_skb(struct __sk_buff *skb)
{
	add(2, 1);
	add(3, skb->len);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
