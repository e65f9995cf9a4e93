#!/usr/bin/env python3
"""Engine benchmark (not part of CI): PyTorch and zoo side by side in one run, same machine,
same shapes, as ratios.

    python3 bench.py [--iters 3]        # needs torch + torchvision (pip install torch torchvision)

Measures ResNet-18 inference (batch 16, 224²) and one AdamW training step, and MiniLM-L6
inference (batch 32, 128 tokens) and one AdamW step. The ResNet-18 weights are torchvision's
random initialisation, saved once and read by both; MiniLM comes from the fixtures
(scripts/fetch-fixtures.sh). zoo runs `zoo bench` (release build).
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
    f()
    t = time.perf_counter()
    for _ in range(iters):
        f()
    return items * iters / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=3)
    args = ap.parse_args()
    fixtures = os.environ.get("ZOO_FIXTURES", os.path.expanduser("~/.cache/checkpoint-zoo/fixtures"))
    minilm_dir = os.path.join(fixtures, "checkpoints", "all-MiniLM-L6-v2")
    tmp = tempfile.mkdtemp()
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    weights = os.path.join(tmp, "resnet18.safetensors")
    save_file({k: v.contiguous() for k, v in resnet.state_dict().items()}, weights)

    # PyTorch side.
    torch_res = {}
    resnet.eval()
    x = torch.randn(16, 3, 224, 224)
    with torch.no_grad():
        torch_res["resnet18_inference_img_per_s"] = rate(16, args.iters, lambda: resnet(x))
    resnet.train()
    opt = torch.optim.AdamW(resnet.parameters(), lr=1e-4)
    labels = torch.arange(16) % 1000

    def rstep():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(resnet(x), labels).backward()
        opt.step()

    torch_res["resnet18_adamw_step_img_per_s"] = rate(16, args.iters, rstep)
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

    # zoo side.
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "zoo-cli"], cwd=ROOT, check=True)
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    out = subprocess.run([os.path.join(target_dir, "release", "zoo"), "bench", "--resnet18", weights, "--minilm", minilm_dir,
                          "--iters", str(args.iters), "--json"], check=True, capture_output=True, text=True)
    zoo_res = json.loads(out.stdout)

    print(f"threads: torch {torch.get_num_threads()}, zoo {zoo_res['threads']}")
    print(f"{'workload':36} {'PyTorch':>10} {'zoo':>10} {'zoo/PyTorch':>12}")
    for k in ("resnet18_inference_img_per_s", "resnet18_adamw_step_img_per_s", "minilm_inference_seq_per_s", "minilm_adamw_step_seq_per_s"):
        print(f"{k:36} {torch_res[k]:10.2f} {zoo_res[k]:10.2f} {zoo_res[k] / torch_res[k]:11.2f}x")


if __name__ == "__main__":
    sys.exit(main())
