#!/usr/bin/env bash
# Runs every fuzz target for a while (outside CI): fuzz/run.sh [SECONDS_PER_TARGET] [TARGET…]
# Needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain. Seeds come from the
# committed fixtures and `examples/seeds.rs`; crashes land in fuzz/artifacts/TARGET/. Each
# target's last libFuzzer status line (executions, coverage, corpus) goes to
# fuzz/logs/TARGET.log, and a summary table to stdout.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors_header pickle torch_checkpoint card commit_ndjson lfs_batch xet_shard xet_xorb text_loaders)
fx=../crates/zoo-checkpoint/tests/fixtures
mkdir -p logs corpus/safetensors_header corpus/pickle corpus/torch_checkpoint corpus/card
cp -n $fx/*.safetensors corpus/safetensors_header/ 2>/dev/null || true
cp -n $fx/hostile/*.pkl corpus/pickle/ 2>/dev/null || true
cp -n $fx/views.*.pt $fx/wrapped.*.pt $fx/hostile/*.pt* corpus/torch_checkpoint/ 2>/dev/null || true
printf -- '---\nlicense: mit\nbase_model: a/b\nmodel-index:\n- name: x\n  results:\n  - task: {type: t}\n    dataset: {type: d}\n    metrics: [{type: accuracy, value: 0.5}]\n---\nbody\n' > corpus/card/seed.md
cargo +nightly run -q --example seeds
for t in "${targets[@]}"; do
  echo "== $t ($secs s)"
  mkdir -p "corpus/$t"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 > "logs/$t.log" 2>&1 || { echo "$t: FAILED (see fuzz/logs/$t.log, fuzz/artifacts/$t/)"; tail -30 "logs/$t.log"; }
  grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "logs/$t.log" | tail -1
  grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb' "logs/$t.log" | tr '\n' ' '; echo
done
