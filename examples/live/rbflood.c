// Live-events example and benchmark load: every getppid(2) of the target
// process writes `burst` 64-byte records into a ring buffer; records the
// ring has no room for are counted in `dropped`.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct record {
	__u64 seq;
	__u8 pad[56];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps"); // 0: written, 1: dropped

const volatile __u32 target_tgid = 0;
const volatile __u32 burst = 1;

SEC("tracepoint/syscalls/sys_enter_getppid")
int flood(void *ctx)
{
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__u32 k0 = 0, k1 = 1;
	__u64 *written = bpf_map_lookup_elem(&stats, &k0);
	__u64 *dropped = bpf_map_lookup_elem(&stats, &k1);
	if (!written || !dropped)
		return 0;
	for (__u32 i = 0; i < burst && i < 256; i++) {
		struct record *r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
		if (!r) {
			__sync_fetch_and_add(dropped, 1);
			continue;
		}
		r->seq = __sync_fetch_and_add(written, 1);
		bpf_ringbuf_submit(r, 0);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
