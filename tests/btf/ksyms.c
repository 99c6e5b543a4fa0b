// __ksym externs: per-CPU kernel variables read through bpf_this_cpu_ptr
// and bpf_per_cpu_ptr, as libbpf users write them. Names give the kernel's
// verdict (ok_ accepted, bad_ rejected), checked against oxbpf's verifier
// and the running kernel by crates/oxbpf/tests/typed_pointers.rs.
// Rebuild: make -C tests/btf
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
char LICENSE[] SEC("license") = "GPL";

extern const struct rq runqueues __ksym;
extern const int bpf_prog_active __ksym;

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, u32); __type(value, u64);} m SEC(".maps");
static __always_inline void put(u32 k, u64 v) { bpf_map_update_elem(&m, &k, &v, 0); }

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_this_cpu, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);
	put(0, rq->nr_running);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_per_cpu, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct rq *rq = bpf_per_cpu_ptr(&runqueues, 0);
	if (rq)
		put(1, rq->nr_running);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_int_var, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	const int *active = bpf_this_cpu_ptr(&bpf_prog_active);
	put(2, *active);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_per_cpu_unchecked, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct rq *rq = bpf_per_cpu_ptr(&runqueues, 0);
	put(3, rq->nr_running);
	return 0;
}

// A per-CPU address is not readable as it is.
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_direct_read, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(4, runqueues.nr_running);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_int_write, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	int *active = (int *)bpf_this_cpu_ptr(&bpf_prog_active);
	*active = 0;
	return 0;
}

// bpf_this_cpu_ptr takes a per-CPU variable, not any pointer.
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_not_percpu, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_this_cpu_ptr(next);
	put(5, t->pid);
	return 0;
}
