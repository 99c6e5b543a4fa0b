// Live-events example: USDT probes through libbpf's bpf/usdt.bpf.h (the
// loader fills its spec map and gives each site its spec id as the BPF
// cookie). Every hit becomes a ring-buffer record {pid, which, arg0, arg1,
// kernel version}; the kernel version comes from a __kconfig extern.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <linux/types.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

struct hit {
	__u32 pid;
	__u32 which; // 0: plain, 1: gated
	__s64 arg0;
	__s64 arg1;
	__u32 kernel;
	__u32 nargs;
};

struct hit *unused_hit __attribute__((unused));

extern int LINUX_KERNEL_VERSION __kconfig;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} hits SEC(".maps");

static __always_inline int emit(struct pt_regs *ctx, __u32 which)
{
	struct hit *h = bpf_ringbuf_reserve(&hits, sizeof(*h), 0);
	if (!h)
		return 0;
	long a = 0, b = 0;
	bpf_usdt_arg(ctx, 0, &a);
	bpf_usdt_arg(ctx, 1, &b);
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->which = which;
	h->arg0 = a;
	h->arg1 = b;
	h->kernel = LINUX_KERNEL_VERSION;
	h->nargs = bpf_usdt_arg_cnt(ctx);
	bpf_ringbuf_submit(h, 0);
	return 0;
}

SEC("usdt")
int on_plain(struct pt_regs *ctx)
{
	return emit(ctx, 0);
}

SEC("usdt")
int on_gated(struct pt_regs *ctx)
{
	return emit(ctx, 1);
}

char LICENSE[] SEC("license") = "GPL";
