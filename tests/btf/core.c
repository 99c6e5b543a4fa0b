// CO-RE relocations of every kind against the running kernel: flavored
// local types (`task_struct___mine`) laid out unlike the kernel's, a field
// and a type the kernel lacks, enumerators, a bitfield. `relos_logged`
// ends in a deliberate rejection so that the kernel's verifier log (which
// lists each relocation it applied) can be compared with oxbpf's.
// Rebuild: make -C tests/btf
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct task_struct___mine {
	int pid;
	int tgid;
	struct task_struct___mine *real_parent;
	int no_such_field;
} __attribute__((preserve_access_index));

enum bpf_func_id___mine { BPF_FUNC_loop___mine = 1, BPF_FUNC_no_such___mine = 2 };
struct no_such_type___mine { int a; };

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} out SEC(".maps");

static __always_inline void put(u32 k, u64 v)
{
	bpf_map_update_elem(&out, &k, &v, 0);
}

static __always_inline void relocated(struct task_struct *next)
{
	struct task_struct___mine *t = (void *)next;
	put(0, t->pid + t->real_parent->tgid);
	put(1, bpf_core_field_exists(t->no_such_field));
	put(2, bpf_core_field_size(t->tgid));
	put(3, bpf_core_type_exists(struct no_such_type___mine));
	put(4, bpf_core_type_size(struct task_struct));
	put(5, bpf_core_enum_value_exists(enum bpf_func_id___mine, BPF_FUNC_loop___mine));
	put(6, bpf_core_enum_value(enum bpf_func_id___mine, BPF_FUNC_loop___mine));
	put(7, bpf_core_enum_value_exists(enum bpf_func_id___mine, BPF_FUNC_no_such___mine));
	put(8, BPF_CORE_READ_BITFIELD(next, in_execve));
	put(9, __builtin_preserve_field_info(t->pid, BPF_FIELD_SIGNED));
	put(10, bpf_core_type_id_kernel(struct task_struct));
	// Guarded by its existence check: the poisoned load is dead code.
	if (bpf_core_field_exists(t->no_such_field))
		put(11, t->no_such_field);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_relocated, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	relocated(next);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(relos_logged, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	relocated(next);
	asm volatile("r0 = *(u64 *)(r10 + 8)" ::: "r0");
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_missing_field, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct___mine *t = (void *)next;
	put(0, t->no_such_field);
	return 0;
}
