#!/usr/bin/env python3
"""Random-initialised weights (torchvision / timm names) of the engine benchmark's image
models, as safetensors in DIR: resnet18, mobilenet_v2, efficientnet_b0 (torchvision),
vit_small_patch16_224 (timm). `zoo bench --weights DIR` reads them.

    python3 weights.py DIR        # needs torch, torchvision, timm
"""
import os
import sys

import timm
import torch
import torchvision
from safetensors.torch import save_file


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    models = {
        "resnet18": torchvision.models.resnet18(),
        "mobilenet_v2": torchvision.models.mobilenet_v2(),
        "efficientnet_b0": torchvision.models.efficientnet_b0(),
        "vit_small_patch16_224": timm.create_model("vit_small_patch16_224", pretrained=False),
    }
    for name, m in models.items():
        sd = {k: v.contiguous() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
        save_file(sd, os.path.join(out, f"{name}.safetensors"))
        print(os.path.join(out, f"{name}.safetensors"))


if __name__ == "__main__":
    main()
