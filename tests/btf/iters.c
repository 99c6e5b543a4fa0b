// Open-coded iterators as libbpf users write them (bpf_for, bpf_repeat,
// bpf_for_each over bpf_iter_num, bpf_iter_bits, bpf_iter_task): loops
// the kernel proves without unrolling them, and the misuses it rejects.
// Names give the kernel's verdict (ok_ accepted, bad_ rejected), checked
// against oxbpf's verifier and the running kernel by
// crates/oxbpf/tests/typed_pointers.rs. Rebuild: make -C tests/btf
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
char LICENSE[] SEC("license") = "GPL";

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;
extern int bpf_iter_bits_new(struct bpf_iter_bits *it, const u64 *unsafe_ptr__ign, u32 nr_words) __ksym;
extern int *bpf_iter_bits_next(struct bpf_iter_bits *it) __ksym;
extern void bpf_iter_bits_destroy(struct bpf_iter_bits *it) __ksym;
extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task__nullable, unsigned int flags) __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __ksym;

// libbpf's bpf_for and bpf_repeat (bpf_helpers.h of libbpf 1.2 and later).
#define bpf_for(i, start, end) for (						\
	struct bpf_iter_num ___it __attribute__((aligned(8),			\
				cleanup(bpf_iter_num_destroy))),		\
	*___p __attribute__((unused)) = (					\
		bpf_iter_num_new(&___it, (start), (end)),			\
		(void)bpf_iter_num_destroy, (void *)0);				\
	({									\
		int *___t = bpf_iter_num_next(&___it);				\
		(___t && ((i) = *___t, (i) >= (start) && (i) < (end)));		\
	});									\
	)
#define bpf_repeat(n) for (							\
	struct bpf_iter_num ___it __attribute__((aligned(8),			\
				cleanup(bpf_iter_num_destroy))),		\
	*___p __attribute__((unused)) = (					\
		bpf_iter_num_new(&___it, 0, (n)),				\
		(void)bpf_iter_num_destroy, (void *)0);				\
	bpf_iter_num_next(&___it);						\
	)

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, u64[64]);} arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, u32); __type(value, u64);} m SEC(".maps");
static __always_inline void put(u32 k, u64 v) { bpf_map_update_elem(&m, &k, &v, 0); }
static __always_inline u64 *slots(void) { u32 z = 0; return bpf_map_lookup_elem(&arr, &z); }

// A million iterations, a sum that changes every time: converges.
SEC("tp/syscalls/sys_enter_getpid")
int ok_num_sum(void *ctx)
{
	u64 sum = 0;
	int i;
	bpf_for(i, 0, 1000000)
		sum += i;
	put(0, sum);
	return 0;
}

// The element indexes an array after the bounds check bpf_for makes.
SEC("tp/syscalls/sys_enter_getpid")
int ok_num_index(void *ctx)
{
	u64 *v = slots();
	int i;
	if (!v)
		return 0;
	bpf_for(i, 0, 64)
		v[i] += i;
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int ok_repeat(void *ctx)
{
	u64 n = 0;
	bpf_repeat(1000)
		n += bpf_get_prandom_u32() & 1;
	put(1, n);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int ok_nested(void *ctx)
{
	u64 *v = slots();
	int i, j;
	if (!v)
		return 0;
	bpf_for(i, 0, 8)
		bpf_for(j, 0, 8)
			v[(i * 8 + j) & 63] += 1;
	return 0;
}

// A counter the loop needs exactly (it indexes) is never widened, and
// the iterator has no bound the verifier knows: the iterations never meet
// and the kernel gives up (too complex), as oxbpf does.
SEC("tp/syscalls/sys_enter_getpid")
int bad_precise_counter(void *ctx)
{
	u64 *v = slots();
	u32 k = 0;
	int i;
	if (!v)
		return 0;
	bpf_for(i, 0, 100) {
		if (k < 64)
			v[k] = i;
		k++;
	}
	return 0;
}

// Hand-written, with an early break and the iterator destroyed on both ways.
SEC("tp/syscalls/sys_enter_getpid")
int ok_manual_break(void *ctx)
{
	struct bpf_iter_num it;
	int *p, n = 0;
	bpf_iter_num_new(&it, 0, 1 << 20);
	while ((p = bpf_iter_num_next(&it))) {
		if (*p == (int)(bpf_get_prandom_u32() & 0xffff))
			break;
		n++;
	}
	bpf_iter_num_destroy(&it);
	put(2, n);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int ok_bits(void *ctx)
{
	struct bpf_iter_bits it;
	u64 mask = bpf_get_prandom_u32();
	u64 bits = 0;
	int *b;
	bpf_iter_bits_new(&it, &mask, 1);
	while ((b = bpf_iter_bits_next(&it)))
		bits |= 1ULL << (*b & 63);
	bpf_iter_bits_destroy(&it);
	put(3, bits);
	return 0;
}

// Every task on the system, through a trusted pointer per element.
SEC("tp_btf/sched_switch")
int BPF_PROG(ok_tasks, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct bpf_iter_task it;
	struct task_struct *t;
	u64 n = 0;
	bpf_iter_task_new(&it, NULL, 0 /* BPF_TASK_ITER_ALL_PROCS */);
	while ((t = bpf_iter_task_next(&it)))
		n += t->pid == next->pid;
	bpf_iter_task_destroy(&it);
	put(4, n);
	return 0;
}

// Never destroyed: the iterator's reference leaks.
SEC("tp/syscalls/sys_enter_getpid")
int bad_leak(void *ctx)
{
	struct bpf_iter_num it;
	int *p, n = 0;
	bpf_iter_num_new(&it, 0, 10);
	while ((p = bpf_iter_num_next(&it)))
		n += *p;
	put(5, n);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_next_uninit(void *ctx)
{
	struct bpf_iter_num it;
	int *p = bpf_iter_num_next(&it);
	put(6, p ? *p : 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_double_new(void *ctx)
{
	struct bpf_iter_num it;
	bpf_iter_num_new(&it, 0, 10);
	bpf_iter_num_new(&it, 0, 10);
	bpf_iter_num_destroy(&it);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_destroy_twice(void *ctx)
{
	struct bpf_iter_num it;
	bpf_iter_num_new(&it, 0, 10);
	bpf_iter_num_destroy(&it);
	bpf_iter_num_destroy(&it);
	return 0;
}

// The iterator's bytes are not data.
SEC("tp/syscalls/sys_enter_getpid")
int bad_read_state(void *ctx)
{
	struct bpf_iter_num it;
	bpf_iter_num_new(&it, 0, 10);
	put(7, *(volatile u64 *)&it);
	bpf_iter_num_destroy(&it);
	return 0;
}

// A store over the iterator ends it: destroying it then fails.
SEC("tp/syscalls/sys_enter_getpid")
int bad_overwrite(void *ctx)
{
	struct bpf_iter_num it;
	bpf_iter_num_new(&it, 0, 10);
	*(volatile u64 *)&it = 0;
	bpf_iter_num_destroy(&it);
	return 0;
}

// The element is any int: it must be bounded before it indexes.
SEC("tp/syscalls/sys_enter_getpid")
int bad_unchecked_index(void *ctx)
{
	struct bpf_iter_num it;
	u64 *v = slots();
	int *p;
	if (!v)
		return 0;
	bpf_iter_num_new(&it, 0, 64);
	while ((p = bpf_iter_num_next(&it)))
		v[*p] = 1;
	bpf_iter_num_destroy(&it);
	return 0;
}

// The element is read-only.
SEC("tp/syscalls/sys_enter_getpid")
int bad_element_write(void *ctx)
{
	struct bpf_iter_num it;
	int *p;
	bpf_iter_num_new(&it, 0, 10);
	while ((p = bpf_iter_num_next(&it)))
		*p = 0;
	bpf_iter_num_destroy(&it);
	return 0;
}

// The element dies with its iterator.
SEC("tp/syscalls/sys_enter_getpid")
int bad_element_after_destroy(void *ctx)
{
	struct bpf_iter_num it;
	int *p;
	bpf_iter_num_new(&it, 0, 10);
	p = bpf_iter_num_next(&it);
	bpf_iter_num_destroy(&it);
	if (p)
		put(8, *p);
	return 0;
}

// A counter widened by the loop (nothing in the loop needs it exact) is
// unknown after it: 100 iterations leave it at 100, past the array.
SEC("tp/syscalls/sys_enter_getpid")
int bad_counter_after_loop(void *ctx)
{
	u64 *v = slots();
	u32 k = 0;
	int i;
	if (!v)
		return 0;
	bpf_for(i, 0, 100)
		k++;
	if (k < 200)
		v[k] = 1;
	return 0;
}

// An iterator must be on the stack.
SEC("tp/syscalls/sys_enter_getpid")
int bad_iter_in_map(void *ctx)
{
	u64 *v = slots();
	if (!v)
		return 0;
	bpf_iter_num_new((struct bpf_iter_num *)v, 0, 10);
	bpf_iter_num_destroy((struct bpf_iter_num *)v);
	return 0;
}

// The element is a trusted task only while the iterator lives; after
// the loop the last one is gone (NULL: the loop ended because next did).
SEC("tp_btf/sched_switch")
int BPF_PROG(bad_task_after_loop, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct bpf_iter_task it;
	struct task_struct *t;
	bpf_iter_task_new(&it, NULL, 0);
	while ((t = bpf_iter_task_next(&it)))
		;
	bpf_iter_task_destroy(&it);
	put(9, t->pid);
	return 0;
}
