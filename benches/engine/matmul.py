#!/usr/bin/env python3
"""PyTorch's linear-layer throughput at the shapes of `cargo run -p zoo-kernels --example
matmul` (same machine, same threads): GFLOP/s of F.linear(x, w, b), fastest of ITERS runs."""
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
iters = int(sys.argv[1]) if len(sys.argv) > 1 else 5
print(f"threads: {torch.get_num_threads()}")
for m, k, n in [(4096, 384, 1152), (4096, 384, 384), (4096, 384, 1536), (4096, 1536, 384),
                (3152, 384, 1152), (3152, 1536, 384)]:
    x, w, b = torch.randn(m, k), torch.randn(n, k), torch.randn(n)
    with torch.inference_mode():
        F.linear(x, w, b)
        best = float("inf")
        for _ in range(iters):
            t = time.perf_counter()
            F.linear(x, w, b)
            best = min(best, time.perf_counter() - t)
    print(f"{m:5} x {k:4} -> {n:4}: {best * 1e3:7.2f} ms  {2 * m * k * n / best / 1e9:6.1f} GFLOP/s")
