// A map pinned by name (LIBBPF_PIN_BY_NAME), as tools that keep state
// across runs declare it: the first load pins it under the pin root
// (/sys/fs/bpf by default), later loads reuse the pinned map, so the
// getppid(2) counts per process carry over from one run to the next.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);   // tgid
	__type(value, __u64); // calls, over every run
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} oxbpf_getppid_totals SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *n = bpf_map_lookup_elem(&oxbpf_getppid_totals, &tgid);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&oxbpf_getppid_totals, &tgid, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
