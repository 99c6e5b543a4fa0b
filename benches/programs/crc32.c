// CRC-32 (IEEE, bitwise) over the 4096 bytes of memory.
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;
u64 bench(void *mem)
{
	const u8 *p = mem;
	u32 crc = 0xffffffff;
	for (u64 i = 0; i < 4096; i++) {
		crc ^= p[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320 & -(crc & 1));
	}
	return ~crc;
}
