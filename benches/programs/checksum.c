// Internet checksum (RFC 1071) over 1024 bytes of memory, 8 times.
typedef unsigned long long u64;
typedef unsigned short u16;
u64 bench(void *mem)
{
	u16 *p = mem;
	u64 total = 0;
	for (int round = 0; round < 8; round++) {
		u64 sum = round;
		for (int i = 0; i < 512; i++)
			sum += p[i];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		total += (~sum) & 0xffff;
	}
	return total;
}
