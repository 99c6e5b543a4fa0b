// Live-events example: bpf_perf_event_output through a perf event array.
// Every getppid(2) call becomes a record {pid, seq}; with `burst` set, each
// call writes that many records (to flood the rings and count losses).
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct sample {
	__u32 pid;
	__u32 seq;
};

struct sample *unused_sample __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} written SEC(".maps");

const volatile __u32 target_tgid = 0;
const volatile __u32 burst = 1;

SEC("tracepoint/syscalls/sys_enter_getppid")
int emit(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	if (target_tgid && tgid != target_tgid)
		return 0;
	__u64 *n = bpf_map_lookup_elem(&written, &zero);
	if (!n)
		return 0;
	for (__u32 i = 0; i < burst && i < 64; i++) {
		struct sample s = { .pid = tgid, .seq = (__u32)*n };
		if (bpf_perf_event_output(ctx, &samples, BPF_F_CURRENT_CPU, &s, sizeof(s)) == 0)
			__sync_fetch_and_add(n, 1);
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
