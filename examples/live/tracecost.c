// The hand-written floor for `oxbpf bench trace-cost`: each program does
// what one of the benchmark's bpftrace scripts does, the way a careful C
// author would (per-CPU maps, no output formatting in the kernel), so that
// the per-event cost of generated code can be set beside it. The scripts
// are listed in crates/oxbpf-bench/src/trace_cost.rs; the programs here
// are named after them.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

// tracefs events/syscalls/sys_enter_write/format (and sys_exit_write).
struct enter_write {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 fd;
	__u64 buf;
	__u64 count;
};

struct exit_write {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counter SEC(".maps");

struct comm {
	char s[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct comm);
	__type(value, __u64);
} by_comm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} bytes_by_pid SEC(".maps");

// log2 buckets as bpftrace's hist(): 0 for negative values, 1 for 0,
// 2 + floor(log2(v)) otherwise.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 66);
	__type(key, __u32);
	__type(value, __u64);
} log2_hist SEC(".maps");

// lhist(v, 0, 1000, 100): below, ten buckets, above.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 12);
	__type(key, __u32);
	__type(value, __u64);
} linear_hist SEC(".maps");

struct stats {
	__u64 count;
	__u64 sum;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats);
} write_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

/* As large as oxbpf trace's (and the reader pauses as its does): how
 * often the consumer is caught up, so how often a record wakes it, is
 * then the same, and the floor differs in the generated code only. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 19);
} events SEC(".maps");

static __always_inline void bump(void *map, __u32 key)
{
	__u64 *v = bpf_map_lookup_elem(map, &key);
	if (v)
		*v += 1;
}

static __always_inline void bump_hash(void *map, void *key, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(map, key);
	if (v) {
		*v += by;
	} else {
		bpf_map_update_elem(map, key, &by, BPF_NOEXIST);
	}
}

static __always_inline __u32 log2_bucket(__s64 v)
{
	if (v < 0)
		return 0;
	if (v == 0)
		return 1;
	__u64 x = v;
	__u32 r = 0;
	if (x >> 32) { x >>= 32; r += 32; }
	if (x >> 16) { x >>= 16; r += 16; }
	if (x >> 8) { x >>= 8; r += 8; }
	if (x >> 4) { x >>= 4; r += 4; }
	if (x >> 2) { x >>= 2; r += 2; }
	if (x >> 1) { r += 1; }
	return r + 2;
}

SEC("tracepoint/syscalls/sys_enter_write")
int count(struct enter_write *ctx)
{
	bump(&counter, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int count_by_comm(struct enter_write *ctx)
{
	struct comm c = {};
	bpf_get_current_comm(&c.s, sizeof(c.s));
	bump_hash(&by_comm, &c, 1);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int sum_by_pid(struct enter_write *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	bump_hash(&bytes_by_pid, &pid, ctx->count);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int hist(struct enter_write *ctx)
{
	bump(&log2_hist, log2_bucket(ctx->count));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int lhist(struct enter_write *ctx)
{
	__s64 v = ctx->count;
	__u32 b = v < 0 ? 0 : v >= 1000 ? 11 : (__u64)v / 100 + 1;
	bump(&linear_hist, b);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int stats(struct enter_write *ctx)
{
	__u32 key = 0;
	struct stats *s = bpf_map_lookup_elem(&write_stats, &key);
	if (s) {
		s->count += 1;
		s->sum += ctx->count;
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int filter_comm(struct enter_write *ctx)
{
	static const char want[16] = "oxbpf-bench";
	struct comm c = {};
	bpf_get_current_comm(&c.s, sizeof(c.s));
	__u64 *a = (__u64 *)c.s, *b = (__u64 *)want;
	if (a[0] == b[0] && a[1] == b[1])
		bump(&counter, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int latency_enter(struct enter_write *ctx)
{
	__u32 tid = bpf_get_current_pid_tgid();
	__u64 ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &tid, &ts, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_write")
int latency_exit(struct exit_write *ctx)
{
	__u32 tid = bpf_get_current_pid_tgid();
	__u64 *ts = bpf_map_lookup_elem(&start, &tid);
	if (!ts || !*ts)
		return 0;
	bump(&log2_hist, log2_bucket(bpf_ktime_get_ns() - *ts));
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

struct record {
	__u32 pid;
	__u32 pad;
	__u64 count;
};

SEC("tracepoint/syscalls/sys_enter_write")
int print(struct enter_write *ctx)
{
	struct record r = {
		.pid = bpf_get_current_pid_tgid() >> 32,
		.count = ctx->count,
	};
	bpf_ringbuf_output(&events, &r, sizeof(r), 0);
	return 0;
}

// Attached by the benchmark to its own workload function.
SEC("uprobe")
int uprobe_count(void *ctx)
{
	bump(&counter, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
