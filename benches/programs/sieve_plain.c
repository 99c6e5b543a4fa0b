// Sieve of Eratosthenes over the 4096 bytes of memory; returns the prime count.
typedef unsigned long long u64;
typedef unsigned char u8;
u64 bench(void *mem)
{
	u8 *flags = mem;
	for (u64 i = 0; i < 4096; i++)
		flags[i] = i > 1;
	for (u64 i = 2; i < 64; i++) {
		if (!flags[i])
			continue;
		for (u64 j = i * i; j < 4096; j += i)
			flags[j] = 0;
	}
	u64 count = 0;
	for (u64 i = 0; i < 4096; i++)
		count += flags[i];
	return count;
}
