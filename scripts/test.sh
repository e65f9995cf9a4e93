#!/usr/bin/env bash
# The test command (README's second line): fetches the pinned fixtures (cached), then runs
# every test of the workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
ZOO_FIXTURES="$(scripts/fetch-fixtures.sh | tail -n 1)"
export ZOO_FIXTURES
cargo test --workspace --locked "$@"
