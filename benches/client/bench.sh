#!/usr/bin/env bash
# Client benchmark (not part of CI): wall time to pull from `zoo serve` on loopback,
#   (a) a repository with one SIZE_MIB file (default 1024: 1 GiB),
#   (b) a repository with 200 small files (64 KiB each),
# with `zoo pull`, `huggingface_hub.snapshot_download` (1.33.0) and plain `curl`, same server,
# same run, a fresh cache for every run (median of 3), and the ratios.
#
#   benches/client/bench.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-1024}"
cargo build --release --locked -q -p zoo-cli
zoo="$(pwd)/${CARGO_TARGET_DIR:-target}/release/zoo"
venv="${ZOO_VENV:-$HOME/.cache/checkpoint-zoo/venv-hf-1.33.0}"
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q huggingface_hub==1.33.0; }
py="$venv/bin/python"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

"$zoo" admin user add bench --data "$work/data" >/dev/null
export HF_TOKEN="$("$zoo" admin token create --user bench --scope write --data "$work/data")"
"$zoo" serve --data "$work/data" --addr 127.0.0.1:18710 >"$work/serve.log" 2>&1 &
sleep 1
export HF_ENDPOINT=http://127.0.0.1:18710 HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1

mkdir -p "$work/big" "$work/many"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/big/big.bin"
for i in $(seq -w 1 200); do head -c 65536 /dev/urandom >"$work/many/f$i.dat"; done
"$zoo" push -q "$work/big" bench/big >/dev/null
"$zoo" push -q "$work/many" bench/many >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # command... → seconds
  local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
run3() { for i in 1 2 3; do rm -rf "$work/cache"; timeit "$@"; done | median; }

zoo_pull() { HF_HUB_CACHE="$work/cache" "$zoo" pull -q "$1"; }
py_pull() { HF_HUB_CACHE="$work/cache" "$py" -c "from huggingface_hub import snapshot_download; snapshot_download('$1')"; }
curl_big() { mkdir -p "$work/cache"; curl -sf -o "$work/cache/big.bin" "$HF_ENDPOINT/bench/big/resolve/main/big.bin"; }
curl_many() {
  mkdir -p "$work/cache"
  for i in $(seq -w 1 200); do curl -sf -o "$work/cache/f$i.dat" "$HF_ENDPOINT/bench/many/resolve/main/f$i.dat"; done
}

report() {
  local name=$1 z=$2 p=$3 c=$4
  python3 - "$name" "$z" "$p" "$c" <<'PY'
import sys
name, z, p, c = sys.argv[1], *map(float, sys.argv[2:])
print(f"{name}: zoo pull {z:.2f} s, snapshot_download {p:.2f} s, curl {c:.2f} s; "
      f"snapshot_download/zoo = {p/z:.2f}x, curl/zoo = {c/z:.2f}x")
PY
}
command -v bc >/dev/null || { apt-get install -y -qq bc >/dev/null; }
report "one ${size_mib} MiB file" "$(run3 zoo_pull bench/big)" "$(run3 py_pull bench/big)" "$(run3 curl_big)"
report "200 files of 64 KiB" "$(run3 zoo_pull bench/many)" "$(run3 py_pull bench/many)" "$(run3 curl_many)"
