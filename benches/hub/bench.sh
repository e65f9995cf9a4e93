#!/usr/bin/env bash
# Hub benchmark (not part of CI): bytes served on loopback and `resolve` HEAD latency.
#
#   benches/hub/bench.sh [SIZE_MIB]      # default 1024 (a 1 GiB file)
#
# 1. curl downloads the same SIZE_MIB file from `zoo serve` and from nginx (3 runs each,
#    median), and prints the throughput ratio zoo/nginx.
# 2. hey sends HEAD /resolve/main/FILE at 1, 16 and 128 connections for 10 s each and
#    prints p50 and p99 latency and requests per second.
# Needs: nginx, hey, curl, python3 (installed with apt-get when missing). Builds zoo in release.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-1024}"
for tool in nginx hey curl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx hey curl >/dev/null; break; }
done
cargo build --release --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-target}/release/zoo"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; nginx -c "$work/nginx.conf" -s stop 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== preparing a ${size_mib} MiB file"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/big.bin"
oid="$(sha256sum "$work/big.bin" | cut -d' ' -f1)"
bytes="$(stat -c %s "$work/big.bin")"

"$zoo" admin user add bench --data "$work/data" >/dev/null
token="$("$zoo" admin token create --user bench --scope write --data "$work/data")"
"$zoo" serve --data "$work/data" --addr 127.0.0.1:18700 >"$work/serve.log" 2>&1 &
sleep 1
zoo_url=http://127.0.0.1:18700
auth="Authorization: Bearer $token"
curl -sf -H "$auth" -H 'Content-Type: application/json' -d '{"name":"bench/big"}' "$zoo_url/api/repos/create" >/dev/null
href="$(curl -sf -H "$auth" -H 'Content-Type: application/json' \
  -d "{\"operation\":\"upload\",\"objects\":[{\"oid\":\"$oid\",\"size\":$bytes}]}" \
  "$zoo_url/bench/big.git/info/lfs/objects/batch" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"][0]["actions"]["upload"]["href"])')"
curl -sf -T "$work/big.bin" "$href" >/dev/null
printf '%s\n%s\n' '{"key":"header","value":{"summary":"bench"}}' \
  "{\"key\":\"lfsFile\",\"value\":{\"path\":\"big.bin\",\"algo\":\"sha256\",\"oid\":\"$oid\",\"size\":$bytes}}" |
  curl -sf -H "$auth" -H 'Content-Type: application/x-ndjson' --data-binary @- "$zoo_url/api/models/bench/big/commit/main" >/dev/null

mkdir -p "$work/www"
ln "$work/big.bin" "$work/www/big.bin"
cat >"$work/nginx.conf" <<CONF
daemon on;
user root;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  server { listen 127.0.0.1:18701; root $work/www; }
}
CONF
nginx -c "$work/nginx.conf"
sleep 0.5

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
speed() {
  for _ in 1 2 3; do curl -s -o /dev/null -w '%{speed_download}\n' "$1"; done | median
}
echo "== curl, ${size_mib} MiB, median of 3"
zs="$(speed "$zoo_url/bench/big/resolve/main/big.bin")"
ns="$(speed "http://127.0.0.1:18701/big.bin")"
python3 - "$zs" "$ns" <<'PY'
import sys
z, n = map(float, sys.argv[1:])
print(f"zoo serve: {z/2**20:8.0f} MiB/s")
print(f"nginx:     {n/2**20:8.0f} MiB/s")
print(f"ratio zoo/nginx: {z/n:.2f}")
PY

echo "== HEAD /resolve latency (hey), 10 s each"
for c in 1 16 128; do
  out="$(hey -z 10s -c "$c" -m HEAD "$zoo_url/bench/big/resolve/main/big.bin")"
  p50="$(echo "$out" | awk '$1=="50%"{print $3}')"
  p99="$(echo "$out" | awk '$1=="99%"{print $3}')"
  rps="$(echo "$out" | awk '/Requests\/sec/{print $2}')"
  codes="$(echo "$out" | awk '/responses/{printf "%s %s ", $1, $2}')"
  echo "connections=$c  p50=${p50}s  p99=${p99}s  req/s=$rps  $codes"
done
