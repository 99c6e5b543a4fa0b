// One handler written three ways for one event, as tools that run on many
// kernels carry it: tp_btf (BTF-typed, cheapest), raw_tp, and the classic
// tracepoint. `oxbpf attach --auto` loads only the best one this kernel
// supports; without --auto all three attach and each counts every exec.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, u32);   // 0 tp_btf, 1 raw_tp, 2 tracepoint
	__type(value, u64); // execs seen
} hits SEC(".maps");

static __always_inline void hit(u32 slot)
{
	u64 *n = bpf_map_lookup_elem(&hits, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	hit(0);
	return 0;
}

SEC("raw_tp/sched_process_exec")
int BPF_PROG(exec_raw, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	hit(1);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int exec_tp(void *ctx)
{
	hit(2);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
