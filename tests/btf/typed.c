// Typed kernel pointers (PTR_TO_BTF_ID) as libbpf users write them: each
// program's name says the verdict the kernel gives it (ok_ accepted, bad_
// rejected), and the test checks that oxbpf's verifier gives the same one
// (and, where the running kernel can load it, that the kernel still does).
// Rebuild: make -C tests/btf (needs clang-19, bpftool, libbpf-dev).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} m SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, u64);
} store SEC(".maps");

static __always_inline void put(u32 k, u64 v)
{
	bpf_map_update_elem(&m, &k, &v, 0);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_fields, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(next->pid, prev->se.vruntime + prev->real_parent->tgid + next->comm[3]);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ok_chain, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct task_struct *t = bpf_get_current_task_btf();
	put(old_pid, bprm->file->f_inode->i_ino + t->mm->total_vm);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(ok_filename, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	char buf[64];
	bpf_probe_read_kernel_str(buf, sizeof(buf), bprm->filename);
	put(buf[0], old_pid);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_task_stack, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u64 buf[8] = {};
	long n = bpf_get_task_stack(next, buf, sizeof(buf), 0);
	put(n, buf[0]);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_null_check, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct mm_struct *mm = next->mm;
	if (!mm)
		return 0;
	put(mm->map_count, 1);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_pt_regs, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(next);
	put(r->ip, r->sp);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_task_storage, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u64 *v = bpf_task_storage_get(&store, next, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (v)
		*v += 1;
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(ok_nullable_arg, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
	if (rx_sk)
		put(rx_sk->__sk_common.skc_family, skb->len);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(ok_skc_cast, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (tp)
		put(tp->srtt_us, tp->inet_conn.icsk_inet.sk.sk_socket != 0);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(ok_sys_enter, struct pt_regs *regs, long id)
{
	put(id, regs->di + regs->cs);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_bitfield, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(BPF_CORE_READ_BITFIELD(next, in_execve), preempt);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_probe_read, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u64 x = 0;
	bpf_probe_read_kernel(&x, sizeof(x), &next->mm);
	put(1, x);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ok_trusted_not_null, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	if (!next)
		return 1;
	put(next->tgid, 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_write, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	next->pid = 3;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_atomic, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__sync_fetch_and_add(&next->pid, 1);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_beyond_struct, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(*(u32 *)((char *)next + 20000), 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_negative, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(*(u32 *)((char *)next - 8), 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_variable_offset, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u32 i = bpf_get_prandom_u32() & 8;
	put(*(u32 *)((char *)next + i), 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_pointer_half, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(*(u32 *)((char *)&next->real_parent + 4), 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_untrusted_to_helper, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	u64 buf[8] = {};
	long n = bpf_get_task_stack((void *)next->mm, buf, sizeof(buf), 0);
	put(n, buf[0]);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(bad_wrong_struct, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	u64 *v = bpf_task_storage_get(&store, (struct task_struct *)bprm, 0, 0);
	if (v)
		*v += 1;
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(bad_nullable_unchecked, struct sk_buff *skb, void *location, enum skb_drop_reason reason, struct sock *rx_sk)
{
	put(rx_sk->__sk_common.skc_family, 0);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(bad_cast_unchecked, const struct sock *sk, const struct sk_buff *skb, int reason)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	put(tp->srtt_us, 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(bad_no_such_arg, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	put(ctx[5], 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int bad_narrow_pointer_arg(u64 *ctx)
{
	put(((u32 *)ctx)[2], 0);
	return 0;
}

SEC("tp_btf/sched_switch")
int bad_ctx_write(u64 *ctx)
{
	ctx[0] = 1;
	return 0;
}

SEC("tp_btf/sched_switch")
int bad_ctx_unaligned(u64 *ctx)
{
	put(*(u64 *)((char *)ctx + 4), 0);
	return 0;
}

SEC("tp_btf/no_such_tracepoint_at_all")
int BPF_PROG(bad_no_such_target)
{
	return 0;
}
