/* Acquired references: ring buffer records must be submitted or discarded
 * exactly once on every path, and no copy may be used after that. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} progs SEC(".maps");

// expect: reject BPF_EXIT instruction in main prog would lead to reference leak | kernel: BPF_EXIT instruction in main prog would lead to reference leak
SEC("tracepoint/syscalls/sys_enter_getppid") int leak(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	*e = bpf_get_prandom_u32();
	if (*e & 1)
		return 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// expect: reject invalid mem access 'scalar' (it pointed to the reference acquired at insn | kernel: invalid mem access 'scalar'
SEC("tracepoint/syscalls/sys_enter_getppid") int use_after_submit(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	*e = 1;
	bpf_ringbuf_submit(e, 0);
	*e = 2;
	return 0;
}

// expect: reject invalid mem access 'scalar' (it pointed to the reference | kernel: invalid mem access 'scalar'
SEC("tracepoint/syscalls/sys_enter_getppid") int read_after_discard(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	*e = 1;
	bpf_ringbuf_discard(e, 0);
	sink = *e;
	return 0;
}

// expect: reject type=scalar expected=ringbuf_mem | kernel: type=scalar expected=ringbuf_mem
SEC("tracepoint/syscalls/sys_enter_getppid") int double_discard(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	bpf_ringbuf_discard(e, 0);
	bpf_ringbuf_discard(e, 0);
	return 0;
}

// expect: reject expected=ringbuf_mem | kernel: expected=ringbuf_mem
SEC("tracepoint/syscalls/sys_enter_getppid") int submit_on_both_paths(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	*e = bpf_get_prandom_u32();
	if (*e & 1)
		bpf_ringbuf_submit(e, 0);
	bpf_ringbuf_discard(e, 0);
	return 0;
}

// expect: reject tail_call would lead to reference leak | kernel: tail_call would lead to reference leak
SEC("tracepoint/syscalls/sys_enter_getppid") int tail_call_holding_record(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	bpf_tail_call(ctx, &progs, 0);
	bpf_ringbuf_discard(e, 0);
	return 0;
}

// expect: reject invalid mem access 'scalar' (it pointed to the reference | kernel: invalid mem access 'scalar'
SEC("tracepoint/syscalls/sys_enter_getppid") int copy_after_submit(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 16, 0);
	if (!e)
		return 0;
	__u64 *second = e + 1;
	bpf_ringbuf_submit(e, 0);
	*second = 3;
	return 0;
}

// expect: reject invalid mem access 'scalar' (it pointed to the reference | kernel: invalid mem access 'scalar'
SEC("tracepoint/syscalls/sys_enter_getppid") int spilled_copy_after_submit(void *ctx)
{
	__u64 *volatile spill;
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	spill = e;
	bpf_ringbuf_submit(e, 0);
	*spill = 4;
	return 0;
}

// expect: reject BPF_EXIT instruction in main prog would lead to reference leak | kernel: BPF_EXIT instruction in main prog would lead to reference leak
SEC("tracepoint/syscalls/sys_enter_getppid") int leak_second_record(void *ctx)
{
	__u64 *a = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!a)
		return 0;
	__u64 *b = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!b) {
		bpf_ringbuf_discard(a, 0);
		return 0;
	}
	bpf_ringbuf_submit(a, 0);
	return 0;
}

// expect: reject expected=ringbuf_mem (it may be NULL | kernel: expected=ringbuf_mem
SEC("tracepoint/syscalls/sys_enter_getppid") int submit_maybe_null(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// expect: reject expected=ringbuf_mem | kernel: expected=ringbuf_mem
SEC("tracepoint/syscalls/sys_enter_getppid") int submit_stack_memory(void *ctx)
{
	__u64 buf[2] = {};
	bpf_ringbuf_submit(buf, 0);
	return 0;
}

// expect: reject must have zero offset when passed to release func | kernel: must have zero offset when passed to release func
SEC("tracepoint/syscalls/sys_enter_getppid") int submit_interior_pointer(void *ctx)
{
	char *e = bpf_ringbuf_reserve(&rb, 16, 0);
	if (!e)
		return 0;
	bpf_ringbuf_submit(e + 8, 0);
	return 0;
}

static __noinline int drop_it(__u64 *e)
{
	if (e)
		bpf_ringbuf_discard(e, 0);
	return 0;
}

// expect: reject invalid mem access 'scalar' (it pointed to the reference | kernel: invalid mem access 'scalar'
SEC("tracepoint/syscalls/sys_enter_getppid") int use_after_release_in_subprog(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	drop_it(e);
	*e = 5;
	return 0;
}

struct loop_ctx {
	__u64 *rec;
};

static int release_cb(__u32 i, struct loop_ctx *c)
{
	if (c->rec)
		bpf_ringbuf_discard(c->rec, 0);
	return 0;
}

// expect: reject releases a reference acquired outside this callback | kernel: expected=ringbuf_mem
SEC("tracepoint/syscalls/sys_enter_getppid") int release_in_callback(void *ctx)
{
	/* Released by the first call, then again by the second call (or
	 * after the loop): the callback may not release the caller's record. */
	struct loop_ctx c = {};
	c.rec = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!c.rec)
		return 0;
	bpf_loop(2, release_cb, &c, 0);
	if (c.rec)
		bpf_ringbuf_discard(c.rec, 0);
	return 0;
}

static int reserve_cb(__u32 i, void *unused)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (e)
		*e = i;
	return 0;
}

// expect: reject BPF_EXIT instruction in a callback would lead to reference leak | kernel: would lead to reference leak
SEC("tracepoint/syscalls/sys_enter_getppid") int leak_in_callback(void *ctx)
{
	bpf_loop(2, reserve_cb, 0, 0);
	return 0;
}

// expect: accept
SEC("tracepoint/syscalls/sys_enter_getppid") int ok_submit_or_discard(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	*e = bpf_get_prandom_u32();
	if (*e & 1) {
		bpf_ringbuf_discard(e, 0);
		return 0;
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// expect: accept
SEC("tracepoint/syscalls/sys_enter_getppid") int ok_release_in_subprog(void *ctx)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 0;
	*e = 6;
	return drop_it(e);
}

static int submit_own_cb(__u32 i, void *unused)
{
	__u64 *e = bpf_ringbuf_reserve(&rb, 8, 0);
	if (!e)
		return 1;
	*e = i;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

// expect: accept
SEC("tracepoint/syscalls/sys_enter_getppid") int ok_callback_submits_own(void *ctx)
{
	bpf_loop(4, submit_own_cb, 0, 0);
	return 0;
}

char _license[] SEC("license") = "GPL";
