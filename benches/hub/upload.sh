#!/usr/bin/env bash
# Upload throughput, Xet against classic LFS, with the unmodified huggingface_hub (1.33.0 with
# hf_xet) on loopback, and the dedup figure (benches/hub/upload.py). Not part of CI.
#
#   benches/hub/upload.sh [SIZE_MIB] [ROUNDS]     # defaults 1024 and 2; alternated rounds
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-1024}"
rounds="${2:-2}"
venv="${ZOO_VENV:-$HOME/.cache/checkpoint-zoo/venv-hf-1.33.0-datasets-5.2.0}"
[ -x "$venv/bin/python" ] || { echo "run scripts/test.sh once (it makes $venv)" >&2; exit 1; }
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; tail -5 "$work/serve.log" >&2; rm -rf "$work"' EXIT
"$zoo" admin user add bench --data "$work/data" >/dev/null
token="$("$zoo" admin token create --user bench --scope write --data "$work/data")"
"$zoo" serve --data "$work/data" --addr 127.0.0.1:18710 >"$work/serve.log" 2>&1 &
sleep 1
for r in $(seq 1 "$rounds"); do
  for mode in xet lfs; do
    env_xet=()
    [ "$mode" = lfs ] && env_xet=(HF_HUB_DISABLE_XET=1)
    env "${env_xet[@]}" MODE="$mode" SIZE_MIB="$size_mib" ZOO_URL=http://127.0.0.1:18710 ZOO_TOKEN="$token" \
      ZOO_DATA="$work/data" ZOO_WORK="$work" HF_HOME="$work/hf-home-$mode" \
      HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 \
      "$venv/bin/python" benches/hub/upload.py
  done
done
