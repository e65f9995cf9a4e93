#!/usr/bin/env bash
# Runs every fuzz target for a while (outside CI): fuzz/run.sh [SECONDS_PER_TARGET]
# Needs cargo-fuzz (cargo install cargo-fuzz) and a nightly toolchain. Seeds come from the
# committed fixtures; crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
fx=../crates/zoo-checkpoint/tests/fixtures
mkdir -p corpus/safetensors_header corpus/pickle corpus/torch_checkpoint corpus/card
cp -n $fx/*.safetensors corpus/safetensors_header/ 2>/dev/null || true
cp -n $fx/hostile/*.pkl corpus/pickle/ 2>/dev/null || true
cp -n $fx/views.*.pt $fx/wrapped.*.pt $fx/hostile/*.pt* corpus/torch_checkpoint/ 2>/dev/null || true
printf -- '---\nlicense: mit\nbase_model: a/b\nmodel-index:\n- name: x\n  results:\n  - task: {type: t}\n    dataset: {type: d}\n    metrics: [{type: accuracy, value: 0.5}]\n---\nbody\n' > corpus/card/seed.md
for t in safetensors_header pickle torch_checkpoint card; do
  echo "== $t ($secs s)"
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=4096
done
