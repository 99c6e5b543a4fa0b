// Packet parsing as an XDP program does it: Ethernet with an optional VLAN
// tag, IPv4 or IPv6, TCP or UDP ports, every read checked against the
// packet end first. 64 packets of 64 bytes are laid out in memory (the
// benchmark input gives them real headers); lengths vary so some are cut
// short; 8 passes.
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

static inline u16 be16(const u8 *p)
{
	return (u16)(p[0] << 8 | p[1]);
}

u64 bench(void *mem)
{
	u8 *base = mem;
	u64 acc = 0;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 64; i++) {
			u8 *data = base + i * 64;
			u8 *end = data + 30 + (i & 31) - round;
			u8 *p = data + 14;
			if (p > end) {
				acc += 1;
				continue;
			}
			u16 proto = be16(data + 12);
			if (proto == 0x8100) {
				if (p + 4 > end) {
					acc += 2;
					continue;
				}
				proto = be16(p + 2);
				p += 4;
			}
			u8 l4;
			if (proto == 0x0800) {
				if (p + 20 > end) {
					acc += 3;
					continue;
				}
				u32 ihl = (p[0] & 15) * 4;
				if (ihl < 20) {
					acc += 4;
					continue;
				}
				l4 = p[9];
				acc += be16(p + 2);
				p += ihl;
			} else if (proto == 0x86dd) {
				if (p + 40 > end) {
					acc += 5;
					continue;
				}
				l4 = p[6];
				p += 40;
			} else {
				acc += 6;
				continue;
			}
			if (l4 == 6 || l4 == 17) {
				if (p + 4 > end) {
					acc += 7;
					continue;
				}
				u16 sport = be16(p), dport = be16(p + 2);
				acc = acc * 31 + (sport ^ dport) + l4;
			} else {
				acc += 8;
			}
		}
	}
	return acc;
}
