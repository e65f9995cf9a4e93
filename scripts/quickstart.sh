#!/usr/bin/env bash
# The quickstart (README's first command): fetch the fixtures, start an embedded hub (SQLite +
# local files), import and push the starter checkpoints with honest cards, fine-tune
# MobileNetV2 on Fashion-MNIST (100 images per class, 96²) and MiniLM on the sentiment
# sentences (1000 training sentences), evaluate each on held-out examples against the
# frozen-features baseline and the same architecture trained from scratch, push the results
# with lineage, and print a table. `--quick` runs the same path on tiny subsets (CI runs it).
# Output lands in ./zoo-quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1

fx="$(scripts/fetch-fixtures.sh | tail -n 1)"
cargo build --locked -q -p zoo-cli
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
zoo="$target/debug/zoo"
started=$SECONDS
out="$PWD/zoo-quickstart"
rm -rf "$out"
mkdir -p "$out"
export ZOO_FEATURE_CACHE="$out/feature-cache"
export HF_HOME="$out/hf-home"

# Short schedules, so the whole path fits in about a quarter of an hour on 2 cores: images
# without augmentation (it pays off over longer schedules) and, when fine-tuning, the lower
# blocks frozen — MobileNetV2's first 8, MiniLM's embeddings and first 2 layers: fewer
# gradients to compute, generic low-level features kept (measured better on these data).
if [ "$quick" = 1 ]; then
  img=(--image-size 64 --per-class 10 --max-test 200 --epochs 3 --batch-size 10 --no-augment)
  txt=(--per-class 40 --max-test 200 --epochs 2 --batch-size 16)
else
  img=(--image-size 96 --per-class 100 --max-test 2000 --epochs 4 --batch-size 32 --no-augment)
  txt=(--per-class 500 --max-test 1000 --epochs 3 --batch-size 32)
fi
img_ft=(--freeze stages:8)
txt_ft=(--freeze stages:3)

echo "== the hub: zoo serve on 127.0.0.1 (SQLite + local files in $out/hub)"
"$zoo" serve --addr 127.0.0.1:0 --data "$out/hub" > "$out/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  grep -q "http://" "$out/serve.log" 2>/dev/null && break
  sleep 0.1
done
export HF_ENDPOINT="$(grep -o 'http://[^ ]*' "$out/serve.log" | head -n 1)"
"$zoo" admin user add zoo --data "$out/hub" > /dev/null
export HF_TOKEN="$("$zoo" admin token create --user zoo --scope write --data "$out/hub")"
echo "   $HF_ENDPOINT"

echo "== import and push the starter checkpoints"
cat > "$out/mobilenet_v2.card.md" <<'EOF'
---
license: bsd-3-clause
library_name: timm
pipeline_tag: image-classification
datasets: [imagenet-1k]
model-index:
- name: mobilenet_v2
  results:
  - task: {type: image-classification}
    dataset: {type: imagenet-1k, name: ImageNet-1k, split: validation}
    metrics:
    - {type: accuracy, name: top-1, value: 71.878}
    - {type: accuracy, name: top-5, value: 90.286}
---

# MobileNetV2 (torchvision IMAGENET1K_V1)

The torchvision weights `mobilenet_v2-b0353104.pth`, converted to safetensors by `zoo import`.
ImageNet-1k validation results as published by torchvision: top-1 71.878, top-5 90.286.
EOF
cat > "$out/efficientnet_lite0.card.md" <<'EOF'
---
license: apache-2.0
library_name: zoo
pipeline_tag: image-classification
datasets: [imagenet-1k]
---

# EfficientNet-Lite0

The packaged EfficientNet-Lite0 weights (`efficientnet-lite0-57934424.pth`), converted by
`zoo import`. No ImageNet figure is claimed here: none was measured by this project.
EOF
"$zoo" import "$fx/checkpoints/mobilenet_v2-b0353104.pth" --arch mobilenet_v2 \
  --labels "$fx/imagenet_classes.txt" --card-from "$out/mobilenet_v2.card.md" --out "$out/mobilenet_v2"
"$zoo" import "$fx/checkpoints/efficientnet-lite0-57934424.pth" --arch efficientnet_lite0 \
  --labels "$fx/imagenet_classes.txt" --card-from "$out/efficientnet_lite0.card.md" --out "$out/efficientnet_lite0"
"$zoo" push -q "$out/mobilenet_v2" zoo/mobilenet_v2
"$zoo" push -q "$out/efficientnet_lite0" zoo/efficientnet_lite0
"$zoo" push -q "$fx/checkpoints/all-MiniLM-L6-v2" zoo/all-MiniLM-L6-v2

# JSON field from `zoo finetune --json` (first occurrence: the evaluation's).
field() { grep -o "\"$1\": [0-9.e-]*" "$2" | head -n 1 | awk '{print $2}'; }

run() { # name model data repo-out fine-tune-only-flags -- common-flags...
  local name="$1" model="$2" data="$3" push="$4"; shift 4
  local ft=()
  while [ "$1" != "--" ]; do ft+=("$1"); shift; done
  shift
  echo "== $name: fine-tune ${ft[*]}"
  "$zoo" finetune "$model" --data "$data" --out "$out/$name" --push "$push" --json "${ft[@]}" "$@" > "$out/$name.json"
  echo "== $name: frozen-features baseline (linear head on the cached backbone features)"
  "$zoo" finetune "$model" --data "$data" --out "$out/$name-frozen" --freeze all --json "$@" > "$out/$name-frozen.json"
  echo "== $name: the same architecture from scratch"
  "$zoo" finetune "$model" --data "$data" --out "$out/$name-scratch" --from-scratch --json "$@" > "$out/$name-scratch.json"
  echo "== $name: zoo eval of the pushed model"
  "$zoo" eval "$push" --data "$data" --max 200 | head -n 4
}

run mobilenet_v2-fashion-mnist zoo/mobilenet_v2 "$fx/fashion-mnist" zoo/mobilenet_v2-fashion-mnist "${img_ft[@]}" -- "${img[@]}"
run minilm-sentiment zoo/all-MiniLM-L6-v2 "$fx/sentiment.csv" zoo/minilm-sentiment "${txt_ft[@]}" -- --pooling mean "${txt[@]}"

echo
printf '%-28s %-16s %10s %10s %10s %9s  %s\n' model data fine-tuned frozen scratch seconds report
for r in "mobilenet_v2-fashion-mnist:zoo/mobilenet_v2:fashion-mnist" "minilm-sentiment:zoo/all-MiniLM-L6-v2:sentiment"; do
  name="${r%%:*}"; rest="${r#*:}"; model="${rest%%:*}"; data="${rest#*:}"
  printf '%-28s %-16s %10.4f %10.4f %10.4f %9.1f  %s\n' "$model" "$data" \
    "$(field accuracy "$out/$name.json")" "$(field accuracy "$out/$name-frozen.json")" \
    "$(field accuracy "$out/$name-scratch.json")" "$(grep -o '"seconds": [0-9.]*' "$out/$name.json" | tail -n 1 | awk '{print $2}')" \
    "$out/$name/report.html"
done
echo "(accuracy on held-out test examples; pushed: zoo/mobilenet_v2-fashion-mnist, zoo/minilm-sentiment at $HF_ENDPOINT)"
echo "(whole path after the build: $((SECONDS - started)) s)"
echo
echo "== the hub's pages: open $HF_ENDPOINT/zoo/mobilenet_v2-fashion-mnist"
echo "   (search: $HF_ENDPOINT/models · compare: $HF_ENDPOINT/compare?m=zoo/mobilenet_v2&m=zoo/mobilenet_v2-fashion-mnist)"
if [ -t 1 ] && [ "$quick" = 0 ]; then
  echo "   serving until Ctrl-C"
  wait "$serve_pid" || true
else
  echo "   the hub stops with this script; to browse later: $zoo serve --data $out/hub  (then http://127.0.0.1:8080/)"
fi
