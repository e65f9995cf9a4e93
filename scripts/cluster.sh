#!/usr/bin/env bash
# A hub of several replicas on loopback, to try the team-scale shape:
#
#   scripts/cluster.sh [--replicas N] [--port PORT] [--dir DIR] [--s3]
#
# starts PostgreSQL (metadata), N `zoo serve` replicas (default 3) sharing it and one blob
# store — a folder, or with --s3 a bucket of a local Ceph RGW (scripts/services/rgw.sh) — and
# nginx in front (round robin) on 127.0.0.1:PORT (default 8080); creates the user
# `zoo` with a write token, prints the endpoint and the token, and keeps running until Ctrl-C,
# which stops everything. DIR (default: a temporary folder, removed at the end) holds the data.
set -euo pipefail
cd "$(dirname "$0")/.."
replicas=3
port=8080
dir=""
s3=0
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) replicas="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --s3) s3=1; shift ;;
    *) echo "usage: $0 [--replicas N] [--port PORT] [--dir DIR] [--s3]" >&2; exit 2 ;;
  esac
done
keep=1
if [ -z "$dir" ]; then dir="$(mktemp -d)"; keep=0; fi
mkdir -p "$dir"
chmod 755 "$dir"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/services/nginx.sh stop "$dir" || true
  scripts/services/postgres.sh stop "$dir" || true
  [ "$s3" = 0 ] || scripts/services/rgw.sh stop "$dir" || true
  [ "$keep" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT INT TERM
db="$(scripts/services/postgres.sh start "$dir")"
blobs="file:$dir/blobs"
if [ "$s3" = 1 ]; then
  read -r endpoint key secret bucket < <(scripts/services/rgw.sh start "$dir" | tail -n 1)
  export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1
  blobs="s3://$bucket/zoo"
fi
upstreams=()
for i in $(seq 1 "$replicas"); do
  p="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  "$zoo" serve --addr "127.0.0.1:$p" --data "$dir/replica-$i" --database "$db" \
    --blobs "$blobs" > "$dir/replica-$i.log" 2>&1 &
  pids+=($!)
  upstreams+=("127.0.0.1:$p")
done
for u in "${upstreams[@]}"; do
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${u%:*}/${u#*:}") 2>/dev/null && break; sleep 0.1; done
done
url="$(scripts/services/nginx.sh start "$dir" "$port" "${upstreams[@]}")"
"$zoo" admin user add zoo --data "$dir/admin" --database "$db" > /dev/null 2>&1 || true
token="$("$zoo" admin token create --user zoo --scope write --data "$dir/admin" --database "$db")"
cat <<MSG
hub: $url  ($replicas replicas: ${upstreams[*]}; metadata $db; blobs $blobs)
  export HF_ENDPOINT=$url HF_TOKEN=$token
  zoo push DIR zoo/name        # or huggingface_hub, transformers, timm with HF_ENDPOINT
Ctrl-C stops it all.
MSG
wait
