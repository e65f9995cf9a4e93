#!/usr/bin/env bash
# The test command (README's second line): fetches the pinned fixtures (cached), prepares the
# Python clients the compatibility tests drive (huggingface_hub 1.33.0 with hf_xet, datasets
# 5.2.0, in a venv, cached), runs every test of the workspace (extra arguments go to
# `cargo test`), then the compatibility check with the real Python tools
# (scripts/compat-check.sh: torch, transformers, timm, sentence-transformers, peft in a
# cached venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ZOO_FIXTURES="$(scripts/fetch-fixtures.sh | tail -n 1)"
export ZOO_FIXTURES
venv="${ZOO_VENV:-$HOME/.cache/checkpoint-zoo/venv-hf-1.33.0-datasets-5.2.0}"
if ! "$venv/bin/python" -c 'import huggingface_hub, hf_xet, datasets; assert huggingface_hub.__version__ == "1.33.0" and datasets.__version__ == "5.2.0"' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q huggingface_hub==1.33.0 datasets==5.2.0
fi
export ZOO_PYTHON="$venv/bin/python"
cargo test --workspace --locked "$@"
echo "== compatibility with the Python tools (scripts/compat-check.sh)"
scripts/compat-check.sh
