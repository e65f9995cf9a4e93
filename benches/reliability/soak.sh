#!/usr/bin/env bash
# Issue 16's soak (not part of CI; loopback only; stops by itself): CLIENTS clients for
# MINUTES against one `zoo serve` on SQLite + files, each looping over
#   push   — `zoo upload` of its own repository: a text file and a 64–512 KiB .bin (LFS);
#   pull   — `zoo download` of that repository at the commit it pushed, every file compared
#            (sha256) with what it uploaded, and of a shared repository against known sha256s;
#   search — GET /api/models?search=… (must answer 200 with a list).
# Between steps a client waits 0–1 s. Every failure is counted (must be 0). The server's resident memory is sampled every 5 s:
# the report compares the median of the first and last fifths, and draws it (rss.svg).
#
#   benches/reliability/soak.sh [MINUTES] [CLIENTS] [OUT]     # defaults 20 20 /tmp/zoo-soak
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes="${1:-20}"; clients="${2:-20}"; out="${3:-/tmp/zoo-soak}"
cargo build --locked -q -p zoo-cli
zoo="${CARGO_TARGET_DIR:-$PWD/target}/debug/zoo"
rm -rf "$out"; mkdir -p "$out"
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT INT TERM
"$zoo" admin user add soak --data "$work/hub" >/dev/null
token="$("$zoo" admin token create --user soak --scope write --data "$work/hub")"
"$zoo" serve --data "$work/hub" --addr 127.0.0.1:0 > "$out/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "http://" "$out/serve.log" 2>/dev/null && break; sleep 0.1; done
url="$(grep -o 'http://[^ ]*' "$out/serve.log" | head -n 1)"
python3 - "$zoo" "$url" "$token" "$pid" "$minutes" "$clients" "$work" "$out" <<'PY'
import hashlib, json, os, random, statistics, subprocess, sys, threading, time, urllib.request
zoo, url, token, pid, minutes, clients, work, out = sys.argv[1:]
pid, minutes, clients = int(pid), float(minutes), int(clients)
deadline = time.time() + minutes * 60
lock = threading.Lock()
counts = {"push": 0, "pull": 0, "shared pull": 0, "search": 0, "files verified": 0}
errors = []

def sha(b):
    return hashlib.sha256(b).hexdigest()

def env(cache):
    e = dict(os.environ, HF_ENDPOINT=url, HF_TOKEN=token, HF_HUB_CACHE=cache, HF_HOME=work + "/hf-home")
    e.pop("HF_HUB_OFFLINE", None)
    return e

def zoo_run(args, cache):
    r = subprocess.run([zoo, *args], env=env(cache), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"zoo {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-400:]}")
    return r.stdout.strip()

def http(path):
    req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()

def check_snapshot(snap, expected):
    for rel, digest in expected.items():
        with open(os.path.join(snap, rel), "rb") as f:
            got = sha(f.read())
        if got != digest:
            raise RuntimeError(f"{snap}/{rel}: sha256 {got}, expected {digest}")
    return len(expected)

# The shared repository every client pulls, with known contents.
shared_dir = os.path.join(work, "shared")
os.makedirs(shared_dir)
shared = {}
for i in range(4):
    b = os.urandom(random.randint(1, 300) * 1024)
    name = f"part-{i}.bin"
    open(os.path.join(shared_dir, name), "wb").write(b)
    shared[name] = sha(b)
zoo_run(["upload", "soak/shared", shared_dir], work + "/cache-setup")

def client(k):
    rng = random.Random(k)
    repo, src, cache = f"soak/c{k:02d}", os.path.join(work, f"src{k}"), os.path.join(work, f"cache{k}")
    os.makedirs(src)
    expected, commit, step = {}, None, 0
    while time.time() < deadline:
        action = ["push", "pull", "search", "push", "shared pull", "search"][step % 6]
        step += 1
        time.sleep(rng.uniform(0, 1.0))  # think time: about one request per client-second
        try:
            if action == "push":
                text = f"client {k} step {step} {rng.random()}\n".encode()
                blob = os.urandom(rng.randint(64, 512) * 1024)
                open(os.path.join(src, "notes.txt"), "wb").write(text)
                open(os.path.join(src, "weights.bin"), "wb").write(blob)
                zoo_run(["upload", repo, src, "--commit-message", f"step {step}"], cache)
                _, body = http(f"/api/models/{repo}")
                commit = json.loads(body)["sha"]
                expected = {"notes.txt": sha(text), "weights.bin": sha(blob)}
            elif action == "pull":
                if commit is None:
                    continue
                snap = zoo_run(["download", repo, "--revision", commit], cache)
                n = check_snapshot(snap, expected)
                with lock:
                    counts["files verified"] += n
            elif action == "shared pull":
                snap = zoo_run(["download", "soak/shared"], cache)
                n = check_snapshot(snap, shared)
                with lock:
                    counts["files verified"] += n
            else:
                status, body = http(f"/api/models?search=c{rng.randint(0, clients - 1):02d}&limit=20")
                if status != 200 or not isinstance(json.loads(body), list):
                    raise RuntimeError(f"search: {status}")
            with lock:
                counts[action] += 1
        except Exception as e:  # every failure is a finding: counted and shown
            with lock:
                errors.append(f"client {k} {action}: {e}")

def rss_mb():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

samples = []
def sampler():
    t0 = time.time()
    while time.time() < deadline:
        samples.append((time.time() - t0, rss_mb()))
        time.sleep(5)

threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
s = threading.Thread(target=sampler)
s.start()
for t in threads:
    t.start()
for t in threads:
    t.join()
s.join()
samples.append((samples[-1][0] + 5, rss_mb()))

with open(os.path.join(out, "rss.csv"), "w") as f:
    f.write("seconds,rss_mb\n" + "".join(f"{t:.0f},{m:.1f}\n" for t, m in samples))
fifth = max(1, len(samples) // 5)
first = statistics.median(m for _, m in samples[:fifth])
last = statistics.median(m for _, m in samples[-fifth:])
peak = max(m for _, m in samples)
# The memory over the run as a picture: an SVG polyline, axes in MB and minutes.
W, H, P = 720, 300, 50
tmax = samples[-1][0] or 1
ymax = peak * 1.15 or 1
pts = " ".join(f"{P + t / tmax * (W - 2 * P):.1f},{H - P - m / ymax * (H - 2 * P):.1f}" for t, m in samples)
ticks = "".join(
    f'<text x="{P - 6}" y="{H - P - v / ymax * (H - 2 * P) + 4:.0f}" text-anchor="end" font-size="11">{v:.0f}</text>'
    for v in (0, ymax / 2, ymax * 0.9))
svg = f'''<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">zoo serve resident memory, {clients} clients, {minutes:g} min soak</text>
<line x1="{P}" y1="{H - P}" x2="{W - P}" y2="{H - P}" stroke="black"/><line x1="{P}" y1="{P}" x2="{P}" y2="{H - P}" stroke="black"/>
{ticks}<text x="14" y="{H / 2}" font-size="11" transform="rotate(-90 14 {H / 2})" text-anchor="middle">MB</text>
<text x="{W - P}" y="{H - P + 18}" text-anchor="end" font-size="11">{tmax / 60:.0f} min</text><text x="{P}" y="{H - P + 18}" font-size="11">0</text>
<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{pts}"/>
</svg>'''
open(os.path.join(out, "rss.svg"), "w").write(svg)
report = {"minutes": minutes, "clients": clients, "counts": counts, "errors": len(errors),
          "rss_mb": {"first_fifth_median": round(first, 1), "last_fifth_median": round(last, 1), "peak": round(peak, 1)}}
json.dump(report, open(os.path.join(out, "report.json"), "w"), indent=1)
print(json.dumps(report, indent=1))
for e in errors[:20]:
    print("error:", e)
sys.exit(1 if errors else 0)
PY
