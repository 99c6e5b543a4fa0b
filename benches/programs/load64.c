// 64-bit loads: a multiply-xor hash over 4096 bytes of memory, 4 times.
typedef unsigned long long u64;
u64 bench(void *mem)
{
	u64 *p = mem;
	u64 h = 0xcbf29ce484222325ull;
	for (int round = 0; round < 4; round++)
		for (int i = 0; i < 512; i++) {
			h ^= p[i] + round;
			h *= 0x100000001b3ull;
			h ^= h >> 29;
		}
	return h;
}
