#!/usr/bin/env bash
# Rebuilds the benchmark bytecode from C with clang-19 (Debian: clang-19,
# llvm-19). The .bin files are the .text section of each object: raw
# bytecode for -mcpu=v3, which the rbpf crate can also run.
set -euo pipefail
cd "$(dirname "$0")"
for c in *.c; do
	name=${c%.c}
	clang-19 -O2 -target bpf -mcpu=v3 -fno-jump-tables -c "$c" -o "/tmp/oxbpf-bench-$name.o"
	llvm-objcopy-19 -O binary --only-section=.text "/tmp/oxbpf-bench-$name.o" "$name.bin"
	rm -f "/tmp/oxbpf-bench-$name.o"
done
