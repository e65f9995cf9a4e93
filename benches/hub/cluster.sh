#!/usr/bin/env bash
# Issue 14's benchmark (not part of CI): one replica on SQLite + files against three replicas
# on PostgreSQL + Ceph RGW behind nginx, on loopback, same machine, same client.
#
#   benches/hub/cluster.sh [SIZE_MIB] [SMALL_FILES]     # defaults 256 and 1000
#
# For each setup: upload throughput of one SIZE_MIB LFS file (curl PUT to the signed link);
# download throughput of it at 1, 16 and 128 concurrent clients (curl; BIG_CLIENTS="1 16 128");
# for the cluster also through a fourth replica started with --blobs-redirect (curl -L: the
# replica's 302, then the presigned URL straight from RGW) against the proxying replicas
# behind nginx; SMALL_FILES small files
# (1 KiB, one commit) fetched at 1, 16 and 128 concurrent clients (curl via xargs -P: files/s);
# commit latency of 50 one-file commits in a row (p50, p99). Uses the build of `zoo` that
# scripts/test.sh makes (its dependencies at opt-level 3); prints a table.
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib="${1:-256}"
small="${2:-1000}"
big_clients="${BIG_CLIENTS:-1 16 128}"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
work="$(mktemp -d)"
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/services/nginx.sh stop "$work/cluster" 2>/dev/null || true
  scripts/services/rgw.sh stop "$work/cluster" 2>/dev/null || true
  scripts/services/postgres.sh stop "$work/cluster" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "nothing on $1" >&2; exit 1; }
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/big.bin"
oid="$(sha256sum "$work/big.bin" | cut -d' ' -f1)"
bytes="$(stat -c %s "$work/big.bin")"
results="$work/results.txt"
: > "$results"

bench() { # NAME ENDPOINT TOKEN [REDIRECTING_REPLICA]
  local name="$1" url="$2" token="$3" auth="Authorization: Bearer $3" redirect="${4:-}"
  curl -sf -H "$auth" -H 'Content-Type: application/json' -d '{"name":"bench/big"}' "$url/api/repos/create" >/dev/null
  local href t0 t1
  href="$(curl -sf -H "$auth" -H 'Content-Type: application/json' \
    -d "{\"operation\":\"upload\",\"objects\":[{\"oid\":\"$oid\",\"size\":$bytes}]}" \
    "$url/bench/big.git/info/lfs/objects/batch" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"][0]["actions"]["upload"]["href"])')"
  t0=$(date +%s.%N); curl -sf -T "$work/big.bin" "$href" >/dev/null; t1=$(date +%s.%N)
  echo "$name upload_MBps $(python3 -c "print(round($bytes/1e6/($t1-$t0),1))")" >> "$results"
  printf '%s\n%s\n' '{"key":"header","value":{"summary":"big"}}' \
    "{\"key\":\"lfsFile\",\"value\":{\"path\":\"big.bin\",\"algo\":\"sha256\",\"oid\":\"$oid\",\"size\":$bytes}}" |
    curl -sf -H "$auth" -H 'Content-Type: application/x-ndjson' --data-binary @- "$url/api/models/bench/big/commit/main" >/dev/null
  for c in $big_clients; do
    t0=$(date +%s.%N)
    seq 1 "$c" | xargs -P "$c" -I{} curl -sSf -o /dev/null "$url/bench/big/resolve/main/big.bin"
    t1=$(date +%s.%N)
    echo "$name download_c${c}_MBps $(python3 -c "print(round($c*$bytes/1e6/($t1-$t0),1))")" >> "$results"
    if [ -n "$redirect" ]; then
      # The same file through the redirecting replica: its 302, then RGW itself.
      t0=$(date +%s.%N)
      seq 1 "$c" | xargs -P "$c" -I{} curl -sSfL -o /dev/null "$redirect/bench/big/resolve/main/big.bin"
      t1=$(date +%s.%N)
      echo "$name redirect_c${c}_MBps $(python3 -c "print(round($c*$bytes/1e6/($t1-$t0),1))")" >> "$results"
    fi
  done
  # Small files, one commit.
  python3 - "$small" > "$work/small.ndjson" <<'PY'
import base64, json, sys
n = int(sys.argv[1])
print(json.dumps({"key": "header", "value": {"summary": "small files"}}))
for i in range(n):
    data = (f"file {i} " * 200)[:1024].encode()
    print(json.dumps({"key": "file", "value": {"path": f"small/f{i}.txt", "content": base64.b64encode(data).decode(), "encoding": "base64"}}))
PY
  curl -sf -H "$auth" -H 'Content-Type: application/x-ndjson' --data-binary @"$work/small.ndjson" "$url/api/models/bench/big/commit/main" >/dev/null
  for c in 1 16 128; do
    t0=$(date +%s.%N)
    seq 0 $((small - 1)) | xargs -P "$c" -I{} curl -sf -o /dev/null "$url/bench/big/resolve/main/small/f{}.txt"
    t1=$(date +%s.%N)
    echo "$name small_c${c}_files_per_s $(python3 -c "print(round($small/($t1-$t0)))")" >> "$results"
  done
  # Commit latency.
  for i in $(seq 1 50); do
    printf '%s\n%s\n' '{"key":"header","value":{"summary":"c"}}' \
      "{\"key\":\"file\",\"value\":{\"path\":\"c.txt\",\"content\":\"$(echo "commit $i" | base64)\",\"encoding\":\"base64\"}}" |
      curl -sf -o /dev/null -w '%{time_total}\n' -H "$auth" -H 'Content-Type: application/x-ndjson' --data-binary @- "$url/api/models/bench/big/commit/main"
  done > "$work/commits.txt"
  python3 - "$name" "$work/commits.txt" >> "$results" <<'PY'
import sys
v = sorted(float(x) * 1000 for x in open(sys.argv[2]))
print(sys.argv[1], "commit_p50_ms", round(v[len(v) // 2], 1))
print(sys.argv[1], "commit_p99_ms", round(v[min(len(v) - 1, int(len(v) * 0.99))], 1))
PY
}

echo "== one replica: SQLite + files"
"$zoo" admin user add bench --data "$work/single" >/dev/null
token="$("$zoo" admin token create --user bench --scope write --data "$work/single")"
port="$(free_port)"
"$zoo" serve --data "$work/single" --addr "127.0.0.1:$port" > "$work/single.log" 2>&1 &
pids+=($!)
wait_port "$port"
bench single "http://127.0.0.1:$port" "$token"
kill "${pids[@]}"; pids=()

echo "== three replicas: PostgreSQL + Ceph RGW behind nginx"
mkdir -p "$work/cluster"
db="$(scripts/services/postgres.sh start "$work/cluster")"
read -r endpoint key secret bucket < <(scripts/services/rgw.sh start "$work/cluster" | tail -n 1)
export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_REGION=us-east-1
ups=()
for i in 1 2 3; do
  p="$(free_port)"
  "$zoo" serve --data "$work/cluster/r$i" --addr "127.0.0.1:$p" --database "$db" --blobs "s3://$bucket/zoo" > "$work/r$i.log" 2>&1 &
  pids+=($!)
  ups+=("127.0.0.1:$p")
done
p="$(free_port)"
"$zoo" serve --data "$work/cluster/r4" --addr "127.0.0.1:$p" --database "$db" --blobs "s3://$bucket/zoo" --blobs-redirect > "$work/r4.log" 2>&1 &
pids+=($!)
redirecting="http://127.0.0.1:$p"
wait_port "$p"
for u in "${ups[@]}"; do wait_port "${u#*:}"; done
lb="$(scripts/services/nginx.sh start "$work/cluster" "$(free_port)" "${ups[@]}")"
"$zoo" admin user add bench --data "$work/admin" --database "$db" >/dev/null
token="$("$zoo" admin token create --user bench --scope write --data "$work/admin" --database "$db")"
bench cluster "$lb" "$token" "$redirecting"

echo
python3 - "$results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    setup, metric, value = line.split()
    rows.setdefault(metric, {})[setup] = float(value)
print(f"{'metric':<28} {'1 replica SQLite+files':>24} {'3 replicas PG+RGW':>20} {'ratio':>7}")
for m, v in rows.items():
    a, b = v.get("single"), v.get("cluster")
    r = f"{b / a:.2f}" if a and b else "-"
    print(f"{m:<28} {a if a is not None else '-':>24} {b if b is not None else '-':>20} {r:>7}")
PY
