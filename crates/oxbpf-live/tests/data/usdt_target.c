// A USDT workload for the live tests: probe `oxbpf:plain` (no semaphore)
// fires once per loop iteration with (i, 10^12 + i); `oxbpf:gated` (with a
// semaphore, in usdt_gated.c) fires only while a tracer holds the
// semaphore. Usage: usdt_target N (waits for a line on stdin first, so the
// test can attach), then prints the semaphore's value.
#include <sys/sdt.h>
#include <stdio.h>
#include <stdlib.h>

int gated(int i);

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	char line[16];
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	int semaphore = 0;
	for (int i = 0; i < n; i++) {
		long big = 1000000000000L + i;
		DTRACE_PROBE2(oxbpf, plain, i, big);
		semaphore = gated(i);
	}
	printf("semaphore %d\n", semaphore);
	return 0;
}
