// Live-events example written the way libbpf users write tracing tools:
// vmlinux.h (bpftool btf dump file /sys/kernel/btf/vmlinux format c), a
// BTF-typed tracepoint with typed arguments, CO-RE reads, a rodata filter
// set before load.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

struct exec_event {
	u32 pid;
	u32 old_pid;
	char comm[16];
	char filename[64];
};

struct exec_event *unused_exec_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} execs SEC(".maps");

// Report only processes whose pid is at least this (0: all).
const volatile u32 min_pid = 0;

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	u32 pid = BPF_CORE_READ(p, tgid);
	if (pid < min_pid)
		return 0;
	struct exec_event *e = bpf_ringbuf_reserve(&execs, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = pid;
	e->old_pid = old_pid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
