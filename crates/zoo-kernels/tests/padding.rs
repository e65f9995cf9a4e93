//! Issue 11: a value's bits do not depend on how far its batch is padded. The frozen text
//! prefix of `zoo finetune` computes a sentence's token states in one batch and trains on
//! them in another, padded to another length; the fine-tuned model must be byte-identical to
//! the one that recomputes them every step.

use zoo_kernels::cpu::{Mat, matmul_into};
use zoo_kernels::dense::{Attn, attention_inference, linear_forward};

fn val(i: usize) -> f32 {
    ((i * 104_729 % 997) as f32 - 498.0) / 997.0
}

fn differing(a: &[f32], b: &[f32]) -> usize {
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count()
}

/// Scores `q kᵀ` of the first 10 tokens, k read as a transposed view (as attention does):
/// the same bits whatever the number of tokens (gemm's small-product kernels add in another
/// order than its microkernels).
#[test]
fn a_product_does_not_depend_on_its_size() {
    let (d, hd) = (96, 32);
    let scores = |t: usize| -> Vec<f32> {
        let qkv: Vec<f32> = (0..t * 3 * d).map(val).collect();
        let q = Mat::strided(&qkv, 0, t, hd, 3 * d);
        let k = Mat::strided(&qkv, d, t, hd, 3 * d);
        let mut p = vec![0f32; t * t];
        matmul_into(&mut p, t, q, k.t(), false);
        (0..10)
            .flat_map(|r| p[r * t..r * t + 10].to_vec())
            .collect()
    };
    let base = scores(10);
    for t in [11, 15, 16, 17, 20, 33, 64, 128] {
        assert_eq!(differing(&scores(t), &base), 0, "{t} tokens");
    }
}

/// A sentence of 10 tokens attended alone and padded to 11 … 128 (padding masked): the same
/// context bits.
#[test]
fn attention_does_not_depend_on_padding() {
    let (heads, hd) = (3, 32);
    let d = heads * hd;
    let run = |t: usize| -> Vec<f32> {
        let qkv: Vec<f32> = (0..t * 3 * d).map(val).collect();
        let mask: Vec<f32> = (0..t).map(|j| if j < 10 { 0.0 } else { -1e9 }).collect();
        let a = Attn { b: 1, t, heads, hd };
        attention_inference(&qkv, a, &mask, 0.17)[..10 * d].to_vec()
    };
    let base = run(10);
    for t in [11, 16, 17, 20, 40, 128] {
        assert_eq!(differing(&run(t), &base), 0, "padded to {t}");
    }
}

/// A linear layer's rows do not depend on how many rows come with them.
#[test]
fn linear_rows_do_not_depend_on_the_row_count() {
    let (k, n) = (96, 80);
    let w: Vec<f32> = (0..n * k).map(|i| val(i * 7)).collect();
    let b: Vec<f32> = (0..n).map(val).collect();
    let wt = Mat::rows(&w, n, k).t();
    let x: Vec<f32> = (0..300 * k).map(val).collect();
    let base = linear_forward(&x[..2 * k], 2, wt, &b);
    for m in [3, 4, 16, 17, 40, 300] {
        let y = linear_forward(&x[..m * k], m, wt, &b);
        assert_eq!(differing(&y[..2 * n], &base), 0, "{m} rows");
    }
}
