// A timer: a perf_event program the runtime runs at a fixed interval on
// one CPU (Session::attach_interval; bpftrace's interval probes), counting
// its ticks and the nanoseconds between the first and the last.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

__u64 ticks;
__u64 first_ns;
__u64 last_ns;

SEC("perf_event")
int tick(void *ctx)
{
	__u64 now = bpf_ktime_get_ns();

	if (!first_ns)
		first_ns = now;
	last_ns = now;
	__sync_fetch_and_add(&ticks, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
