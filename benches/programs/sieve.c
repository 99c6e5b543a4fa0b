// Sieve of Eratosthenes over 4096 bytes of memory; returns the prime count.
typedef unsigned long long u64;
typedef unsigned char u8;
u64 bench(void *mem)
{
	u8 *flags = mem;
	const int n = 4096;
	// Volatile keeps clang from turning the fill into a memset call.
	for (volatile int i = 0; i < n; i++)
		flags[i] = 1;
	flags[0] = flags[1] = 0;
	for (int i = 2; i * i < n; i++) {
		if (!flags[i])
			continue;
		for (int j = i * i; j < n; j += i)
			flags[j] = 0;
	}
	u64 count = 0;
	for (int i = 0; i < n; i++)
		count += flags[i];
	return count;
}
