#!/usr/bin/env bash
# Fine-tuning wall time, zoo against the usual PyTorch loop, same data, same machine, same
# thread count (issue 6). Not part of CI (PyTorch stays out of it).
#
#   benches/finetune/bench.sh            # needs a Python with torch + torchvision: $ZOO_TORCH_PYTHON
#
# Data: Fashion-MNIST from the fixtures, 100 training + 25 validation + 50 test images per
# class, at 96². Measures
#   1. head-only fine-tune, 10 epochs, end to end (process start to exit), zoo with a cold
#      feature cache vs PyTorch recomputing the frozen backbone every epoch, alternated
#      $ZOO_BENCH_REPEAT times (default 3), medians; zoo's warm run too;
#   2. one full fine-tuning epoch (every parameter trains, no augmentation) + its validation;
#   3. --freeze stages:8 for 4 epochs, zoo with the frozen prefix computed once against without.
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${ZOO_TORCH_PYTHON:-python3}"
"$py" -c 'import torch, torchvision' || { echo "set ZOO_TORCH_PYTHON to a Python with torch and torchvision" >&2; exit 1; }
threads="${ZOO_BENCH_THREADS:-2}"
export RAYON_NUM_THREADS="$threads"
fx="$(scripts/fetch-fixtures.sh | tail -n 1)"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
work="${ZOO_BENCH_DIR:-$(mktemp -d)}"
mkdir -p "$work"
data="$work/data"
rm -rf "$data"
for c in "$fx"/fashion-mnist/train/*/; do
  c="$(basename "$c")"
  mkdir -p "$data/train/$c" "$data/val/$c" "$data/test/$c"
  mapfile -t tr < <(ls "$fx/fashion-mnist/train/$c" | sort)
  mapfile -t te < <(ls "$fx/fashion-mnist/test/$c" | sort)
  for f in "${tr[@]:0:100}"; do ln -s "$fx/fashion-mnist/train/$c/$f" "$data/train/$c/$f"; done
  for f in "${tr[@]:100:25}"; do ln -s "$fx/fashion-mnist/train/$c/$f" "$data/val/$c/$f"; done
  for f in "${te[@]:0:50}"; do ln -s "$fx/fashion-mnist/test/$c/$f" "$data/test/$c/$f"; done
done
weights="$fx/checkpoints/mobilenet_v2-b0353104.pth"
"$zoo" import "$weights" --arch mobilenet_v2 --labels "$fx/imagenet_classes.txt" --out "$work/mnv2" > /dev/null

now() { date +%s.%N; }
common=(--data "$data" --image-size 96 --batch-size 32 --patience 100 --seed 0 --json)

# Head-only, cold cache vs PyTorch: alternated, $ZOO_BENCH_REPEAT times (default 3), medians.
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
zoo_runs=(); torch_runs=()
for i in $(seq 1 "${ZOO_BENCH_REPEAT:-3}"); do
  echo "== head-only, 10 epochs, run $i: zoo (cold feature cache)"
  rm -rf "$work/cache"
  t0=$(now)
  "$zoo" finetune "$work/mnv2" "${common[@]}" --freeze all --no-augment --epochs 10 --cache-dir "$work/cache" --out "$work/zoo-head" > "$work/zoo-head.json"
  zoo_runs+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN{print a-b}')")
  echo "== head-only, 10 epochs, run $i: PyTorch (backbone recomputed every epoch)"
  t0=$(now)
  "$py" benches/finetune/bench.py head "$weights" "$data" --epochs 10 --threads "$threads" > "$work/torch-head.json"
  torch_runs+=("$(awk -v a="$(now)" -v b="$t0" 'BEGIN{print a-b}')")
done
zoo_head=$(median "${zoo_runs[@]}")
torch_head=$(median "${torch_runs[@]}")
echo "   zoo: ${zoo_runs[*]} s; PyTorch: ${torch_runs[*]} s"
echo "== head-only, 10 epochs: zoo (warm feature cache)"
t0=$(now)
"$zoo" finetune "$work/mnv2" "${common[@]}" --freeze all --no-augment --epochs 10 --cache-dir "$work/cache" --out "$work/zoo-head-warm" > "$work/zoo-head-warm.json"
zoo_warm=$(awk -v a="$(now)" -v b="$t0" 'BEGIN{print a-b}')

echo "== one full fine-tuning epoch: zoo"
"$zoo" finetune "$work/mnv2" "${common[@]}" --freeze none --no-augment --epochs 1 --out "$work/zoo-full" > "$work/zoo-full.json"
jq_py() { "$py" -c "import json,sys; d=[json.loads(l) for l in open(sys.argv[1])]; print($1)" "$2"; }
zoo_epoch=$(jq_py 'd[0]["seconds"]' "$work/zoo-full/metrics.jsonl")
echo "== one full fine-tuning epoch: PyTorch"
"$py" benches/finetune/bench.py full "$weights" "$data" --epochs 1 --threads "$threads" > "$work/torch-full.json"
torch_epoch=$(jq_py 'd[0]["epochs"][0]["seconds"]' "$work/torch-full.json")

echo "== --freeze stages:8, 4 epochs, end to end: zoo with the frozen prefix computed once, and without"
t0=$(now)
"$zoo" finetune "$work/mnv2" "${common[@]}" --freeze stages:8 --no-augment --epochs 4 --cache-dir "$work/cache-prefix" --out "$work/zoo-prefix" > "$work/zoo-prefix.json"
zoo_prefix=$(awk -v a="$(now)" -v b="$t0" 'BEGIN{print a-b}')
t0=$(now)
"$zoo" finetune "$work/mnv2" "${common[@]}" --freeze stages:8 --no-augment --epochs 4 --no-prefix-cache --out "$work/zoo-noprefix" > "$work/zoo-noprefix.json"
zoo_noprefix=$(awk -v a="$(now)" -v b="$t0" 'BEGIN{print a-b}')
cmp "$work/zoo-prefix/model.safetensors" "$work/zoo-noprefix/model.safetensors" && echo "   the same model bytes"

acc() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["eval"]["accuracy"])' "$1"; }
tacc() { jq_py 'd[0]["test_accuracy"]' "$1"; }
echo
printf '%-44s %10s %10s %8s   %s\n' "task (threads: $threads)" zoo_s torch_s ratio "test accuracy zoo / torch"
printf '%-44s %10.1f %10.1f %7.2fx   %s / %s\n' "head-only, 10 epochs, end to end (cold, median)" "$zoo_head" "$torch_head" "$(awk -v a="$torch_head" -v b="$zoo_head" 'BEGIN{print a/b}')" "$(acc "$work/zoo-head.json")" "$(tacc "$work/torch-head.json")"
printf '%-44s %10.1f %10.1f %7.2fx\n' "head-only, 10 epochs, end to end (warm)" "$zoo_warm" "$torch_head" "$(awk -v a="$torch_head" -v b="$zoo_warm" 'BEGIN{print a/b}')"
printf '%-44s %10.1f %10.1f %7.2fx   %s / %s\n' "one full fine-tuning epoch (+ validation)" "$zoo_epoch" "$torch_epoch" "$(awk -v a="$torch_epoch" -v b="$zoo_epoch" 'BEGIN{print a/b}')" "$(acc "$work/zoo-full.json")" "$(tacc "$work/torch-full.json")"
printf '%-44s %10.1f %10.1f %7.2fx   (zoo without the prefix cache in the torch_s column)\n' "stages:8, 4 epochs, prefix computed once" "$zoo_prefix" "$zoo_noprefix" "$(awk -v a="$zoo_noprefix" -v b="$zoo_prefix" 'BEGIN{print a/b}')"
echo "(ratio = PyTorch seconds / zoo seconds; above 1 means zoo is faster; files in $work)"
