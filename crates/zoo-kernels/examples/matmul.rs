//! Matrix-product throughput of the engine's linear kernel at the transformers' shapes
//! (`benches/engine/matmul.py` measures PyTorch's at the same shapes):
//!
//!     cargo run -p zoo-kernels --example matmul [-- ITERS]
//!
//! Prints GFLOP/s of `x · wᵀ + b` (the weight as PyTorch stores it, `[out, in]`, read through
//! its strides) for each `(rows, in, out)`, fastest of ITERS runs after a warm-up.

use std::time::Instant;

use zoo_kernels::cpu::Mat;
use zoo_kernels::dense::linear_forward;

fn main() {
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // MiniLM-L6 (batch 32 x 128 tokens, width 384) and ViT-S/16 (batch 16 x 197 tokens,
    // width 384): qkv, output projection, MLP up, MLP down.
    let shapes = [
        (4096, 384, 1152),
        (4096, 384, 384),
        (4096, 384, 1536),
        (4096, 1536, 384),
        (3152, 384, 1152),
        (3152, 1536, 384),
    ];
    println!("threads: {}", rayon::current_num_threads());
    for (m, k, n) in shapes {
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i % 89) as f32 - 44.0) / 890.0)
            .collect();
        let b = vec![0.1f32; n];
        let wt = Mat::rows(&w, n, k).t();
        let run = || linear_forward(&x, m, wt, &b);
        std::hint::black_box(run());
        let mut best = f64::INFINITY;
        for _ in 0..iters {
            let t = Instant::now();
            std::hint::black_box(run());
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (m * k * n) as f64 / best / 1e9;
        println!(
            "{m:5} x {k:4} -> {n:4}: {:7.2} ms  {gflops:6.1} GFLOP/s",
            best * 1e3
        );
    }
}
