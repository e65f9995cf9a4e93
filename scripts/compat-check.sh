#!/usr/bin/env bash
# Issue 13: what zoo publishes loads in the tool its card names, with zoo's logits.
# For every text combination (BERT, RoBERTa, DistilBERT × pooling mean/cls/max/pooler ×
# linear/MLP head) and every image architecture (linear and MLP heads), fine-tunes a tiny
# model with zoo, pushes it to a `zoo serve` on 127.0.0.1, loads it *from the hub* with
# transformers / sentence-transformers / timm (HF_ENDPOINT), and compares the logits with
# `zoo predict --json` (max |diff| <= 1e-4 x max |logit|). Run by scripts/test.sh.
#
# The Python tools live in a venv cached outside the clone (PyPI's torch wheel, used on the
# CPU: about 3 GB downloaded once).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${ZOO_CACHE:-$HOME/.cache/checkpoint-zoo}"
pins=(torch==2.15.0 torchvision==0.29.2 timm==1.0.31 transformers==5.25.0
  sentence-transformers==6.2.0 peft==0.21.2 safetensors==0.8.0 pillow)
venv="$cache/venv-compat-torch-2.15.0-st-6.2.0"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import torch, timm, transformers, sentence_transformers, peft' 2>/dev/null; then
  echo "== compat: installing ${pins[*]} into $venv (once)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}"
fi
py="$venv/bin/python"

fx="$(scripts/fetch-fixtures.sh | tail -n 1)"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
work="$(mktemp -d)"
serve_pid=""
cleanup() { [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$zoo" serve --addr 127.0.0.1:0 --data "$work/hub" > "$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do
  grep -q "http://" "$work/serve.log" 2>/dev/null && break
  sleep 0.1
done
export HF_ENDPOINT="$(grep -o 'http://[^ ]*' "$work/serve.log" | head -n 1)"
"$zoo" admin user add zoo --data "$work/hub" > /dev/null
export HF_TOKEN="$("$zoo" admin token create --user zoo --scope write --data "$work/hub")"
# Both sides read the hub through their own caches under $work; nothing from huggingface.co.
export HF_HOME="$work/hf-home" HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_DISABLE_PROGRESS_BARS=1 TRANSFORMERS_VERBOSITY=error TRANSFORMERS_NO_ADVISORY_WARNINGS=1
export ZOO_FEATURE_CACHE="$work/features"
"$py" scripts/compat_check.py --zoo "$zoo" --fixtures "$fx" --work "$work" "$@"
