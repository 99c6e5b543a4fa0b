/*
 * The peer of `oxbpf bench filter`: libpcap's pcap_offline_filter (its
 * classic-BPF interpreter, bpf_filter) over every packet of a capture
 * file held in memory.
 *
 *   pcap_filter FILE.pcap ROUNDS EXPR         libpcap compiles EXPR (optimized)
 *   pcap_filter FILE.pcap ROUNDS -p PROG.ddd  a program in tcpdump -ddd form
 *
 * Prints: packets kept in one round, the program's instruction count, and
 * the best round's time in nanoseconds.
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pkt {
	struct pcap_pkthdr hdr;
	u_char *data;
};

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int read_ddd(const char *path, struct bpf_program *prog)
{
	FILE *f = fopen(path, "r");
	unsigned n, i;
	if (!f || fscanf(f, "%u", &n) != 1 || n == 0)
		return -1;
	prog->bf_len = n;
	prog->bf_insns = calloc(n, sizeof(struct bpf_insn));
	for (i = 0; i < n; i++) {
		unsigned code, jt, jf, k;
		if (fscanf(f, "%u %u %u %u", &code, &jt, &jf, &k) != 4)
			return -1;
		prog->bf_insns[i].code = code;
		prog->bf_insns[i].jt = jt;
		prog->bf_insns[i].jf = jf;
		prog->bf_insns[i].k = k;
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];
	struct bpf_program prog;
	struct pkt *pkts = NULL;
	size_t n = 0, cap = 0, i;
	long long best = -1;
	long kept = 0;
	int rounds, r;
	pcap_t *p;
	struct pcap_pkthdr *h;
	const u_char *d;

	if (argc < 4) {
		fprintf(stderr, "usage: %s FILE.pcap ROUNDS (EXPR | -p PROG.ddd)\n", argv[0]);
		return 2;
	}
	rounds = atoi(argv[2]);
	p = pcap_open_offline(argv[1], err);
	if (!p) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	while (pcap_next_ex(p, &h, &d) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			pkts = realloc(pkts, cap * sizeof(*pkts));
		}
		pkts[n].hdr = *h;
		pkts[n].data = malloc(h->caplen);
		memcpy(pkts[n].data, d, h->caplen);
		n++;
	}
	if (strcmp(argv[3], "-p") == 0) {
		if (argc < 5 || read_ddd(argv[4], &prog) != 0) {
			fprintf(stderr, "cannot read the program\n");
			return 1;
		}
	} else if (pcap_compile(p, &prog, argv[3], 1, PCAP_NETMASK_UNKNOWN) != 0) {
		fprintf(stderr, "%s\n", pcap_geterr(p));
		return 1;
	}
	for (r = 0; r < rounds; r++) {
		long k = 0;
		long long t = now_ns();
		for (i = 0; i < n; i++)
			k += pcap_offline_filter(&prog, &pkts[i].hdr, pkts[i].data) != 0;
		t = now_ns() - t;
		if (best < 0 || t < best)
			best = t;
		kept = k;
	}
	printf("%ld %u %lld\n", kept, prog.bf_len, best);
	return 0;
}
