// A dense switch (a state machine) driven by input bytes.
typedef unsigned long long u64;
typedef unsigned char u8;
u64 bench(void *mem)
{
	u8 *p = mem;
	u64 state = 1, acc = 0;
	for (int i = 0; i < 4096; i++) {
		unsigned sel = (p[i & 1023] + state) & 15;
		switch (sel) {
		case 0: acc += state; state = 3; break;
		case 1: acc ^= state << 1; state = 7; break;
		case 2: acc -= i; state += 5; break;
		case 3: acc += acc >> 3; state = i & 31; break;
		case 4: acc *= 3; state ^= 9; break;
		case 5: acc |= i; state = acc & 63; break;
		case 6: acc += 17; state -= 2; break;
		case 7: acc ^= 0x5a5a; state = 11; break;
		case 8: acc += state * 5; state = 2; break;
		case 9: acc -= state; state += 13; break;
		case 10: acc = (acc << 1) | (acc >> 63); state = 4; break;
		case 11: acc += i * 3; state ^= 1; break;
		case 12: acc &= ~(u64)i; state = 8; break;
		case 13: acc += 99; state += 1; break;
		case 14: acc ^= acc >> 7; state = 6; break;
		default: acc += 1; state = 0; break;
		}
	}
	return acc + state;
}
