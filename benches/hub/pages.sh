#!/usr/bin/env bash
# Issue 15's figure (not part of CI): how fast the hub's pages answer on this machine.
#
#   benches/hub/pages.sh [REPOS]     # default 500
#
# Starts `zoo serve` (SQLite + files), creates REPOS model repositories with cards (task, data
# set, licence, base model, model-index results) through the commit API, then times 50
# sequential GETs of each page with curl and prints p50/p99 in milliseconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
repos="${1:-500}"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
"$zoo" admin user add bench --data "$work/hub" >/dev/null
token="$("$zoo" admin token create --user bench --scope write --data "$work/hub")"
"$zoo" serve --data "$work/hub" --addr 127.0.0.1:0 > "$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "http://" "$work/serve.log" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$work/serve.log" | head -n 1)"
python3 - "$url" "$token" "$repos" <<'PY'
import base64, json, sys, urllib.request
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def post(path, body, ctype="application/json"):
    req = urllib.request.Request(url + path, data=body, headers={"Authorization": "Bearer " + token, "Content-Type": ctype})
    urllib.request.urlopen(req).read()
tasks = ["image-classification", "text-classification", "feature-extraction"]
for i in range(n):
    name = f"bench/model-{i:04d}"
    post("/api/repos/create", json.dumps({"name": name}).encode())
    base = f"base_model: bench/model-{i // 10:04d}\n" if i >= 10 else ""
    card = (f"---\nlicense: apache-2.0\npipeline_tag: {tasks[i % 3]}\ndatasets: [data-{i % 7}]\n{base}"
            f"model-index:\n- name: m{i}\n  results:\n  - task: {{type: {tasks[i % 3]}}}\n"
            f"    dataset: {{type: data-{i % 7}, name: Data {i % 7}}}\n"
            f"    metrics: [{{type: accuracy, name: top-1, value: {50 + (i * 37) % 50}}}]\n---\n"
            f"# Model {i}\n\nA card with a table:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    lines = [json.dumps({"key": "header", "value": {"summary": "card"}}),
             json.dumps({"key": "file", "value": {"path": "README.md", "content": base64.b64encode(card.encode()).decode(), "encoding": "base64"}})]
    post(f"/api/models/{name}/commit/main", ("\n".join(lines) + "\n").encode(), "application/x-ndjson")
PY
printf '%-58s %8s %8s\n' page p50_ms p99_ms
for page in "/models" "/models?task=image-classification&dataset=data-3&metric=top-1&op=%3E%3D&value=70&sort=metric&dir=desc" \
  "/bench/model-0005" "/bench/model-0123" "/compare?m=bench/model-0001&m=bench/model-0002&m=bench/model-0003" "/login"; do
  for _ in $(seq 1 50); do curl -s -o /dev/null -w '%{time_total}\n' "$url$page"; done > "$work/t.txt"
  python3 - "$page" "$work/t.txt" <<'PY'
import sys
v = sorted(float(x) * 1000 for x in open(sys.argv[2]))
print(f"{sys.argv[1][:58]:<58} {v[len(v)//2]:8.1f} {v[min(len(v)-1, int(len(v)*0.99))]:8.1f}")
PY
done
echo "($repos repositories; one zoo serve, SQLite + files, $(nproc) cores)"
