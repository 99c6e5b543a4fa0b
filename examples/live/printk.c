// Live-events example: bpf_printk output, which oxbpf attach reads from
// the kernel's trace pipe.
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_getppid")
int say_getppid(void *ctx)
{
	bpf_printk("getppid from %d", (int)(bpf_get_current_pid_tgid() >> 32));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
