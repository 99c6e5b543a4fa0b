/* bpf_spin_lock: one lock at a time, no calls or exits while it is held,
 * unlock of the lock that is held, no direct access to the lock. */
#include "common.h"

/* The legacy packet load (BPF_LD_ABS), as LLVM's intrinsic. */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");

struct val {
	__u64 counter;
	struct bpf_spin_lock lock;
	__u64 other;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct val);
} locked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jumps SEC(".maps");

struct legacy_def {
	unsigned int type, key_size, value_size, max_entries, map_flags;
};

struct legacy_def nobtf SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = 4,
	.value_size = sizeof(struct val),
	.max_entries = 1,
};

static __always_inline struct val *get(__u32 k)
{
	return bpf_map_lookup_elem(&locked, &k);
}

// expect: reject BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region | kernel: BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region
SEC("tc") int exit_while_locked(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	if (v->counter > 10)
		return 1;
	v->counter++;
	bpf_spin_unlock(&v->lock);
	return 0;
}

// expect: reject function calls are not allowed while holding a lock | kernel: function calls are not allowed while holding a lock
SEC("tc") int helper_while_locked(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	v->counter = bpf_get_prandom_u32();
	bpf_spin_unlock(&v->lock);
	return 0;
}

// expect: reject function calls are not allowed while holding a lock | kernel: function calls are not allowed while holding a lock
SEC("tc") int lock_twice(struct __sk_buff *skb)
{
	struct val *a = get(0), *b = get(1);
	if (!a || !b)
		return 0;
	bpf_spin_lock(&a->lock);
	bpf_spin_lock(&b->lock);
	bpf_spin_unlock(&b->lock);
	bpf_spin_unlock(&a->lock);
	return 0;
}

// expect: reject bpf_spin_unlock without taking a lock | kernel: bpf_spin_unlock without taking a lock
SEC("tc") int unlock_unlocked(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_unlock(&v->lock);
	return 0;
}

// expect: reject bpf_spin_unlock of different lock | kernel: bpf_spin_unlock of different lock
SEC("tc") int unlock_other_lock(struct __sk_buff *skb)
{
	struct val *a = get(0), *b = get(1);
	if (!a || !b)
		return 0;
	bpf_spin_lock(&a->lock);
	a->counter++;
	bpf_spin_unlock(&b->lock);
	return 0;
}

// expect: reject bpf_spin_lock cannot be accessed directly by load/store | kernel: bpf_spin_lock cannot be accessed directly by load/store
SEC("tc") int read_lock_word(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	return *(volatile __u32 *)&v->lock;
}

// expect: reject bpf_spin_lock cannot be accessed directly by load/store | kernel: bpf_spin_lock cannot be accessed directly by load/store
SEC("tc") int write_lock_word(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	*(volatile __u32 *)&v->lock = 0;
	return 0;
}

// expect: reject doesn't point to 'struct bpf_spin_lock' that is at 8 | kernel: doesn't point to 'struct bpf_spin_lock' that is at 8
SEC("tc") int lock_wrong_field(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock((struct bpf_spin_lock *)&v->other);
	bpf_spin_unlock((struct bpf_spin_lock *)&v->other);
	return 0;
}

// expect: reject has to have BTF in order to use bpf_spin_lock | kernel: has to have BTF in order to use bpf_spin_lock
SEC("tc") int lock_without_btf(struct __sk_buff *skb)
{
	__u32 k = 0;
	struct val *v = bpf_map_lookup_elem(&nobtf, &k);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	bpf_spin_unlock(&v->lock);
	return 0;
}

// expect: reject function calls are not allowed while holding a lock | kernel: function calls are not allowed while holding a lock
SEC("tc") int tail_call_while_locked(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	bpf_tail_call(skb, &jumps, 0);
	bpf_spin_unlock(&v->lock);
	return 0;
}

__noinline int global_bump(struct val *v)
{
	if (!v)
		return 0;
	return v->counter + 1;
}

// expect: reject global function calls are not allowed while holding a lock | kernel: global function calls are not allowed while holding a lock
SEC("tc") int global_call_while_locked(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	v->counter = global_bump(v);
	bpf_spin_unlock(&v->lock);
	return 0;
}

// expect: reject socket filter progs cannot use bpf_spin_lock yet | kernel: socket filter progs cannot use bpf_spin_lock yet
SEC("socket") int socket_filter_lock_map(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	v->counter++;
	bpf_spin_unlock(&v->lock);
	return 0;
}

// expect: reject tracing progs cannot use bpf_spin_lock yet | kernel: tracing progs cannot use bpf_spin_lock yet
SEC("tracepoint/syscalls/sys_enter_getppid") int tracing_lock_map(void *ctx)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	return v->counter;
}

// expect: reject BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region | kernel: BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region
SEC("tc") int ld_abs_while_locked(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	v->counter = load_byte(skb, 0);
	bpf_spin_unlock(&v->lock);
	return 0;
}

// expect: accept
SEC("tc") int ok_locked_update(struct __sk_buff *skb)
{
	struct val *v = get(0);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	v->counter++;
	v->other = v->counter * 2;
	bpf_spin_unlock(&v->lock);
	return 0;
}

static __noinline void unlock_it(struct val *v)
{
	bpf_spin_unlock(&v->lock);
}

// expect: accept
SEC("tc") int ok_unlock_in_static_subprog(struct __sk_buff *skb)
{
	struct val *v = get(1);
	if (!v)
		return 0;
	bpf_spin_lock(&v->lock);
	v->counter++;
	unlock_it(v);
	return 0;
}

char _license[] SEC("license") = "GPL";
