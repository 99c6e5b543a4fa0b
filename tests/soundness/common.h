/* Shared declarations of the soundness cases (built by the Makefile). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

/* Each case is one program. The line before its SEC() says what both
 * verifiers must do, read by crates/oxbpf/tests/soundness.rs:
 *   // expect: accept
 *   // expect: reject <text in oxbpf's message> | kernel: <text in the kernel's log>
 */

static volatile __u64 sink;
