// Live-events example: user-space probes. `on_enter` sees a function's
// first two arguments, `on_return` its return value, `on_multi` every
// function an uprobe.multi pattern matched; each call becomes a ring-buffer
// record. The sections name no target: the loader is told where to attach.
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct call {
	__u64 a;
	__u64 b;
	__u64 ret;
	__u64 ip;
	__u32 pid;
	__u32 kind; // 0 entry, 1 return, 2 uprobe.multi entry
};

struct call *unused_call __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} calls SEC(".maps");

static __always_inline int emit(__u64 a, __u64 b, __u64 ret, __u64 ip, __u32 kind)
{
	struct call *c = bpf_ringbuf_reserve(&calls, sizeof(*c), 0);
	if (!c)
		return 0;
	c->a = a;
	c->b = b;
	c->ret = ret;
	c->ip = ip;
	c->pid = bpf_get_current_pid_tgid() >> 32;
	c->kind = kind;
	bpf_ringbuf_submit(c, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(on_enter, __u64 a, __u64 b)
{
	return emit(a, b, 0, PT_REGS_IP(ctx), 0);
}

SEC("uretprobe")
int BPF_KRETPROBE(on_return, __u64 ret)
{
	return emit(0, 0, ret, 0, 1);
}

SEC("uprobe.multi")
int on_multi(struct pt_regs *ctx)
{
	return emit(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, PT_REGS_IP(ctx), 2);
}

char LICENSE[] SEC("license") = "GPL";
