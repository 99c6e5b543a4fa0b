// Function entry and return the modern way (BPF trampolines) and the
// classic way (kprobes, and a kprobe.multi pattern), counting unlinkat(2)
// calls into do_unlinkat.
// Kernels without trampolines or kprobes refuse these with a reason;
// `oxbpf attach --auto` keeps whichever of each pair the kernel supports.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

u64 entries;
u64 returns;

SEC("fentry/do_unlinkat")
int BPF_PROG(unlink_entry, int dfd, struct filename *name)
{
	__sync_fetch_and_add(&entries, 1);
	return 0;
}

SEC("fexit/do_unlinkat")
int BPF_PROG(unlink_exit, int dfd, struct filename *name, long ret)
{
	__sync_fetch_and_add(&returns, 1);
	return 0;
}

SEC("kprobe/do_unlinkat")
int unlink_kprobe(void *ctx)
{
	__sync_fetch_and_add(&entries, 1);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int unlink_kretprobe(void *ctx)
{
	__sync_fetch_and_add(&returns, 1);
	return 0;
}

// Every function named do_unlinkat* through one fprobe link.
SEC("kprobe.multi/do_unlinkat*")
int unlink_multi(void *ctx)
{
	__sync_fetch_and_add(&entries, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
