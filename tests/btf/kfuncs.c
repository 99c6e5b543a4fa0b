// kfuncs as libbpf users call them: references acquired and released,
// trust (RCU, trusted, untrusted), RCU read sections, casts, program-type
// availability. Names give the kernel's verdict (ok_ accepted, bad_
// rejected), checked against oxbpf's verifier and the running kernel by
// crates/oxbpf/tests/typed_pointers.rs. Rebuild: make -C tests/btf
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
char LICENSE[] SEC("license") = "GPL";
extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;
extern struct bpf_cpumask *bpf_cpumask_create(void) __ksym;
extern void bpf_cpumask_release(struct bpf_cpumask *cpumask) __ksym;
extern void bpf_cpumask_set_cpu(u32 cpu, struct bpf_cpumask *cpumask) __ksym;
extern u32 bpf_cpumask_first(const struct cpumask *cpumask) __ksym;
extern void *bpf_rdonly_cast(const void *obj__ign, u32 btf_id__k) __ksym;
extern void *bpf_cast_to_kern_ctx(void *) __ksym;
extern struct cgroup *bpf_cgroup_from_id(u64 cgid) __ksym;
extern void bpf_cgroup_release(struct cgroup *cgrp) __ksym;
extern long bpf_task_under_cgroup(struct task_struct *task, struct cgroup *ancestor) __ksym;
extern int bpf_strlen(const char *s__ign) __ksym;
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, u32); __type(value, u64);} m SEC(".maps");
static __always_inline void put(u32 k, u64 v) { bpf_map_update_elem(&m, &k, &v, 0); }

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_acquire, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	if (!t) return 0;
	put(t->pid, 0);
	bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_leak, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	if (!t) return 0;
	put(t->pid, 0);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_release_unacquired, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	bpf_task_release(next);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_double_release, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	if (!t) return 0;
	bpf_task_release(t);
	bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_use_after_release, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	if (!t) return 0;
	bpf_task_release(t);
	put(t->pid, 0);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_unchecked_acquire, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	put(t->pid, 0);
	bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_rcu_arg, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next->real_parent);
	if (t) bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_untrusted_arg, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next->parent);
	if (t) bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_wrong_type_arg, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire((void *)next->mm);
	if (t) bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_rcu_lock, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	bpf_rcu_read_lock();
	put(next->real_parent->pid, 0);
	bpf_rcu_read_unlock();
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_rcu_unlock_missing, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	bpf_rcu_read_lock();
	put(next->pid, 0);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_rcu_unlock_unmatched, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	bpf_rcu_read_unlock();
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_cpumask, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct bpf_cpumask *c = bpf_cpumask_create();
	if (!c) return 0;
	bpf_cpumask_set_cpu(0, c);
	put(bpf_cpumask_first((const struct cpumask *)c), 0);
	bpf_cpumask_release(c);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_from_pid, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_from_pid(1);
	if (!t) return 0;
	put(t->tgid, 0);
	bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_rdonly_cast, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_rdonly_cast((void *)ctx[1], bpf_core_type_id_kernel(struct task_struct));
	put(t->pid, t->real_parent->pid);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_rdonly_cast_write, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_rdonly_cast((void *)ctx[1], bpf_core_type_id_kernel(struct task_struct));
	t->pid = 1;
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_cgroup, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct cgroup *c = bpf_cgroup_from_id(1);
	if (!c) return 0;
	put(bpf_task_under_cgroup(next, c), 0);
	bpf_cgroup_release(c);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_strlen, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(bpf_strlen(next->comm), 0);
	return 0;
}
SEC("kprobe/do_nanosleep")
int bad_kprobe_acquire(struct pt_regs *ctx)
{
	struct task_struct *t = bpf_task_acquire(bpf_get_current_task_btf());
	if (t) bpf_task_release(t);
	return 0;
}
SEC("tc")
int ok_kern_ctx(struct __sk_buff *skb)
{
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	return k->len > 100;
}
SEC("socket")
int bad_socket_acquire(struct __sk_buff *skb)
{
	struct task_struct *t = bpf_task_acquire(bpf_get_current_task_btf());
	if (t) bpf_task_release(t);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_rcu_nested, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_lock();
	put(next->pid, 0);
	bpf_rcu_read_unlock();
	bpf_rcu_read_unlock();
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_rcu_pointer_after_unlock, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *p;
	bpf_rcu_read_lock();
	p = next->real_parent;
	bpf_rcu_read_unlock();
	p = bpf_task_acquire(p);
	if (p)
		bpf_task_release(p);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_release_field, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	if (!t) return 0;
	bpf_task_release(t->real_parent);
	bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_cpumask_leak, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct bpf_cpumask *c = bpf_cpumask_create();
	if (c)
		bpf_cpumask_set_cpu(0, c);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_acquire_in_branch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	if (preempt && t) {
		bpf_task_release(t);
		return 1;
	}
	if (t)
		bpf_task_release(t);
	return 0;
}
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_acquire_released_on_one_arm, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct *t = bpf_task_acquire(next);
	if (!t)
		return 0;
	if (preempt)
		bpf_task_release(t);
	return 0;
}
// Generic kfuncs in the program types Linux 6.18 registers them for
// (tracepoints, perf events, cgroup programs…) but not raw tracepoints.
SEC("tp/syscalls/sys_enter_getpid")
int ok_tracepoint_from_pid(void *ctx)
{
	struct task_struct *t = bpf_task_from_pid(1);
	if (t) bpf_task_release(t);
	return 0;
}
SEC("cgroup/connect4")
int ok_cgroup_from_pid(struct bpf_sock_addr *ctx)
{
	struct task_struct *t = bpf_task_from_pid(1);
	if (t) bpf_task_release(t);
	return 1;
}
SEC("raw_tp/sched_switch")
int bad_raw_tp_from_pid(void *ctx)
{
	struct task_struct *t = bpf_task_from_pid(1);
	if (t) bpf_task_release(t);
	return 0;
}
// bpf_ksym_exists: a kfunc's address, tested before the call (as
// libbpf-tools' sigsnoop does).
extern struct task_struct *bpf_task_from_vpid(s32 vpid) __ksym __weak;
#ifndef bpf_ksym_exists
#define bpf_ksym_exists(sym) ({ _Static_assert(!__builtin_constant_p(!!sym), #sym " should be marked as __weak"); !!sym; })
#endif
SEC("tp/syscalls/sys_enter_getpid")
int ok_ksym_exists(void *ctx)
{
	struct task_struct *t;
	if (!bpf_ksym_exists(bpf_task_from_vpid))
		return 0;
	t = bpf_task_from_vpid(1);
	if (t) bpf_task_release(t);
	return 0;
}
