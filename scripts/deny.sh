#!/usr/bin/env bash
# cargo deny over the workspace (deny.toml): licences, bans (wildcards; duplicates listed) and
# sources always, offline; advisories too when a copy of the RustSec database is at
# ~/.cargo/advisory-dbs/advisory-db-3157b0e258782691 (CI has no route to it; a session with
# one runs `scripts/deny.sh` and reports the result).
set -euo pipefail
cd "$(dirname "$0")/.."
deny="${CARGO_DENY:-cargo-deny}"
checks=(licenses bans sources)
[ -d "$HOME/.cargo/advisory-dbs/advisory-db-3157b0e258782691/crates" ] && checks+=(advisories)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
rc=0
"$deny" --offline check -s "${checks[@]}" > "$log" 2>&1 || rc=$?
grep -E '^\s*[a-z]+ (ok|FAILED):' "$log" || true
if [ "$rc" -ne 0 ]; then
  grep -A25 '^error' "$log" | head -120
  exit "$rc"
fi
