// The peer of `oxbpf bench attach`'s ring-buffer row: the same object
// (examples/live/rbflood.o) consumed through Debian's libbpf
// (ring_buffer__poll). A producer thread makes CALLS getppid(2) calls,
// each writing BURST records; the main thread consumes until every record
// written has arrived. Prints: consumed N dropped D ns T
#define _GNU_SOURCE
#include <sched.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static volatile int done;
static long calls;

/* Producer and consumer on different CPUs (when there are two), as in
 * oxbpf's run: otherwise the result depends on where the scheduler
 * happens to put them. */
static void pin_to(int cpu)
{
	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void *produce(void *arg)
{
	(void)arg;
	pin_to(1);
	for (long i = 0; i < calls; i++)
		getppid();
	done = 1;
	return NULL;
}

static int on_record(void *ctx, void *data, size_t len)
{
	(void)data;
	(void)len;
	(*(uint64_t *)ctx)++;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4 && !(argc == 5 && argv[4][0] == 'd')) {
		fprintf(stderr, "usage: rb_consumer OBJ CALLS BURST [drain]\n");
		return 2;
	}
	calls = atol(argv[2]);
	uint32_t rodata[2] = { (uint32_t)getpid(), (uint32_t)atoi(argv[3]) };
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		perror("open");
		return 1;
	}
	struct bpf_map *ro = bpf_object__find_map_by_name(obj, ".rodata");
	if (!ro || bpf_map__set_initial_value(ro, rodata, sizeof(rodata))) {
		fprintf(stderr, "cannot set .rodata\n");
		return 1;
	}
	if (bpf_object__load(obj)) {
		fprintf(stderr, "load failed\n");
		return 1;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "flood");
	struct bpf_link *link = bpf_program__attach(prog);
	if (!link) {
		fprintf(stderr, "attach failed\n");
		return 1;
	}
	uint64_t consumed = 0;
	struct ring_buffer *rb =
		ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "records")), on_record, &consumed, NULL);
	int stats = bpf_map__fd(bpf_object__find_map_by_name(obj, "stats"));
	pin_to(0);
	if (argc == 5) {
		/* Drain mode: CALLS rounds of filling the ring (FILL getppid
		 * calls of BURST records each, while nothing consumes) and then
		 * timing ring_buffer__consume() alone: the consumer's own cost. */
		long rounds = calls, fill = (1 << 20) / (72 * (long)rodata[1]);
		uint64_t spent = 0;
		for (long r = 0; r < rounds; r++) {
			for (long i = 0; i < fill; i++)
				getppid();
			uint64_t t0 = now_ns();
			ring_buffer__consume(rb);
			spent += now_ns() - t0;
		}
		uint32_t k = 1;
		uint64_t dropped = 0;
		bpf_map_lookup_elem(stats, &k, &dropped);
		printf("consumed %llu dropped %llu ns %llu\n", (unsigned long long)consumed,
		       (unsigned long long)dropped, (unsigned long long)spent);
		ring_buffer__free(rb);
		bpf_link__destroy(link);
		bpf_object__close(obj);
		return 0;
	}
	pthread_t t;
	uint64_t start = now_ns();
	pthread_create(&t, NULL, produce, NULL);
	for (;;) {
		ring_buffer__poll(rb, 10);
		if (done) {
			uint32_t k = 0;
			uint64_t written = 0;
			bpf_map_lookup_elem(stats, &k, &written);
			if (consumed >= written)
				break;
		}
	}
	uint64_t end = now_ns();
	pthread_join(t, NULL);
	uint32_t k = 1;
	uint64_t dropped = 0;
	bpf_map_lookup_elem(stats, &k, &dropped);
	printf("consumed %llu dropped %llu ns %llu\n", (unsigned long long)consumed, (unsigned long long)dropped,
	       (unsigned long long)(end - start));
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
