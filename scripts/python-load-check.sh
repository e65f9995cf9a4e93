#!/usr/bin/env bash
# Manual check (issue 6; PyTorch stays out of CI): the Python libraries people use load zoo's
# fine-tuned models and give the logits `zoo predict` gives.
#   ZOO_TORCH_PYTHON=/path/to/python scripts/python-load-check.sh
# That Python needs torch, torchvision, timm, transformers and safetensors.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${ZOO_TORCH_PYTHON:-python3}"
"$py" -c 'import torch, torchvision, timm, transformers, safetensors' || {
  echo "set ZOO_TORCH_PYTHON to a Python with torch, torchvision, timm, transformers, safetensors" >&2; exit 1; }
fx="$(scripts/fetch-fixtures.sh | tail -n 1)"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export ZOO_FEATURE_CACHE="$work/cache"

echo "== image: MobileNetV2 fine-tuned on Fashion-MNIST (linear head, 2 epochs), torchvision + timm"
"$zoo" import "$fx/checkpoints/mobilenet_v2-b0353104.pth" --arch mobilenet_v2 --labels "$fx/imagenet_classes.txt" --out "$work/mnv2" > /dev/null
"$zoo" finetune "$work/mnv2" --data "$fx/fashion-mnist" --out "$work/img" --image-size 96 --per-class 20 --max-test 100 --epochs 2 --freeze stages:8 > /dev/null 2>&1
imgs=()
for c in "$fx"/fashion-mnist/test/*/; do files=("$c"*); imgs+=("${files[0]}" "${files[1]}"); done
imgs+=("$fx/images/chelsea.png" "$fx/images/coffee.png")
echo "-- the same files, each side with its own preprocessing (zoo's resize vs timm's PIL resize)"
"$zoo" predict "$work/img" "${imgs[@]}" --top 10 --json > "$work/img.json"
"$py" scripts/python_load_check.py image "$work/img" "$work/img.json" "${imgs[@]}" || true
echo "-- inputs already 96x96 and crop_pct 1.0, so neither side resizes: the weights alone compared"
mkdir -p "$work/img96" "$work/same"
cp "$work/img"/* "$work/img96/"
"$py" - "$work/img96/config.json" "$work/same" "${imgs[@]}" <<'PY'
import json, sys
from PIL import Image
cfg_path, out, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
c = json.load(open(cfg_path))
c["pretrained_cfg"]["crop_pct"] = 1.0
json.dump(c, open(cfg_path, "w"))
for i, p in enumerate(paths):
    Image.open(p).convert("RGB").resize((96, 96), Image.BILINEAR).save(f"{out}/{i:03}.png")
PY
same=("$work"/same/*.png)
"$zoo" predict "$work/img96" "${same[@]}" --top 10 --json > "$work/img96.json"
"$py" scripts/python_load_check.py image "$work/img96" "$work/img96.json" "${same[@]}"

echo "== text: MiniLM fine-tuned on sentiment sentences (--pooling pooler), transformers"
"$zoo" finetune "$fx/checkpoints/all-MiniLM-L6-v2" --data "$fx/sentiment.csv" --out "$work/txt" --pooling pooler --per-class 40 --max-test 100 --epochs 2 > /dev/null 2>&1
texts=("A wonderful, moving film with superb acting." "Dull, predictable and far too long." "It was fine, I guess." "The best thing I have seen all year!" "I want those two hours of my life back.")
"$zoo" predict "$work/txt" "${texts[@]}" --top 2 --json > "$work/txt.json"
"$py" scripts/python_load_check.py text "$work/txt" "$work/txt.json" "${texts[@]}"
