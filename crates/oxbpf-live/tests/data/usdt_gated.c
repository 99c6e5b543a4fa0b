// The semaphore-guarded half of usdt_target: arguments are computed only
// while the kernel has raised oxbpf_gated_semaphore (a tracer attached).
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

unsigned short oxbpf_gated_semaphore __attribute__((section(".probes")));

int gated(int i)
{
	if (oxbpf_gated_semaphore)
		DTRACE_PROBE2(oxbpf, gated, -i, (int)oxbpf_gated_semaphore);
	return oxbpf_gated_semaphore;
}
