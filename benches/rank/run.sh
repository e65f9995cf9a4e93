#!/usr/bin/env bash
# Issue 17: does `zoo rank` pick the checkpoint that fine-tunes best? Not part of CI.
#
#   benches/rank/run.sh [WORK]      # SEEDS="0 1" for more ground-truth seeds
#
# A small zoo of real, differently pre-trained checkpoints (prepare.py makes the tasks):
#   images  torchvision MobileNetV2 and EfficientNet-Lite0 (ImageNet); each fine-tuned by zoo on
#           fashion-A and on digits-A; MobileNetV2 trained from scratch on fashion-A and
#           EfficientNet-Lite0 from scratch on digits-A                        (8 candidates)
#   texts   all-MiniLM-L6-v2; fine-tuned on IMDb sentiment and on BBC-A topics; the same
#           architecture trained from scratch on IMDb                          (4 candidates)
# ranked by `zoo rank` on target tasks none was trained on (fashion-B, digits-B; Yelp, BBC-B).
# Ground truth: each candidate's test accuracy after fine-tuning on the target with one fixed
# recipe per modality. analyze.py reports weighted Kendall tau (scipy.stats.weightedtau, as
# LogME/SFDA report it) of each score and of the naive priors (parameter count, the
# candidate's own published accuracy), and the regret of fine-tuning the top-ranked candidate.
set -euo pipefail
cd "$(dirname "$0")/../.."
work="${1:-/var/tmp/zoo-rank}"
seeds="${SEEDS:-0}"
cache="${ZOO_CACHE:-$HOME/.cache/checkpoint-zoo}"
py="${ZOO_RANK_PYTHON:-$cache/venv-compat-torch-2.15.0-st-6.2.0/bin/python}"
"$py" -c 'import scipy, PIL' || { echo "set ZOO_RANK_PYTHON to a Python with scipy and pillow (scripts/compat-check.sh makes one)" >&2; exit 1; }
fx="$(scripts/fetch-fixtures.sh | tail -n 1)"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
mkdir -p "$work/models" "$work/gt" "$work/rank"
export ZOO_FEATURE_CACHE="$work/features"
"$py" benches/rank/prepare.py "$fx" "$work" > /dev/null
d="$work/data"
m="$work/models"

# Candidates: a model folder per name, with the run's summary (its own accuracy) next to it.
make() { # NAME BASE ARGS...
  local name="$1" base="$2"; shift 2
  [ -e "$m/$name/.done" ] && return
  echo "== candidate $name" >&2
  "$zoo" finetune "$base" --out "$m/$name" --json -q "$@" > "$m/$name.json"
  touch "$m/$name/.done"
}
[ -e "$m/mobilenet_v2/.done" ] || {
  "$zoo" import "$fx/checkpoints/mobilenet_v2-b0353104.pth" --arch mobilenet_v2 \
    --labels "$fx/imagenet_classes.txt" --out "$m/mobilenet_v2" > /dev/null
  touch "$m/mobilenet_v2/.done"; }
[ -e "$m/efficientnet_lite0/.done" ] || {
  "$zoo" import "$fx/checkpoints/efficientnet-lite0-57934424.pth" --arch efficientnet_lite0 \
    --labels "$fx/imagenet_classes.txt" --out "$m/efficientnet_lite0" > /dev/null
  touch "$m/efficientnet_lite0/.done"; }
img=(--image-size 64 --batch-size 32 --patience 3)
for a in mobilenet_v2 efficientnet_lite0; do
  make "$a-fashion-A" "$m/$a" --data "$d/fashion-A" "${img[@]}" --epochs 6 --lr 1e-3
  make "$a-digits-A" "$m/$a" --data "$d/digits-A" "${img[@]}" --epochs 6 --lr 1e-3
done
make mobilenet_v2-scratch-fashion-A "$m/mobilenet_v2" --data "$d/fashion-A" "${img[@]}" --epochs 15 --lr 3e-3 --from-scratch
make efficientnet_lite0-scratch-digits-A "$m/efficientnet_lite0" --data "$d/digits-A" "${img[@]}" --epochs 15 --lr 3e-3 --from-scratch
minilm="$fx/checkpoints/all-MiniLM-L6-v2"
txt=(--batch-size 16 --patience 3 --max-test 100)
make minilm-imdb "$minilm" --data "$d/imdb.csv" "${txt[@]}" --epochs 3 --lr 5e-5
make minilm-bbc-A "$minilm" --data "$d/bbc-A.csv" "${txt[@]}" --epochs 3 --lr 5e-5
make minilm-scratch-imdb "$minilm" --data "$d/imdb.csv" "${txt[@]}" --epochs 8 --lr 3e-4 --from-scratch
[ -e "$m/minilm" ] || ln -s "$minilm" "$m/minilm"

images=(mobilenet_v2 efficientnet_lite0 mobilenet_v2-fashion-A efficientnet_lite0-fashion-A
  mobilenet_v2-digits-A efficientnet_lite0-digits-A mobilenet_v2-scratch-fashion-A
  efficientnet_lite0-scratch-digits-A)
texts=(minilm minilm-imdb minilm-bbc-A minilm-scratch-imdb)

# zoo rank on each target's training data (features not cached, so the seconds are real).
for t in fashion-B digits-B; do
  [ -s "$work/rank/$t.json" ] || (cd "$m" && "$zoo" rank --data "$d/$t/train" --image-size 64 --no-cache --json "${images[@]}") > "$work/rank/$t.json"
done
for t in yelp bbc-B; do
  [ -s "$work/rank/$t.json" ] || (cd "$m" && "$zoo" rank --data "$d/$t-rank.csv" --no-cache --json "${texts[@]}") > "$work/rank/$t.json"
done

# Ground truth: one fixed recipe per modality, every candidate, every target, every seed.
gt() { # TARGET CANDIDATE SEED ARGS...
  local t="$1" c="$2" s="$3"; shift 3
  local f="$work/gt/$t/$c-$s.json"
  [ -s "$f" ] && return
  mkdir -p "$work/gt/$t"
  echo "== ground truth $t $c seed $s" >&2
  "$zoo" finetune "$m/$c" --out "$work/gt/$t/$c-$s" --seed "$s" --json -q "$@" > "$f.tmp"
  mv "$f.tmp" "$f"
  rm -rf "$work/gt/$t/$c-$s"
}
for s in $seeds; do
  for t in fashion-B digits-B; do
    for c in "${images[@]}"; do
      gt "$t" "$c" "$s" --data "$d/$t" "${img[@]}" --epochs 8 --lr 1e-3
    done
  done
  for t in yelp bbc-B; do
    for c in "${texts[@]}"; do
      gt "$t" "$c" "$s" --data "$d/$t.csv" --per-class 40 --max-test 200 --batch-size 16 --patience 3 --epochs 6 --lr 1e-4
    done
  done
done
"$py" benches/rank/analyze.py "$work" benches/rank
