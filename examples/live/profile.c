// Live-events example: a sampling profiler. On every cpu-clock sample of
// the target process (all processes when target_pid is 0) it counts the
// (pid, user stack, kernel stack) seen, with the stacks in a stack-trace
// map, as libbpf-tools' profile does.
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct key {
	__u32 pid;
	__s32 user_stack;
	__s32 kernel_stack;
};

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct key);
	__type(value, __u64);
} samples SEC(".maps");

const volatile __u32 target_pid = 0;

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (target_pid && pid != target_pid)
		return 0;
	struct key k = {
		.pid = pid,
		.user_stack = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK),
		.kernel_stack = bpf_get_stackid(ctx, &stacks, 0),
	};
	__u64 one = 1, *n = bpf_map_lookup_elem(&samples, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&samples, &k, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
