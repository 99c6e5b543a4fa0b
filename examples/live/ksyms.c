// `__ksym` externs as libbpf users write them: a typed per-CPU kernel
// variable (runqueues; weak, since the kernel resolves typed variables
// through kallsyms, which lists data only with CONFIG_KALLSYMS_ALL), a
// typeless one (_stext, by its address in
// /proc/kallsyms), kfuncs called by BTF id (bpf_task_acquire/release), and
// weak externs the kernel lacks, tested with bpf_ksym_exists (libbpf 1.3's
// macro, which Debian's libbpf 1.1 headers do not have yet).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) ({ \
	_Static_assert(!__builtin_constant_p(!!sym), #sym " should be marked as __weak"); \
	!!sym; \
})
#endif

extern const struct rq runqueues __ksym __weak;
extern const void _stext __ksym;
extern const int oxbpf_no_such_variable __ksym __weak;
extern const void oxbpf_no_such_symbol __ksym __weak;

extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym __weak;
extern void oxbpf_no_such_kfunc(void) __ksym __weak;

// What the program saw, read back by the test (and printed at exit by
// `oxbpf attach`).
u64 text_addr;
u32 has_runqueues;
u32 rq_cpu_matches;
u32 has_task_acquire;
u32 has_missing_kfunc;
u32 has_missing_variable;
u32 has_missing_symbol;
u32 acquired_pid;
u32 execs;

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec_ksyms, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	text_addr = (u64)&_stext;
	has_runqueues = bpf_ksym_exists(&runqueues);
	if (bpf_ksym_exists(&runqueues)) {
		struct rq *rq = bpf_this_cpu_ptr(&runqueues);
		rq_cpu_matches = rq->cpu == bpf_get_smp_processor_id();
	}
	has_task_acquire = bpf_ksym_exists(bpf_task_acquire);
	has_missing_kfunc = bpf_ksym_exists(oxbpf_no_such_kfunc);
	has_missing_variable = bpf_ksym_exists(&oxbpf_no_such_variable);
	has_missing_symbol = bpf_ksym_exists(&oxbpf_no_such_symbol);
	if (bpf_ksym_exists(oxbpf_no_such_kfunc))
		oxbpf_no_such_kfunc();
	if (bpf_ksym_exists(bpf_task_acquire)) {
		struct task_struct *t = bpf_task_acquire(p);
		if (t) {
			acquired_pid = t->tgid;
			bpf_task_release(t);
		}
	}
	__sync_fetch_and_add(&execs, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
