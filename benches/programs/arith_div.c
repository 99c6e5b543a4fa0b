// Arithmetic with division and modulo in a register-only loop.
typedef unsigned long long u64;
u64 bench(void *mem)
{
	u64 acc = 0x12345;
	for (u64 i = 1; i < 4000; i++) {
		u64 d = (i % 13) + 1;
		acc += (acc ^ (i * 2654435761u)) / d;
		acc = acc * 31 + (i % 7);
	}
	return acc;
}
