// Sum of the 512 64-bit words of memory, 16 times over.
typedef unsigned long long u64;
u64 bench(void *mem)
{
	const u64 *p = mem;
	u64 sum = 0;
	for (int r = 0; r < 16; r++)
		for (u64 i = 0; i < 512; i++)
			sum += p[i] ^ r;
	return sum;
}
