//! The transformer kernels on plain `f32` slices: linear layers as blocked matrix products,
//! multi-head attention over packed projections (forward and backward per sequence), GELU
//! and layer norm with their backward passes.
//!
//! Determinism as in [`crate::cpu`]: work is split between tasks by the shape alone (row
//! blocks of a product, one sequence, one row), each reduction in a fixed order inside its
//! task, so results do not depend on the thread count.

use rayon::prelude::*;

use crate::cpu::{Mat, matmul_into, matmul_into_threaded, simd};

/// How many row blocks a parallel product over `m` rows is cut into: a multiple of 8 (so 2, 4
/// or 8 threads share it evenly) fixed by the shape alone, never by the thread count, each
/// block at least 32 rows.
pub(crate) fn row_blocks(m: usize) -> usize {
    (8 * m.div_ceil(2048)).min(m.div_ceil(32)).max(1)
}

/// Whether an `[m, n]` product is one `gemm` call on every thread rather than row blocks:
/// when both output dimensions are large enough for `gemm` to split (the transformers'
/// linear layers; a 1x1 convolution's weight gradient, `[co, c]` over many positions, is
/// not).
fn shared_product(m: usize, n: usize) -> bool {
    m.min(n) >= 256
}

/// `a · b` as a new row-major `[m, n]` matrix, every row starting from `bias` (`n` values)
/// when given. With both output dimensions large ([`shared_product`]) one `gemm` call on
/// every thread; otherwise the larger of the two output dimensions is cut into
/// [`row_blocks`] blocks, one single-threaded product each (with more columns than rows, as
/// `(bᵀ · aᵀ)ᵀ`). Either way the values do not depend on the thread count.
pub fn par_matmul(a: Mat<'_>, b: Mat<'_>, bias: Option<&[f32]>) -> Vec<f32> {
    let (m, n) = (a.rows, b.cols);
    if m < n && bias.is_none() && !shared_product(m, n) {
        let ct = par_matmul(b.t(), a.t(), None);
        return transpose(&ct, n, m);
    }
    par_matmul_then(a, b, bias, |_| {})
}

/// [`par_matmul`] by row blocks (never transposed), `post` applied to each block of the
/// result while it is in cache (an activation); each block's rows start from `bias`.
fn par_matmul_then(
    a: Mat<'_>,
    b: Mat<'_>,
    bias: Option<&[f32]>,
    post: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    let (m, n) = (a.rows, b.cols);
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "par_matmul: bias length");
    }
    if m > 0 && shared_product(m, n) {
        // The output starts as the bias rows, written once (not zeroed first: on a training
        // step's cold memory every pass over the output counts), then one product on every
        // thread and `post` by row blocks.
        let mut c = match bias {
            Some(bias) => {
                let mut c = Vec::with_capacity(m * n);
                for _ in 0..m {
                    c.extend_from_slice(bias);
                }
                c
            }
            None => vec![0f32; m * n],
        };
        matmul_into_threaded(&mut c, n, a, b, bias.is_some());
        let per = m.div_ceil(row_blocks(m));
        c.par_chunks_mut(per * n).for_each(&post);
        return c;
    }
    let mut c = vec![0f32; m * n];
    if m == 0 || n == 0 {
        return c;
    }
    let per = m.div_ceil(row_blocks(m));
    c.par_chunks_mut(per * n).enumerate().for_each(|(i, cb)| {
        let r = cb.len() / n;
        if let Some(bias) = bias {
            for row in cb.chunks_exact_mut(n) {
                row.copy_from_slice(bias);
            }
        }
        matmul_into(cb, n, a.row_block(i * per, r), b, bias.is_some());
        post(cb);
    });
    c
}

/// `gelu(x · w + b)` for inference: [`linear_forward`] with GELU applied to each row block
/// of the output while it is in cache (no second pass over the activations).
pub fn linear_gelu_forward(x: &[f32], rows: usize, w: Mat<'_>, b: &[f32]) -> Vec<f32> {
    par_matmul_then(Mat::rows(x, rows, w.rows), w, Some(b), |block| {
        simd(
            #[inline(always)]
            || {
                for v in block.iter_mut() {
                    *v = gelu_one(*v);
                }
            },
        )
    })
}

/// The transpose of a row-major `[rows, cols]` matrix, in 32x32 tiles.
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const T: usize = 32;
    let mut y = vec![0f32; rows * cols];
    if rows == 0 || cols == 0 {
        return y;
    }
    y.par_chunks_mut(T * rows).enumerate().for_each(|(bj, yb)| {
        let j0 = bj * T;
        let jn = yb.len() / rows;
        for i0 in (0..rows).step_by(T) {
            for i in i0..(i0 + T).min(rows) {
                let xr = &x[i * cols + j0..][..jn];
                for (dj, &v) in xr.iter().enumerate() {
                    yb[dj * rows + i] = v;
                }
            }
        }
    });
    y
}

/// The sums of the columns of a row-major `[rows, cols]` matrix (a bias gradient): blocks
/// of 64 columns per task, rows added in order.
pub fn column_sums(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut s = vec![0f32; cols];
    if cols == 0 {
        return s;
    }
    s.par_chunks_mut(64).enumerate().for_each(|(b, out)| {
        let (j0, w) = (b * 64, out.len());
        for r in 0..rows {
            for (o, &v) in out.iter_mut().zip(&x[r * cols + j0..][..w]) {
                *o += v;
            }
        }
    });
    s
}

/// A linear layer `y = x · w + b` (`x` `[rows, k]`, `w` `[k, n]` as burn stores it).
pub fn linear_forward(x: &[f32], rows: usize, w: Mat<'_>, b: &[f32]) -> Vec<f32> {
    par_matmul(Mat::rows(x, rows, w.rows), w, Some(b))
}

/// The input gradient of [`linear_forward`]: `dY · wᵀ`.
pub fn linear_backward_x(dy: &[f32], rows: usize, w: Mat<'_>) -> Vec<f32> {
    par_matmul(Mat::rows(dy, rows, w.cols), w.t(), None)
}

/// The weight and bias gradients of [`linear_forward`]: `xᵀ · dY` and the column sums of `dY`.
pub fn linear_backward_w(
    x: &[f32],
    rows: usize,
    dy: &[f32],
    k: usize,
    n: usize,
) -> (Vec<f32>, Vec<f32>) {
    let dw = par_matmul(Mat::rows(x, rows, k).t(), Mat::rows(dy, rows, n), None);
    (dw, column_sums(dy, rows, n))
}

/// The shape of a multi-head self-attention: `b` sequences of `t` tokens, `heads` heads of
/// `hd` values; the projections come packed as `[b, t, 3, heads, hd]` (query, key, value:
/// one linear layer's output, as timm's `qkv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attn {
    pub b: usize,
    pub t: usize,
    pub heads: usize,
    pub hd: usize,
}

impl Attn {
    fn d(&self) -> usize {
        self.heads * self.hd
    }

    /// Head `h`'s query (`part` 0), key (1) or value (2) of one sequence's packed rows.
    fn part<'a>(&self, seq: &'a [f32], part: usize, h: usize) -> Mat<'a> {
        let d = self.d();
        Mat::strided(seq, part * d + h * self.hd, self.t, self.hd, 3 * d)
    }
}

/// `softmax(scale · q kᵀ + mask) v` per head: returns the context `[b, t, heads·hd]` (heads
/// side by side, as the output projection takes it) and the probabilities
/// `[b, heads, t, t]` the backward pass needs. `mask` (`[b, t]`) is added to every query's
/// score of each key (0 to keep, a large negative number for padding). One sequence per task.
pub fn attention_forward(qkv: &[f32], a: Attn, mask: &[f32], scale: f32) -> (Vec<f32>, Vec<f32>) {
    let (t, d) = (a.t, a.d());
    let mut ctx = vec![0f32; a.b * t * d];
    let mut probs = vec![0f32; a.b * a.heads * t * t];
    if ctx.is_empty() {
        return (ctx, probs);
    }
    ctx.par_chunks_mut(t * d)
        .zip(probs.par_chunks_mut(a.heads * t * t))
        .enumerate()
        .for_each(|(s, (cs, ps))| {
            let seq = &qkv[s * t * 3 * d..(s + 1) * t * 3 * d];
            let m = &mask[s * t..(s + 1) * t];
            attend_heads(seq, a, m, scale, cs, ps, true);
        });
    (ctx, probs)
}

/// [`attention_forward`] for inference: the context only, each head's scores in a per-task
/// scratch instead of a `[b, heads, t, t]` tensor kept for a backward pass (a quarter of
/// the memory traffic of a BERT layer at 128 tokens). The same products in the same order,
/// so the same bits as the training forward.
pub fn attention_inference(qkv: &[f32], a: Attn, mask: &[f32], scale: f32) -> Vec<f32> {
    let (t, d) = (a.t, a.d());
    let mut ctx = vec![0f32; a.b * t * d];
    if ctx.is_empty() {
        return ctx;
    }
    ctx.par_chunks_mut(t * d).enumerate().for_each_init(
        || vec![0f32; t * t],
        |p, (s, cs)| {
            let seq = &qkv[s * t * 3 * d..(s + 1) * t * 3 * d];
            attend_heads(seq, a, &mask[s * t..(s + 1) * t], scale, cs, p, false);
        },
    );
    ctx
}

/// Every head of one sequence: scores into `probs` (head `h` at `h·t²` when `keep`, all
/// heads in its first `t²` otherwise), softmax in place, then the context into `ctx` (the
/// sequence's `[t, heads·hd]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_heads(
    seq: &[f32],
    a: Attn,
    mask: &[f32],
    scale: f32,
    ctx: &mut [f32],
    probs: &mut [f32],
    keep: bool,
) {
    let (t, d) = (a.t, a.d());
    for h in 0..a.heads {
        let at = if keep { h * t * t } else { 0 };
        let p = &mut probs[at..at + t * t];
        matmul_into(p, t, a.part(seq, 0, h), a.part(seq, 1, h).t(), false);
        simd(
            #[inline(always)]
            || {
                for row in p.chunks_exact_mut(t) {
                    softmax_row(row, mask, scale);
                }
            },
        );
        matmul_into(
            &mut ctx[h * a.hd..],
            d,
            Mat::rows(p, t, t),
            a.part(seq, 2, h),
            false,
        );
    }
}

/// `row = softmax(scale · row + mask)` in place.
#[inline(always)]
fn softmax_row(row: &mut [f32], mask: &[f32], scale: f32) {
    for (v, &m) in row.iter_mut().zip(mask) {
        *v = *v * scale + m;
    }
    let max = lane_max(row);
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / lane_sum(row, |v| v);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// The gradient of [`attention_forward`] with respect to the packed projections, from the
/// probabilities it returned and the context's gradient `dctx` (`[b, t, heads·hd]`):
/// `dV = Pᵀ dO`, `dS = P ⊙ (dO Vᵀ − rowsum(P ⊙ dO Vᵀ))`, `dQ = scale · dS K`,
/// `dK = scale · dSᵀ Q`. One sequence per task.
pub fn attention_backward(
    qkv: &[f32],
    a: Attn,
    probs: &[f32],
    dctx: &[f32],
    scale: f32,
) -> Vec<f32> {
    let (t, d) = (a.t, a.d());
    let mut dqkv = vec![0f32; qkv.len()];
    if dqkv.is_empty() {
        return dqkv;
    }
    dqkv.par_chunks_mut(t * 3 * d).enumerate().for_each_init(
        || vec![0f32; t * t],
        |ds, (s, dseq)| {
            let seq = &qkv[s * t * 3 * d..(s + 1) * t * 3 * d];
            let dc = &dctx[s * t * d..(s + 1) * t * d];
            for h in 0..a.heads {
                let p = &probs[(s * a.heads + h) * t * t..][..t * t];
                let p_mat = Mat::rows(p, t, t);
                let d_o = Mat::strided(dc, h * a.hd, t, a.hd, d);
                let v_off = 2 * d + h * a.hd;
                matmul_into(&mut dseq[v_off..], 3 * d, p_mat.t(), d_o, false);
                matmul_into(ds, t, d_o, a.part(seq, 2, h).t(), false);
                simd(
                    #[inline(always)]
                    || {
                        for (dr, pr) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)) {
                            let dot = lane_sum2(dr, pr, |x, y| x * y);
                            for (x, &y) in dr.iter_mut().zip(pr) {
                                *x = y * (*x - dot) * scale;
                            }
                        }
                    },
                );
                let s_mat = Mat::rows(ds, t, t);
                matmul_into(
                    &mut dseq[h * a.hd..],
                    3 * d,
                    s_mat,
                    a.part(seq, 1, h),
                    false,
                );
                matmul_into(
                    &mut dseq[d + h * a.hd..],
                    3 * d,
                    s_mat.t(),
                    a.part(seq, 0, h),
                    false,
                );
            }
        },
    );
    dqkv
}

/// Values per task of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// `e^x` in single precision without a library call (so loops over it vectorise):
/// Cephes' `expf` — `x = n ln 2 + r` (`n` the nearest integer), a degree-6 polynomial in `r`, `2^n` through the
/// exponent bits; within 2 ulp on `[-87, 88]`, 0 below.
#[inline(always)]
pub fn exp(v: f32) -> f32 {
    let x = v.clamp(-87.336_55, 88.376_26);
    // Round to nearest by the 1.5·2²³ trick (`floor`/`round` are library calls below SSE4.1).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // `2^n` from the bits of `t`: `MAGIC` has an ulp of 1, so `t`'s bits are `MAGIC`'s plus
    // `n` (two's complement), and `n + 127` is in 1..=254 after the clamp. Integer bit
    // arithmetic instead of `n as i32`, whose saturating conversion does not vectorise
    // (SiLU 2.6x slower with it).
    let bits = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let y = y * f32::from_bits(bits.wrapping_add(127) << 23);
    // Underflow to zero and overflow to infinity as `f32::exp` does (a masked key must get
    // probability 0, not 1e-38); both are selects, so the loop still vectorises.
    if v < -87.336_55 {
        0.0
    } else if v > 88.722_83 {
        f32::INFINITY
    } else {
        y
    }
}

/// `erf(x)` as PyTorch's vectorised CPU kernels compute it (Abramowitz & Stegun 7.1.26,
/// absolute error below 1.5e-7), so GELU rounds as it does there.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let p = 1.061_405_4_f32;
    let p = p * t - 1.453_152_1;
    let p = p * t + 1.421_413_8;
    let p = p * t - 0.284_496_74;
    let p = p * t + 0.254_829_6;
    let y = 1.0 - p * t * exp(-a * a);
    y.copysign(x)
}

const SQRT_1_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// `f` on every value, in parallel chunks, vectorised.
#[inline(always)]
fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(yo, xi)| {
            simd(
                #[inline(always)]
                || {
                    for (o, &v) in yo.iter_mut().zip(xi) {
                        *o = f(v);
                    }
                },
            )
        });
    y
}

/// `f(x, dy)` on every pair, as [`map1`].
#[inline(always)]
fn map2(x: &[f32], dy: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(x.len(), dy.len(), "elementwise backward: lengths");
    let mut dx = vec![0f32; x.len()];
    dx.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(o, (xi, gi))| {
            simd(
                #[inline(always)]
                || {
                    for ((o, &v), &g) in o.iter_mut().zip(xi).zip(gi) {
                        *o = f(v, g);
                    }
                },
            )
        });
    dx
}

/// GELU as PyTorch's default (`approximate='none'`): `x · Φ(x)`, Φ through `erf`.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    map1(x, gelu_one)
}

/// GELU of one value (erf form).
#[inline(always)]
fn gelu_one(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * SQRT_1_2))
}

/// The gradient of [`gelu`]: `dy · (Φ(x) + x φ(x))`.
pub fn gelu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    map2(
        x,
        dy,
        #[inline(always)]
        |v, g| {
            let cdf = 0.5 * (1.0 + erf(v * SQRT_1_2));
            let pdf = exp(-0.5 * v * v) * INV_SQRT_2PI;
            g * (cdf + v * pdf)
        },
    )
}

/// The logistic function `1 / (1 + e^-x)` (0 for `x` below about −88, as in f32).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// SiLU (swish): `x · sigmoid(x)`.
pub fn silu(x: &[f32]) -> Vec<f32> {
    map1(
        x,
        #[inline(always)]
        |v| v * sigmoid(v),
    )
}

/// The gradient of [`silu`]: `dy · s · (1 + x (1 − s))` with `s = sigmoid(x)`.
pub fn silu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    map2(
        x,
        dy,
        #[inline(always)]
        |v, g| {
            let s = sigmoid(v);
            g * s * (1.0 + v * (1.0 - s))
        },
    )
}

/// Lanes of the fixed-order reductions below: 16 partial results side by side (two AVX
/// registers), combined in the same order every time.
const LANES: usize = 16;

/// `Σ f(x_i)` over a slice in [`LANES`] interleaved partial sums (so the loop vectorises;
/// a plain left-to-right float sum cannot), the same order on every call.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(v);
    }
    fold(acc)
}

/// `Σ f(x_i, y_i)` as [`lane_sum`] adds.
#[inline(always)]
fn lane_sum2(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let (mut cx, mut cy) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    for (a, b) in (&mut cx).zip(&mut cy) {
        for ((s, &u), &v) in acc.iter_mut().zip(a).zip(b) {
            *s += f(u, v);
        }
    }
    for ((s, &u), &v) in acc.iter_mut().zip(cx.remainder()).zip(cy.remainder()) {
        *s += f(u, v);
    }
    fold(acc)
}

/// The largest value of a non-empty slice (NaN-free input), vectorised.
#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a = if v > *a { v } else { *a };
    }
    acc.into_iter().fold(f32::NEG_INFINITY, f32::max)
}

/// The partial sums of [`lane_sum`] added pairwise, always in the same order.
#[inline(always)]
fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut w = LANES / 2;
    while w > 0 {
        for i in 0..w {
            acc[i] += acc[i + w];
        }
        w /= 2;
    }
    acc[0]
}

/// Rows per task of the layer-norm kernels (the gradients of `gamma` and `beta` are summed
/// per block of this many rows, then over the blocks in order: fixed by the shape alone).
const NORM_ROWS: usize = 32;

/// Layer norm over the last dimension of a row-major `[rows, d]` matrix, as
/// `torch.nn.LayerNorm`: `y = (x − mean) / sqrt(var + eps) · gamma + beta` with the biased
/// variance. Returns `y` and each row's mean and `1 / sqrt(var + eps)` for the backward pass.
pub fn layer_norm_forward(
    x: &[f32],
    d: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(
        d > 0 && x.len().is_multiple_of(d),
        "layer_norm: {} values in rows of {d}",
        x.len()
    );
    assert_eq!(
        (gamma.len(), beta.len()),
        (d, d),
        "layer_norm: gamma/beta length"
    );
    let rows = x.len() / d;
    let mut y = vec![0f32; x.len()];
    let mut mean = vec![0f32; rows];
    let mut rstd = vec![0f32; rows];
    y.par_chunks_mut(NORM_ROWS * d)
        .zip(
            mean.par_chunks_mut(NORM_ROWS)
                .zip(rstd.par_chunks_mut(NORM_ROWS)),
        )
        .enumerate()
        .for_each(|(blk, (yb, (mb, rb)))| {
            simd(
                #[inline(always)]
                || {
                    let xb = &x[blk * NORM_ROWS * d..][..yb.len()];
                    for (((yr, xr), m), r) in yb
                        .chunks_exact_mut(d)
                        .zip(xb.chunks_exact(d))
                        .zip(mb.iter_mut())
                        .zip(rb.iter_mut())
                    {
                        let mu = lane_sum(xr, |v| v) / d as f32;
                        let var = lane_sum(xr, |v| (v - mu) * (v - mu)) / d as f32;
                        let inv = 1.0 / (var + eps).sqrt();
                        for (((o, &v), &g), &b) in yr.iter_mut().zip(xr).zip(gamma).zip(beta) {
                            *o = (v - mu) * inv * g + b;
                        }
                        (*m, *r) = (mu, inv);
                    }
                },
            )
        });
    (y, mean, rstd)
}

/// The gradients of [`layer_norm_forward`] with respect to `x`, `gamma` and `beta`:
/// with `x̂ = (x − mean)·rstd` and `g = dy ⊙ gamma`,
/// `dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))`, `dgamma = Σ dy ⊙ x̂`, `dbeta = Σ dy`.
pub fn layer_norm_backward(
    x: &[f32],
    d: usize,
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = mean.len();
    assert_eq!(
        (x.len(), dy.len(), rstd.len()),
        (rows * d, rows * d, rows),
        "layer_norm_backward: shapes"
    );
    let mut dx = vec![0f32; x.len()];
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(NORM_ROWS * d)
        .enumerate()
        .map(|(blk, db)| {
            let off = blk * NORM_ROWS * d;
            let (xb, gb) = (&x[off..][..db.len()], &dy[off..][..db.len()]);
            let mut dgamma = vec![0f32; d];
            let mut dbeta = vec![0f32; d];
            let mut g = vec![0f32; d];
            simd(
                #[inline(always)]
                || {
                    for (i, ((dr, xr), gr)) in db
                        .chunks_exact_mut(d)
                        .zip(xb.chunks_exact(d))
                        .zip(gb.chunks_exact(d))
                        .enumerate()
                    {
                        let (mu, inv) = (mean[blk * NORM_ROWS + i], rstd[blk * NORM_ROWS + i]);
                        for ((gi, &dyv), &gm) in g.iter_mut().zip(gr).zip(gamma) {
                            *gi = dyv * gm;
                        }
                        let mean_g = lane_sum(&g, |v| v) / d as f32;
                        let mean_gx = lane_sum2(&g, xr, |gv, v| gv * (v - mu) * inv) / d as f32;
                        for ((((o, &gv), &v), &dyv), (dg, dbv)) in dr
                            .iter_mut()
                            .zip(&g)
                            .zip(xr)
                            .zip(gr)
                            .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
                        {
                            let xh = (v - mu) * inv;
                            *o = inv * (gv - mean_g - xh * mean_gx);
                            *dg += dyv * xh;
                            *dbv += dyv;
                        }
                    }
                },
            );
            (dgamma, dbeta)
        })
        .collect();
    let mut dgamma = vec![0f32; d];
    let mut dbeta = vec![0f32; d];
    for (pg, pb) in &partials {
        for ((a, b), (&u, &v)) in dgamma
            .iter_mut()
            .zip(dbeta.iter_mut())
            .zip(pg.iter().zip(pb))
        {
            *a += u;
            *b += v;
        }
    }
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn attention_for_inference_is_the_training_forward_without_the_probabilities_issue_11() {
        for a in [
            Attn {
                b: 3,
                t: 21,
                heads: 3,
                hd: 20,
            },
            Attn {
                b: 2,
                t: 40,
                heads: 2,
                hd: 32,
            },
        ] {
            let qkv = data(a.b * a.t * 3 * a.d(), 5);
            let mask: Vec<f32> = (0..a.b * a.t)
                .map(|i| if i % 7 == 3 { -1e9 } else { 0.0 })
                .collect();
            let (ctx, probs) = attention_forward(&qkv, a, &mask, 0.3);
            assert_eq!(probs.len(), a.b * a.heads * a.t * a.t);
            let got = attention_inference(&qkv, a, &mask, 0.3);
            assert_eq!(got.len(), ctx.len());
            for (i, (g, w)) in got.iter().zip(&ctx).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{a:?}: context value {i}");
            }
        }
    }

    fn naive(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                    .sum();
            }
        }
        c
    }

    fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= tol * scale,
                "{what}[{i}]: {g} against {w} (scale {scale})"
            );
        }
    }

    #[test]
    fn exp_and_erf_are_within_their_error_bounds_issue_11() {
        let mut worst_exp = 0f64;
        let mut worst_erf = 0f64;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let e = f64::from(x).exp();
            worst_exp = worst_exp.max((f64::from(exp(x)) - e).abs() / e);
            if x.abs() < 6.0 {
                let want = libm_erf(f64::from(x));
                worst_erf = worst_erf.max((f64::from(erf(x)) - want).abs());
            }
        }
        assert!(worst_exp < 3e-7, "exp: relative error {worst_exp}");
        // A&S 7.1.26 is within 1.5e-7 in exact arithmetic; f32 rounding adds about 4e-7.
        assert!(worst_erf < 1e-6, "erf: absolute error {worst_erf}");
        assert_eq!(exp(-200.0), 0.0, "underflows to zero");
        assert_eq!(exp(-1e9), 0.0, "a masked score");
        assert_eq!(exp(100.0), f32::INFINITY, "overflows");
        assert!(exp(f32::NAN).is_nan());
    }

    /// `erf` in double precision from its series / continued fraction (test only).
    fn libm_erf(x: f64) -> f64 {
        // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)), summed far enough.
        if x.abs() > 3.0 {
            return x.signum() * (1.0 - erfc_cf(x.abs()));
        }
        let mut sum = 0f64;
        let mut term = x;
        let mut n = 0f64;
        while term.abs() > 1e-17 || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// `erfc(x)` for large `x` by its continued fraction.
    fn erfc_cf(x: f64) -> f64 {
        let mut f = 0f64;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (x + f);
        }
        (-x * x).exp() / std::f64::consts::PI.sqrt() / (x + f)
    }

    #[test]
    fn products_do_not_depend_on_the_thread_count_issue_11() {
        // A shared product (both sides ≥ 256), a row-blocked one and a transposed one.
        for (m, k, n) in [(600, 70, 300), (700, 50, 40), (30, 64, 500)] {
            let (a, b, bias) = (data(m * k, 6), data(k * n, 7), data(n, 8));
            let run = |threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool");
                pool.install(|| {
                    let y = linear_forward(&a, m, Mat::rows(&b, k, n), &bias);
                    let g = linear_gelu_forward(&a, m, Mat::rows(&b, k, n), &bias);
                    let t = par_matmul(Mat::rows(&a, m, k), Mat::rows(&b, k, n), None);
                    (y, g, t)
                })
            };
            let one = run(1);
            for threads in [2, 3, 8] {
                let other = run(threads);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&one.0),
                    bits(&other.0),
                    "linear {m}x{k}x{n}, {threads} threads"
                );
                assert_eq!(
                    bits(&one.1),
                    bits(&other.1),
                    "linear+gelu, {threads} threads"
                );
                assert_eq!(bits(&one.2), bits(&other.2), "product, {threads} threads");
            }
        }
    }

    #[test]
    fn blocked_products_match_the_definition_issue_11() {
        // Row-split with bias (many blocks), the transposed path (more columns than rows),
        // and a product whose left operand is a transposed view.
        for (m, k, n) in [(301, 17, 9), (5, 13, 70), (2049, 3, 4), (300, 40, 260)] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let bias = data(n, 3);
            let want = naive(&a, m, k, &b, n);
            let got = par_matmul(Mat::rows(&a, m, k), Mat::rows(&b, k, n), None);
            assert_close("a·b", &got, &want, 1e-6);
            let got = linear_forward(&a, m, Mat::rows(&b, k, n), &bias);
            let with_bias: Vec<f64> = want
                .iter()
                .enumerate()
                .map(|(i, v)| v + f64::from(bias[i % n]))
                .collect();
            assert_close("linear", &got, &with_bias, 1e-6);
            let fused = linear_gelu_forward(&a, m, Mat::rows(&b, k, n), &bias);
            let apart = gelu(&got);
            assert!(
                fused
                    .iter()
                    .zip(&apart)
                    .all(|(f, g)| f.to_bits() == g.to_bits()),
                "linear+gelu {m}x{k}x{n} is gelu(linear)"
            );
            // dW = aᵀ · dY through the transposed view.
            let dy = data(m * n, 4);
            let (dw, db) = linear_backward_w(&a, m, &dy, k, n);
            let at = transpose(&a, m, k);
            assert_close("dW", &dw, &naive(&at, k, m, &dy, n), 1e-6);
            let sums: Vec<f64> = (0..n)
                .map(|j| (0..m).map(|i| f64::from(dy[i * n + j])).sum())
                .collect();
            // A column sum over up to 2049 rows in f32.
            assert_close("db", &db, &sums, 1e-5);
            let dx = linear_backward_x(&dy, m, Mat::rows(&b, k, n));
            assert_close("dX", &dx, &naive(&dy, m, n, &transpose(&b, k, n), k), 1e-6);
        }
    }

    /// Attention by its definition, in double precision.
    fn naive_attention(qkv: &[f32], a: Attn, mask: &[f32], scale: f64) -> Vec<f64> {
        let d = a.heads * a.hd;
        let at = |s: usize, i: usize, part: usize, h: usize, e: usize| {
            f64::from(qkv[(s * a.t + i) * 3 * d + part * d + h * a.hd + e])
        };
        let mut ctx = vec![0f64; a.b * a.t * d];
        for s in 0..a.b {
            for h in 0..a.heads {
                for i in 0..a.t {
                    let scores: Vec<f64> = (0..a.t)
                        .map(|j| {
                            (0..a.hd)
                                .map(|e| at(s, i, 0, h, e) * at(s, j, 1, h, e))
                                .sum::<f64>()
                                * scale
                                + f64::from(mask[s * a.t + j])
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let ex: Vec<f64> = scores.iter().map(|v| (v - max).exp()).collect();
                    let sum: f64 = ex.iter().sum();
                    for e in 0..a.hd {
                        ctx[(s * a.t + i) * d + h * a.hd + e] =
                            (0..a.t).map(|j| ex[j] / sum * at(s, j, 2, h, e)).sum();
                    }
                }
            }
        }
        ctx
    }

    #[test]
    fn attention_matches_the_definition_and_its_gradient_finite_differences_issue_11() {
        let a = Attn {
            b: 2,
            t: 6,
            heads: 3,
            hd: 4,
        };
        let d = a.heads * a.hd;
        let qkv = data(a.b * a.t * 3 * d, 5);
        let mut mask = vec![0f32; a.b * a.t];
        mask[a.t + 4] = -1e9;
        mask[a.t + 5] = -1e9;
        let scale = 0.5;
        let (ctx, probs) = attention_forward(&qkv, a, &mask, scale);
        assert_close("context", &ctx, &naive_attention(&qkv, a, &mask, 0.5), 1e-6);
        for row in probs.chunks(a.t) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
        // <ctx, r> by central differences (in f64 through the definition).
        let r = data(ctx.len(), 6);
        let loss = |q: &[f32]| -> f64 {
            naive_attention(q, a, &mask, 0.5)
                .iter()
                .zip(&r)
                .map(|(c, &w)| c * f64::from(w))
                .sum()
        };
        let grad = attention_backward(&qkv, a, &probs, &r, scale);
        let h = 1e-3f32;
        let mut worst = 0f64;
        for i in 0..qkv.len() {
            let (mut up, mut down) = (qkv.clone(), qkv.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up) - loss(&down)) / (2.0 * f64::from(h));
            worst = worst.max((fd - f64::from(grad[i])).abs());
        }
        assert!(worst < 1e-4, "attention gradient: max |diff| {worst}");
        // Padded keys and their values take no gradient.
        let row =
            |s: usize, j: usize| &grad[(s * a.t + j) * 3 * d + d..(s * a.t + j) * 3 * d + 3 * d];
        assert!(row(1, 4).iter().chain(row(1, 5)).all(|&g| g == 0.0));
    }

    #[test]
    fn gelu_and_its_gradient_match_the_definition_issue_11() {
        let x: Vec<f32> = (0..2001).map(|i| (i as f32 - 1000.0) * 0.006).collect();
        let y = gelu(&x);
        let ones = vec![1f32; x.len()];
        let dx = gelu_backward(&x, &ones);
        let exact = |v: f64| 0.5 * v * (1.0 + libm_erf(v / std::f64::consts::SQRT_2));
        for (i, &v) in x.iter().enumerate() {
            let v = f64::from(v);
            assert!((f64::from(y[i]) - exact(v)).abs() < 1e-6, "gelu({v})");
            // d/dx x·Φ(x) = Φ(x) + x·φ(x), in double precision.
            let phi = (-v * v / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let want = 0.5 * (1.0 + libm_erf(v / std::f64::consts::SQRT_2)) + v * phi;
            assert!(
                (f64::from(dx[i]) - want).abs() < 2e-6,
                "gelu'({v}): {} against {want}",
                dx[i]
            );
        }
    }
    #[test]
    fn layer_norm_matches_the_definition_and_finite_differences_issue_11() {
        let (rows, d) = (70, 37); // several row blocks, a partial lane chunk
        let x: Vec<f32> = data(rows * d, 7).iter().map(|v| v * 3.0 + 1.0).collect();
        let gamma = data(d, 8);
        let beta = data(d, 9);
        let eps = 1e-5f32;
        let reference = |x: &[f32], gamma: &[f32], beta: &[f32]| -> Vec<f64> {
            let mut y = Vec::with_capacity(x.len());
            for r in x.chunks(d) {
                let mu = r.iter().map(|&v| f64::from(v)).sum::<f64>() / d as f64;
                let var = r.iter().map(|&v| (f64::from(v) - mu).powi(2)).sum::<f64>() / d as f64;
                let inv = 1.0 / (var + f64::from(eps)).sqrt();
                for ((&v, &g), &b) in r.iter().zip(gamma).zip(beta) {
                    y.push((f64::from(v) - mu) * inv * f64::from(g) + f64::from(b));
                }
            }
            y
        };
        let (y, mean, rstd) = layer_norm_forward(&x, d, &gamma, &beta, eps);
        assert_close("layer_norm", &y, &reference(&x, &gamma, &beta), 2e-6);
        // <y, r> by central differences through the f64 definition, for x, gamma and beta.
        let r = data(rows * d, 10);
        let loss = |x: &[f32], g: &[f32], b: &[f32]| -> f64 {
            reference(x, g, b)
                .iter()
                .zip(&r)
                .map(|(y, &w)| y * f64::from(w))
                .sum()
        };
        let (dx, dgamma, dbeta) = layer_norm_backward(&x, d, &gamma, &mean, &rstd, &r);
        let h = 1e-2f32;
        let fd = |which: usize, i: usize| {
            let mut args = [x.clone(), gamma.clone(), beta.clone()];
            args[which][i] += h;
            let up = loss(&args[0], &args[1], &args[2]);
            args[which][i] -= 2.0 * h;
            let down = loss(&args[0], &args[1], &args[2]);
            (up - down) / (2.0 * f64::from(h))
        };
        for (which, got) in [(0, &dx), (1, &dgamma), (2, &dbeta)] {
            let step = if which == 0 { 13 } else { 1 };
            for i in (0..got.len()).step_by(step) {
                let want = fd(which, i);
                assert!(
                    (f64::from(got[i]) - want).abs() < 2e-3 * (1.0 + want.abs()),
                    "layer_norm gradient {which}[{i}]: {} against {want}",
                    got[i]
                );
            }
        }
        // Any row's dx sums to zero (the mean is subtracted out).
        for row in dx.chunks(d) {
            assert!(row.iter().map(|&v| f64::from(v)).sum::<f64>().abs() < 1e-4);
        }
    }
    #[test]
    fn silu_and_its_gradient_match_the_definition_issue_11() {
        let x: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.05).collect();
        let y = silu(&x);
        let dy = data(x.len(), 11);
        let dx = silu_backward(&x, &dy);
        for (i, &v) in x.iter().enumerate() {
            let v = f64::from(v);
            let s = 1.0 / (1.0 + (-v).exp());
            let want = v * s;
            assert!(
                (f64::from(y[i]) - want).abs() < 2e-6 * (1.0 + want.abs()),
                "silu({v})"
            );
            let want = f64::from(dy[i]) * s * (1.0 + v * (1.0 - s));
            assert!(
                (f64::from(dx[i]) - want).abs() < 2e-6,
                "silu'({v}): {} against {want}",
                dx[i]
            );
        }
        assert_eq!(silu(&[-1e9, 1e9]), vec![-0.0, 1e9]);
    }
}
