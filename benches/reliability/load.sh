#!/usr/bin/env bash
# Issue 16's load figure (not part of CI; loopback only; stops by itself): CLIENTS concurrent
# clients (oha) for SECONDS each on `resolve` HEAD, `resolve` GET (a 1 MiB file) and search,
# against one `zoo serve` on SQLite + files with REPOS repositories. Prints per target the
# requests, the non-2xx/failed count (must be 0), p50/p99 latency and requests/s, and the
# server's resident memory over the whole run (sampled every second).
#
#   benches/reliability/load.sh [CLIENTS] [SECONDS] [REPOS]     # defaults 500 60 200
set -euo pipefail
cd "$(dirname "$0")/../.."
clients="${1:-500}"; seconds="${2:-60}"; repos="${3:-200}"
tools="${ZOO_CACHE:-$HOME/.cache/checkpoint-zoo}/cargo-tools"
[ -x "$tools/bin/oha" ] || cargo install -q --locked oha --root "$tools"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
work="$(mktemp -d)"
pid=""; sampler=""
cleanup() { [ -n "$sampler" ] && kill "$sampler" 2>/dev/null; [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
ulimit -n 65536 2>/dev/null || true
"$zoo" admin user add load --data "$work/hub" >/dev/null
token="$("$zoo" admin token create --user load --scope write --data "$work/hub")"
"$zoo" serve --data "$work/hub" --addr 127.0.0.1:0 > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "http://" "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$work/serve.log" | head -n 1)"
python3 - "$url" "$token" "$repos" <<'PY'
import base64, json, os, sys, urllib.request
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def post(path, body, ctype="application/json"):
    req = urllib.request.Request(url + path, data=body, headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    urllib.request.urlopen(req).read()
for i in range(n):
    name = f"load/model-{i:04d}"
    post("/api/repos/create", json.dumps({"name": name}).encode())
    files = [("README.md", f"---\nlicense: mit\npipeline_tag: image-classification\n---\n# {i}\n".encode())]
    if i == 0:
        files.append(("weights.bin", os.urandom(1 << 20)))
    lines = [json.dumps({"key": "header", "value": {"summary": "seed"}})]
    lines += [json.dumps({"key": "file", "value": {"path": p, "content": base64.b64encode(b).decode(), "encoding": "base64"}}) for p, b in files]
    post(f"/api/models/{name}/commit/main", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
PY
( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null; sleep 1; done ) > "$work/rss.txt" &
sampler=$!
rss() { awk '/VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$pid/status"; }
run() { # NAME METHOD PATH
  "$tools/bin/oha" -z "${seconds}s" -c "$clients" -m "$2" --no-tui --output-format json "$url$3" > "$work/$1.json"
  python3 - "$1" "$work/$1.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
codes = r.get("statusCodeDistribution", {})
ok = sum(v for k, v in codes.items() if k.startswith("2"))
bad = sum(v for k, v in codes.items() if not k.startswith("2"))
dist = r.get("errorDistribution", {})
# oha counts the requests still in flight when the time is up as "aborted due to deadline":
# the client stopped them, the server did not fail them.
errors = sum(v for k, v in dist.items() if "deadline" not in k)
other = {k: v for k, v in dist.items() if "deadline" not in k}
pct = r.get("latencyPercentiles", {})
s = r["summary"]
print(f"{sys.argv[1]:<14} {ok + bad + errors:>9} {bad + errors:>7} {pct.get('p50', 0) * 1000:>9.1f} {pct.get('p99', 0) * 1000:>9.1f} {s.get('requestsPerSec', 0):>9.0f}  {dict(list(other.items())[:3]) if other else ''}{codes if bad else ''}")
PY
}
printf '%-14s %9s %7s %9s %9s %9s\n' target requests errors p50_ms p99_ms req_per_s
run resolve-HEAD HEAD /load/model-0000/resolve/main/weights.bin; echo "   server RSS after: $(rss)"
run resolve-GET GET /load/model-0000/resolve/main/weights.bin; echo "   server RSS after: $(rss)"
run search GET "/api/models?search=model-01&filter=license:mit&sort=downloads&limit=20"; echo "   server RSS after: $(rss)"
kill "$sampler" 2>/dev/null; sampler=""
python3 - "$work/rss.txt" "$clients" "$seconds" "$repos" <<'PY'
import sys
v = [int(x) for x in open(sys.argv[1]) if x.strip()]
print(f"server RSS over the run: start {v[0] / 1024:.0f} MB, max {max(v) / 1024:.0f} MB, end {v[-1] / 1024:.0f} MB ({len(v)} samples); {sys.argv[2]} clients, {sys.argv[3]} s per target, {sys.argv[4]} repositories")
PY
