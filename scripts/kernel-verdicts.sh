#!/usr/bin/env bash
# Saves the kernel verifier's verdict for every program of every object in
# ../shared/ebpf-samples (needs root): docs/kernel-verdicts.jsonl, one JSON
# object per program (object, program, section, type, verdict,
# insns_processed, time_us, message), and prints the totals.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-../shared/ebpf-samples}
cargo build -q --release -p oxbpf
./target/release/oxbpf verify --verifier kernel --json "$dir" > docs/kernel-verdicts.jsonl || true
for v in accept reject error; do
  printf '%s: %s\n' "$v" "$(grep -c "\"verdict\":\"$v\"" docs/kernel-verdicts.jsonl || true)"
done
