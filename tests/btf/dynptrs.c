// Dynptrs as libbpf users write them: ring buffer records reserved as
// dynptrs (submitted or discarded on every path, even when the reservation
// failed), local dynptrs over map values, bpf_dynptr_read/write/data and
// the bpf_dynptr_* kfuncs, and the misuses the kernel rejects. Names give
// the kernel's verdict (ok_ accepted, bad_ rejected), checked against
// oxbpf's verifier and the running kernel by
// crates/oxbpf/tests/typed_pointers.rs. Rebuild: make -C tests/btf
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";

extern __u32 bpf_dynptr_size(const struct bpf_dynptr *p) __ksym;
extern bool bpf_dynptr_is_null(const struct bpf_dynptr *p) __ksym;
extern void *bpf_dynptr_slice(const struct bpf_dynptr *p, u32 offset, void *buffer__opt, u32 buffer__szk) __ksym;
extern void *bpf_dynptr_slice_rdwr(const struct bpf_dynptr *p, u32 offset, void *buffer__opt, u32 buffer__szk) __ksym;
extern int bpf_dynptr_adjust(const struct bpf_dynptr *p, u32 start, u32 end) __ksym;
extern int bpf_dynptr_clone(const struct bpf_dynptr *p, struct bpf_dynptr *clone__uninit) __ksym;

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, u64[8]);} arr SEC(".maps");
static __always_inline u64 *value(void) { u32 z = 0; return bpf_map_lookup_elem(&arr, &z); }

SEC("tp/syscalls/sys_enter_getpid")
int ok_ringbuf_submit(void *ctx)
{
	struct bpf_dynptr d;
	u64 *p;
	bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);
	p = bpf_dynptr_data(&d, 0, 8);
	if (p)
		*p = bpf_get_current_pid_tgid();
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int ok_ringbuf_failed_discard(void *ctx)
{
	struct bpf_dynptr d;
	u64 x = 7;
	if (bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d)) {
		bpf_ringbuf_discard_dynptr(&d, 0);
		return 0;
	}
	bpf_dynptr_write(&d, 0, &x, sizeof(x), 0);
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int ok_local_read_write(void *ctx)
{
	struct bpf_dynptr d;
	u64 *v = value(), x = 1, y = 0;
	if (!v)
		return 0;
	bpf_dynptr_from_mem(v, 64, 0, &d);
	bpf_dynptr_write(&d, 8, &x, sizeof(x), 0);
	bpf_dynptr_read(&y, sizeof(y), &d, 16, 0);
	v[0] = y;
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int ok_kfuncs(void *ctx)
{
	struct bpf_dynptr d;
	u64 *v = value(), *s;
	if (!v)
		return 0;
	bpf_dynptr_from_mem(v, 64, 0, &d);
	if (bpf_dynptr_is_null(&d) || bpf_dynptr_size(&d) < 16)
		return 0;
	bpf_dynptr_adjust(&d, 8, 64);
	s = bpf_dynptr_slice(&d, 0, NULL, 8);
	if (s)
		v[1] = *s;
	return 0;
}

// A clone holds the same record: submitting it releases both.
SEC("tp/syscalls/sys_enter_getpid")
int ok_clone(void *ctx)
{
	struct bpf_dynptr d, c;
	bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);
	bpf_dynptr_clone(&d, &c);
	bpf_ringbuf_submit_dynptr(&c, 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_ringbuf_leak(void *ctx)
{
	struct bpf_dynptr d;
	u64 *p;
	bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);
	p = bpf_dynptr_data(&d, 0, 8);
	if (p)
		*p = 1;
	return 0;
}

// A failed reservation still gives a dynptr that must be discarded.
SEC("tp/syscalls/sys_enter_getpid")
int bad_failed_reserve_leak(void *ctx)
{
	struct bpf_dynptr d;
	if (bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d))
		return 0;
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_uninit_read(void *ctx)
{
	struct bpf_dynptr d;
	u64 y = 0;
	bpf_dynptr_read(&y, sizeof(y), &d, 0, 0);
	return y;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_read_bytes(void *ctx)
{
	struct bpf_dynptr d;
	u64 *v = value();
	if (!v)
		return 0;
	bpf_dynptr_from_mem(v, 64, 0, &d);
	v[0] = *(volatile u64 *)&d;
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_overwrite_referenced(void *ctx)
{
	struct bpf_dynptr d;
	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d);
	*(volatile u64 *)&d = 0;
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_data_after_submit(void *ctx)
{
	struct bpf_dynptr d;
	u64 *p;
	bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);
	p = bpf_dynptr_data(&d, 0, 8);
	bpf_ringbuf_submit_dynptr(&d, 0);
	if (p)
		*p = 1;
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_data_beyond(void *ctx)
{
	struct bpf_dynptr d;
	u64 *p;
	bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);
	p = bpf_dynptr_data(&d, 0, 8);
	if (p)
		p[1] = 1;
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

// A local dynptr points into a map value, not the stack.
SEC("tp/syscalls/sys_enter_getpid")
int bad_from_stack(void *ctx)
{
	struct bpf_dynptr d;
	u64 buf[4] = {};
	u64 y = 0;
	bpf_dynptr_from_mem(buf, sizeof(buf), 0, &d);
	bpf_dynptr_read(&y, sizeof(y), &d, 0, 0);
	return y;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_submit_local(void *ctx)
{
	struct bpf_dynptr d;
	u64 *v = value();
	if (!v)
		return 0;
	bpf_dynptr_from_mem(v, 64, 0, &d);
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_double_submit(void *ctx)
{
	struct bpf_dynptr d;
	bpf_ringbuf_reserve_dynptr(&rb, 8, 0, &d);
	bpf_ringbuf_submit_dynptr(&d, 0);
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

// bpf_dynptr_slice gives read-only memory.
SEC("tp/syscalls/sys_enter_getpid")
int bad_slice_write(void *ctx)
{
	struct bpf_dynptr d;
	u64 *v = value(), *s;
	if (!v)
		return 0;
	bpf_dynptr_from_mem(v, 64, 0, &d);
	s = bpf_dynptr_slice(&d, 0, NULL, 8);
	if (s)
		*s = 1;
	return 0;
}

SEC("tp/syscalls/sys_enter_getpid")
int bad_data_variable_len(void *ctx)
{
	struct bpf_dynptr d;
	u32 len = bpf_get_prandom_u32() & 8;
	u64 *p;
	bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);
	p = bpf_dynptr_data(&d, 0, len);
	if (p)
		*(char *)p = 1;
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

// Submitting the clone releases the original too.
SEC("tp/syscalls/sys_enter_getpid")
int bad_use_after_clone_submit(void *ctx)
{
	struct bpf_dynptr d, c;
	bpf_ringbuf_reserve_dynptr(&rb, 16, 0, &d);
	bpf_dynptr_clone(&d, &c);
	bpf_ringbuf_submit_dynptr(&c, 0);
	bpf_ringbuf_submit_dynptr(&d, 0);
	return 0;
}

// Overwriting a local dynptr destroys it but not its slices: they point
// into the map value, which outlives it (the kernel accepts this).
SEC("tp/syscalls/sys_enter_getpid")
int ok_slice_after_overwrite(void *ctx)
{
	struct bpf_dynptr d;
	u64 *v = value(), *s;
	if (!v)
		return 0;
	bpf_dynptr_from_mem(v, 64, 0, &d);
	s = bpf_dynptr_slice(&d, 0, NULL, 8);
	if (!s)
		return 0;
	*(volatile u64 *)&d = 0;
	v[2] = *s;
	return 0;
}
