// Live-events example: a per-CPU hash, which map dumps show per CPU and
// summed. Counts getppid(2) calls and the CPUs they ran on per process.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct tally {
	__u64 calls;
	__u32 last_cpu;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct tally);
} per_cpu_calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int tally_getppid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct tally zero = {}, *t = bpf_map_lookup_elem(&per_cpu_calls, &tgid);
	if (!t) {
		bpf_map_update_elem(&per_cpu_calls, &tgid, &zero, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&per_cpu_calls, &tgid);
		if (!t)
			return 0;
	}
	t->calls++;
	t->last_cpu = bpf_get_smp_processor_id();
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
