// Primes below 20000 by trial division (division and modulo in a nested loop).
typedef unsigned long long u64;
u64 bench(void *mem)
{
	u64 count = 0;
	for (u64 n = 2; n < 20000; n++) {
		int prime = 1;
		for (u64 d = 2; d * d <= n; d++) {
			if (n % d == 0) {
				prime = 0;
				break;
			}
		}
		count += prime;
	}
	return count;
}
