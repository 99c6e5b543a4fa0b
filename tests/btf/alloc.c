// Objects a program allocates (bpf_obj_new/bpf_obj_drop, as
// bpf_experimental.h defines them): a reference to plain program memory,
// freed on every path. Names give the kernel's verdict (ok_ accepted, bad_
// rejected), checked against oxbpf's verifier and the running kernel by
// crates/oxbpf/tests/typed_pointers.rs. Rebuild: make -C tests/btf
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
char LICENSE[] SEC("license") = "GPL";

extern void *bpf_obj_new_impl(__u64 local_type_id__k, void *meta__ign) __ksym;
extern void bpf_obj_drop_impl(void *p__alloc, void *meta__ign) __ksym;
#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
#define bpf_obj_drop(p) bpf_obj_drop_impl(p, NULL)

struct item {
	u64 key;
	u64 hits;
	char name[16];
};

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, u32); __type(value, u64);} m SEC(".maps");
static __always_inline void put(u32 k, u64 v) { bpf_map_update_elem(&m, &k, &v, 0); }

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_new_drop, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item *it = bpf_obj_new(struct item);
	if (!it)
		return 0;
	it->key = next->pid;
	it->hits = 1;
	it->name[15] = 0;
	put(0, it->key + it->hits);
	bpf_obj_drop(it);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_leak, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item *it = bpf_obj_new(struct item);
	if (!it)
		return 0;
	it->key = 1;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_unchecked, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item *it = bpf_obj_new(struct item);
	it->key = 1;
	bpf_obj_drop(it);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_use_after_drop, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item *it = bpf_obj_new(struct item);
	if (!it)
		return 0;
	bpf_obj_drop(it);
	put(1, it->key);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_double_drop, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item *it = bpf_obj_new(struct item);
	if (!it)
		return 0;
	bpf_obj_drop(it);
	bpf_obj_drop(it);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_beyond, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item *it = bpf_obj_new(struct item);
	if (!it)
		return 0;
	((u64 *)it)[4] = 1;
	bpf_obj_drop(it);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_drop_inside, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item *it = bpf_obj_new(struct item);
	if (!it)
		return 0;
	bpf_obj_drop(&it->hits);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_drop_stack, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct item local = {};
	bpf_obj_drop(&local);
	return 0;
}
