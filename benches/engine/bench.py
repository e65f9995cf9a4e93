#!/usr/bin/env python3
"""Engine benchmark (not part of CI): PyTorch and zoo side by side in one run, same machine,
same shapes, as ratios.

    python3 bench.py [--iters 3] [--rounds 3]   # needs torch, torchvision, timm, transformers

Measures inference and one AdamW training step of MobileNetV2 (batch 32, 96²), ResNet-18
(batch 16, 224²), EfficientNet-B0 (batch 32, 96²), ViT-S/16 (batch 16, 224²) and MiniLM-L6
(batch 32, 128 tokens). The image weights are torchvision's / timm's random initialisation,
saved once by weights.py and read by both; MiniLM comes from the fixtures
(scripts/fetch-fixtures.sh). zoo runs `zoo bench` (the project's one build profile).
`zoo bench --weights DIR --profile` prints where each of zoo's steps goes, per op kind.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torchvision
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rate(items, iters, f):
    """Items per second of the fastest of `iters` timed runs after one warm-up (as `zoo bench`)."""
    f()
    best = float("inf")
    for _ in range(max(iters, 1)):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return items / best


# (name, batch, image size) of the image training steps, as in `zoo bench`.
IMAGE_WORKLOADS = [
    ("mobilenet_v2", 32, 96),
    ("resnet18", 16, 224),
    ("efficientnet_b0", 32, 96),
    ("vit_small_patch16_224", 16, 224),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="PyTorch and zoo measured alternately this many times; the best rate of each is kept "
                         "(a shared machine only ever slows a run down)")
    args = ap.parse_args()
    fixtures = os.environ.get("ZOO_FIXTURES", os.path.expanduser("~/.cache/checkpoint-zoo/fixtures"))
    minilm_dir = os.path.join(fixtures, "checkpoints", "all-MiniLM-L6-v2")
    tmp = tempfile.mkdtemp()
    weights_dir = os.path.join(tmp, "weights")
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights.py"), weights_dir],
                   check=True, capture_output=True)
    subprocess.run(["cargo", "build", "--locked", "-q", "-p", "zoo-cli"], cwd=ROOT, check=True)
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    torch_runs, zoo_runs = [], []
    for _ in range(args.rounds):
        torch_runs.append(measure_torch(args, weights_dir, minilm_dir))
        out = subprocess.run([os.path.join(target_dir, "debug", "zoo"), "bench", "--weights", weights_dir,
                              "--minilm", minilm_dir, "--iters", str(args.iters), "--json"],
                             check=True, capture_output=True, text=True)
        zoo_runs.append(json.loads(out.stdout))
    torch_res = {k: max(r[k] for r in torch_runs) for k in torch_runs[0]}
    zoo_res = {k: max(r[k] for r in zoo_runs) for k in zoo_runs[0]}

    print(f"threads: torch {torch.get_num_threads()}, zoo {zoo_res['threads']}; best of {args.rounds} round(s)")
    print(f"{'workload':44} {'PyTorch':>10} {'zoo':>10} {'zoo/PyTorch':>12}")
    for k in torch_res:
        if k in zoo_res:
            print(f"{k:44} {torch_res[k]:10.2f} {zoo_res[k]:10.2f} {zoo_res[k] / torch_res[k]:11.2f}x")


def measure_torch(args, weights_dir, minilm_dir):
    from safetensors.torch import load_file
    import timm

    torch_res = {}
    builders = {
        "resnet18": torchvision.models.resnet18,
        "mobilenet_v2": torchvision.models.mobilenet_v2,
        "efficientnet_b0": torchvision.models.efficientnet_b0,
        "vit_small_patch16_224": lambda: timm.create_model("vit_small_patch16_224", pretrained=False),
    }
    for name, batch, size in IMAGE_WORKLOADS:
        model = builders[name]()
        model.load_state_dict(load_file(os.path.join(weights_dir, f"{name}.safetensors")), strict=False)
        x = torch.randn(batch, 3, size, size)
        model.eval()
        with torch.no_grad():
            torch_res[f"{name}_inference_img_per_s"] = rate(batch, args.iters, lambda: model(x))
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        labels = torch.arange(batch) % 1000

        def step():
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), labels).backward()
            opt.step()

        torch_res[f"{name}_adamw_step_img_per_s"] = rate(batch, args.iters, step)

    from transformers import BertModel
    bert = BertModel.from_pretrained(minilm_dir).eval()
    ids = (torch.arange(32 * 128).reshape(32, 128) * 7919) % 28000 + 1000
    mask = torch.ones(32, 128, dtype=torch.long)

    def embed():
        h = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        return h.mean(1)

    with torch.no_grad():
        torch_res["minilm_inference_seq_per_s"] = rate(32, args.iters, embed)
    bert.train()
    opt = torch.optim.AdamW(bert.parameters(), lr=1e-4)
    target = torch.randn(32, 384)

    def bstep():
        opt.zero_grad()
        ((embed() - target) ** 2).mean().backward()
        opt.step()

    torch_res["minilm_adamw_step_seq_per_s"] = rate(32, args.iters, bstep)

    return torch_res


if __name__ == "__main__":
    sys.exit(main())
