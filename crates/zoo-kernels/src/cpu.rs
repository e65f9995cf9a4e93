//! The kernels themselves, on plain `f32` slices in NCHW order: no burn types, so each one is
//! tested on its own against a naive definition and finite differences.
//!
//! Determinism: every reduction runs in a fixed order inside one task (a channel, a plane),
//! and tasks only split *independent* outputs between threads, so the bits of a result do
//! not depend on the thread count or on scheduling.

use rayon::prelude::*;

/// `[n, c, h, w]` as a struct, for readability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nchw {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Nchw {
    pub fn plane(&self) -> usize {
        self.h * self.w
    }
    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs `f` compiled for the best vector instructions the CPU has (AVX-512, AVX2 or
/// baseline), so the plain loops inside it (and the `#[inline(always)]` helpers they call)
/// are vectorised that wide. Without FMA contraction the results are the same bits on every
/// instruction set: only the width changes, never the order of operations.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// Sum of a slice in a fixed order: eight interleaved f32 lanes (vectorised by the compiler),
/// then the lanes and the tail in order, in f64.
#[inline(always)]
fn sum_f32(xs: &[f32]) -> f64 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let mut s: f64 = acc.iter().map(|&a| f64::from(a)).sum();
    for &t in tail {
        s += f64::from(t);
    }
    s
}

/// Σ (x - m)² over a slice, like [`sum_f32`].
#[inline(always)]
fn sum_sq_dev(xs: &[f32], m: f32) -> f64 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            let d = c[i] - m;
            acc[i] += d * d;
        }
    }
    let mut s: f64 = acc.iter().map(|&a| f64::from(a)).sum();
    for &t in tail {
        let d = f64::from(t - m);
        s += d * d;
    }
    s
}

/// Σ dy and Σ dy·(x - m) over a pair of slices.
#[inline(always)]
fn sum_dy_dyx(dy: &[f32], x: &[f32], m: f32) -> (f64, f64) {
    let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
    let cd = dy.chunks_exact(8);
    let cx = x.chunks_exact(8);
    let (td, tx) = (cd.remainder(), cx.remainder());
    for (d, xv) in cd.zip(cx) {
        for i in 0..8 {
            a[i] += d[i];
            b[i] += d[i] * (xv[i] - m);
        }
    }
    let mut sa: f64 = a.iter().map(|&v| f64::from(v)).sum();
    let mut sb: f64 = b.iter().map(|&v| f64::from(v)).sum();
    for (&d, &xv) in td.iter().zip(tx) {
        sa += f64::from(d);
        sb += f64::from(d) * f64::from(xv - m);
    }
    (sa, sb)
}

/// [`sum_dy_dyx`] of `dy` masked where a clamp's output `y` is outside `(0, max)` (the same
/// sums as over [`clamp_relu_backward`]'s output).
#[inline(always)]
fn sum_dy_dyx_masked(dy: &[f32], y: &[f32], max: f32, x: &[f32], m: f32) -> (f64, f64) {
    let (mut a, mut b) = ([0f32; 8], [0f32; 8]);
    let (cd, cy, cx) = (dy.chunks_exact(8), y.chunks_exact(8), x.chunks_exact(8));
    let (td, ty, tx) = (cd.remainder(), cy.remainder(), cx.remainder());
    for ((d, yv), xv) in cd.zip(cy).zip(cx) {
        for i in 0..8 {
            let g = if yv[i] > 0.0 && yv[i] < max {
                d[i]
            } else {
                0.0
            };
            a[i] += g;
            b[i] += g * (xv[i] - m);
        }
    }
    let mut sa: f64 = a.iter().map(|&v| f64::from(v)).sum();
    let mut sb: f64 = b.iter().map(|&v| f64::from(v)).sum();
    for ((&d, &yv), &xv) in td.iter().zip(ty).zip(tx) {
        let g = if yv > 0.0 && yv < max { d } else { 0.0 };
        sa += f64::from(g);
        sb += f64::from(g) * f64::from(xv - m);
    }
    (sa, sb)
}

/// Per-channel statistics of a BatchNorm in training mode: (mean, biased variance).
pub fn batch_stats(x: &[f32], s: Nchw) -> (Vec<f32>, Vec<f32>) {
    let hw = s.plane();
    let count = (s.n * hw).max(1) as f64;
    let stats: Vec<(f32, f32)> = (0..s.c)
        .into_par_iter()
        .map(|c| {
            simd(
                #[inline(always)]
                || {
                    let plane = |n: usize| &x[(n * s.c + c) * hw..(n * s.c + c + 1) * hw];
                    let sum: f64 = (0..s.n).map(|n| sum_f32(plane(n))).sum();
                    let mean = (sum / count) as f32;
                    let sq: f64 = (0..s.n).map(|n| sum_sq_dev(plane(n), mean)).sum();
                    (mean, (sq / count) as f32)
                },
            )
        })
        .collect();
    stats.into_iter().unzip()
}

/// `y = act(x * scale[c] + shift[c])` over every plane (a fused ReLU / ReLU6 / SiLU).
pub fn channel_affine(x: &[f32], s: Nchw, scale: &[f32], shift: &[f32], act: Act) -> Vec<f32> {
    let hw = s.plane().max(1);
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(i, (yo, xi))| {
            let c = i % s.c;
            let (a, b) = (scale[c], shift[c]);
            simd(
                #[inline(always)]
                || match act {
                    Act::None => {
                        for (o, &v) in yo.iter_mut().zip(xi) {
                            *o = v * a + b;
                        }
                    }
                    Act::Clamp(m) => {
                        for (o, &v) in yo.iter_mut().zip(xi) {
                            *o = (v * a + b).max(0.0).min(m);
                        }
                    }
                    Act::Silu => {
                        for (o, &v) in yo.iter_mut().zip(xi) {
                            let z = v * a + b;
                            *o = z * crate::dense::sigmoid(z);
                        }
                    }
                },
            )
        });
    y
}

/// The per-channel `(scale, shift)` of a BatchNorm with the given statistics.
fn bn_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    (0..gamma.len())
        .map(|c| {
            let inv = 1.0 / (f64::from(var[c]) + eps).sqrt();
            let scale = (f64::from(gamma[c]) * inv) as f32;
            let shift =
                (f64::from(beta[c]) - f64::from(mean[c]) * f64::from(gamma[c]) * inv) as f32;
            (scale, shift)
        })
        .unzip()
}

/// BatchNorm with batch statistics, then `act`: (output, mean, biased variance).
pub fn batch_norm_train(
    x: &[f32],
    s: Nchw,
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    act: Act,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = batch_stats(x, s);
    let (scale, shift) = bn_affine(gamma, beta, &mean, &var, eps);
    (channel_affine(x, s, &scale, &shift, act), mean, var)
}

/// Gradients of [`batch_norm_train`]: (dx, dgamma, dbeta). With a fused clamp the gradient
/// passes where its output `y` is inside `(0, max)` (PyTorch's convention); with SiLU it is
/// scaled by SiLU's derivative at the normalised value, recomputed from `x` and `beta`
/// exactly as the forward pass computed it. (`y` is read only for a clamp, `beta` only for
/// SiLU.)
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train_backward(
    x: &[f32],
    s: Nchw,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    dy: &[f32],
    y: &[f32],
    act: Act,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let masked;
    // A fused clamp masks `dy` inside both passes below (from `y`), not as a pass of its own.
    let mut clamp = None;
    let dy = match act {
        Act::None => dy,
        Act::Clamp(max) => {
            clamp = Some(max);
            dy
        }
        Act::Silu => {
            let (scale, shift) = bn_affine(gamma, beta, mean, var, eps);
            let hw = s.plane().max(1);
            let mut g = vec![0f32; dy.len()];
            g.par_chunks_mut(hw)
                .zip(dy.par_chunks(hw).zip(x.par_chunks(hw)))
                .enumerate()
                .for_each(|(i, (o, (d, xv)))| {
                    let (a, b) = (scale[i % s.c], shift[i % s.c]);
                    simd(
                        #[inline(always)]
                        || {
                            for ((o, &d), &v) in o.iter_mut().zip(d).zip(xv) {
                                let z = v * a + b;
                                let sg = crate::dense::sigmoid(z);
                                *o = d * sg * (1.0 + z * (1.0 - sg));
                            }
                        },
                    )
                });
            masked = g;
            &masked[..]
        }
    };
    let hw = s.plane();
    let count = (s.n * hw).max(1) as f64;
    let sums: Vec<(f64, f64)> = (0..s.c)
        .into_par_iter()
        .map(|c| {
            simd(
                #[inline(always)]
                || {
                    let mut a = 0f64;
                    let mut b = 0f64;
                    for n in 0..s.n {
                        let r = (n * s.c + c) * hw..(n * s.c + c + 1) * hw;
                        let (sa, sb) = match clamp {
                            None => sum_dy_dyx(&dy[r.clone()], &x[r], mean[c]),
                            Some(max) => sum_dy_dyx_masked(
                                &dy[r.clone()],
                                &y[r.clone()],
                                max,
                                &x[r],
                                mean[c],
                            ),
                        };
                        a += sa;
                        b += sb;
                    }
                    (a, b)
                },
            )
        })
        .collect();
    let mut dgamma = vec![0f32; s.c];
    let mut dbeta = vec![0f32; s.c];
    // dx = A·dy + B·x + C per channel (the normalised input expanded).
    let mut ka = vec![0f32; s.c];
    let mut kb = vec![0f32; s.c];
    let mut kc = vec![0f32; s.c];
    for c in 0..s.c {
        let inv = 1.0 / (f64::from(var[c]) + eps).sqrt();
        let (sum_dy, sum_dyx) = sums[c];
        let sum_dy_xhat = sum_dyx * inv;
        dgamma[c] = sum_dy_xhat as f32;
        dbeta[c] = sum_dy as f32;
        let a = f64::from(gamma[c]) * inv;
        let b = -a * inv * sum_dy_xhat / count;
        ka[c] = a as f32;
        kb[c] = b as f32;
        kc[c] = (-a * sum_dy / count - b * f64::from(mean[c])) as f32;
    }
    let mut dx = vec![0f32; x.len()];
    let p = hw.max(1);
    dx.par_chunks_mut(p)
        .zip(dy.par_chunks(p).zip(x.par_chunks(p)))
        .enumerate()
        .for_each(|(i, (o, (d, xv)))| {
            let c = i % s.c;
            let (a, b, k) = (ka[c], kb[c], kc[c]);
            simd(
                #[inline(always)]
                || match clamp {
                    None => {
                        for ((o, &d), &v) in o.iter_mut().zip(d).zip(xv) {
                            *o = a * d + b * v + k;
                        }
                    }
                    Some(max) => {
                        let yp = &y[i * p..(i + 1) * p];
                        for (((o, &d), &v), &yv) in o.iter_mut().zip(d).zip(xv).zip(yp) {
                            let d = if yv > 0.0 && yv < max { d } else { 0.0 };
                            *o = a * d + b * v + k;
                        }
                    }
                },
            )
        });
    (dx, dgamma, dbeta)
}

/// `min(max(x, 0), max)`: ReLU (`max = ∞`) and ReLU6.
pub fn clamp_relu(x: &[f32], max: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(1 << 14)
        .zip(x.par_chunks(1 << 14))
        .for_each(|(o, i)| {
            simd(
                #[inline(always)]
                || {
                    for (o, &v) in o.iter_mut().zip(i) {
                        *o = v.max(0.0).min(max);
                    }
                },
            )
        });
    y
}

/// The gradient of [`clamp_relu`] from its output: `dy` where `0 < y < max`, else 0 — the
/// convention of PyTorch's `relu` and `hardtanh` backward.
pub fn clamp_relu_backward(y: &[f32], dy: &[f32], max: f32) -> Vec<f32> {
    let mut dx = vec![0f32; y.len()];
    dx.par_chunks_mut(1 << 14)
        .zip(y.par_chunks(1 << 14).zip(dy.par_chunks(1 << 14)))
        .for_each(|(o, (y, d))| {
            simd(
                #[inline(always)]
                || {
                    for ((o, &y), &d) in o.iter_mut().zip(y).zip(d) {
                        *o = if y > 0.0 && y < max { d } else { 0.0 };
                    }
                },
            )
        });
    dx
}

/// A 2-d convolution's geometry (one group per channel for the depthwise kernels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    /// top, left (bottom and right follow from the output size).
    pub pad: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

/// Output indices `o` in `0..out` with `0 <= o*stride - pad + k < size`.
#[inline(always)]
fn valid(out: usize, stride: usize, pad: usize, k: usize, size: usize) -> std::ops::Range<usize> {
    // o*stride >= pad - k  and  o*stride < size + pad - k
    let lo = if pad > k {
        (pad - k).div_ceil(stride)
    } else {
        0
    };
    let hi = if size + pad > k {
        (size + pad - k).div_ceil(stride)
    } else {
        0
    };
    lo.min(out)..hi.min(out)
}

/// One output row of one kernel tap that reads inside the image: tap `ky * kw + kx`, output
/// row `oy` reading input row `iy`, output columns `ox` reading input columns
/// `ix0, ix0 + stride_w, ...`.
struct TapRow {
    tap: usize,
    oy: usize,
    iy: usize,
    ox: std::ops::Range<usize>,
    ix0: usize,
}

/// Every [`TapRow`] of a convolution over an `h x w` plane, taps in order, rows in order —
/// the one walk every convolution kernel here shares (padding handled by the bounds, no
/// per-element test).
#[inline(always)]
fn tap_rows(h: usize, w: usize, g: Conv, mut f: impl FnMut(TapRow)) {
    for tap in 0..g.kh * g.kw {
        rows_of_tap(h, w, g, tap, &mut f);
    }
}

/// The [`TapRow`]s of one tap, rows in order.
#[inline(always)]
fn rows_of_tap(h: usize, w: usize, g: Conv, tap: usize, mut f: impl FnMut(TapRow)) {
    let (ky, kx) = (tap / g.kw, tap % g.kw);
    let ox = valid(g.ow, g.stride[1], g.pad[1], kx, w);
    if ox.is_empty() {
        return;
    }
    let ix0 = ox.start * g.stride[1] + kx - g.pad[1];
    for oy in valid(g.oh, g.stride[0], g.pad[0], ky, h) {
        f(TapRow {
            tap,
            oy,
            iy: oy * g.stride[0] + ky - g.pad[0],
            ox: ox.clone(),
            ix0,
        });
    }
}

/// `out[i * stride] += a * inp[i]` over `inp`.
#[inline(always)]
fn axpy_scatter(out: &mut [f32], inp: &[f32], stride: usize, a: f32) {
    if stride == 1 {
        for (o, &v) in out.iter_mut().zip(inp) {
            *o += v * a;
        }
    } else {
        for (o, &v) in out.iter_mut().step_by(stride).zip(inp) {
            *o += v * a;
        }
    }
}

/// An activation applied in a kernel's output pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    /// The identity.
    None,
    /// `min(max(x, 0), max)`: ReLU with `max = ∞`, ReLU6 with 6.
    Clamp(f32),
    /// `x · sigmoid(x)`.
    Silu,
}

impl Act {
    /// As one number across the backend trait: 0 the identity, a positive number the clamp
    /// to `[0, it]`, a negative one SiLU.
    pub fn code(self) -> f32 {
        match self {
            Act::None => 0.0,
            Act::Clamp(m) => m,
            Act::Silu => -1.0,
        }
    }

    /// The inverse of [`Act::code`].
    pub fn from_code(v: f32) -> Self {
        if v > 0.0 {
            Act::Clamp(v)
        } else if v < 0.0 {
            Act::Silu
        } else {
            Act::None
        }
    }
}

/// `out = act(out + bias)` over one channel's values, vectorised (called inside [`simd`]).
#[inline(always)]
fn epilogue(out: &mut [f32], bias: f32, act: Act) {
    match act {
        Act::None => {
            if bias != 0.0 {
                for v in out.iter_mut() {
                    *v += bias;
                }
            }
        }
        Act::Clamp(m) => {
            for v in out.iter_mut() {
                *v = (*v + bias).max(0.0).min(m);
            }
        }
        Act::Silu => {
            for v in out.iter_mut() {
                let z = *v + bias;
                *v = z * crate::dense::sigmoid(z);
            }
        }
    }
}

/// Output values per step of the depthwise kernels: one AVX-512 register (two AVX2).
const DW_LANES: usize = 16;

/// One plane zero-padded and split by column phase, so that every tap of a strided
/// convolution reads contiguous values: phase `q`, row `r`, element `j` holds padded column
/// `j·stride + q` of padded row `r` (0 outside the image). Rows are `width` long, enough for
/// whole [`DW_LANES`] steps past the last output column.
struct Phased {
    data: Vec<f32>,
    rows: usize,
    width: usize,
    stride: usize,
}

impl Phased {
    fn new() -> Self {
        Self {
            data: Vec::new(),
            rows: 0,
            width: 0,
            stride: 1,
        }
    }

    /// Fills from `plane` (`h x w`), padded by `top`/`left`, `rows` padded rows, `width`
    /// values per phase row. With `dilate > 1` the plane's values land every `dilate`
    /// padded rows/columns (the transposed convolution of a strided one), zeros between;
    /// dilation and phases do not combine (`stride` 1 then).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fill(
        &mut self,
        plane: &[f32],
        h: usize,
        w: usize,
        top: usize,
        left: usize,
        dilate: [usize; 2],
        rows: usize,
        width: usize,
        stride: usize,
    ) {
        debug_assert!(stride == 1 || dilate[1] == 1);
        self.rows = rows;
        self.width = width;
        self.stride = stride;
        self.data.clear();
        self.data.resize(stride * rows * width, 0.0);
        for iy in 0..h {
            let r = iy * dilate[0] + top;
            if r >= rows {
                break;
            }
            let src = &plane[iy * w..(iy + 1) * w];
            if stride == 1 {
                let dst = &mut self.data[r * width..(r + 1) * width];
                if left >= width {
                    continue;
                }
                if dilate[1] == 1 {
                    let n = w.min(width - left);
                    dst[left..left + n].copy_from_slice(&src[..n]);
                } else {
                    for (d, &v) in dst[left..].iter_mut().step_by(dilate[1]).zip(src) {
                        *d = v;
                    }
                }
                continue;
            }
            // Phase q holds padded columns j·stride + q, i.e. input columns j·stride + q − left.
            for q in 0..stride {
                let j0 = if left > q {
                    (left - q).div_ceil(stride)
                } else {
                    0
                };
                let ix0 = j0 * stride + q - left;
                if ix0 >= w || j0 >= width {
                    continue;
                }
                let dst = &mut self.data[(q * rows + r) * width + j0..(q * rows + r + 1) * width];
                gather_strided(dst, &src[ix0..], stride);
            }
        }
    }

    /// Where phase `q`'s padded row `r` starts in `data`.
    #[inline(always)]
    fn offset(&self, q: usize, r: usize) -> usize {
        (q * self.rows + r) * self.width
    }
}

/// `acc += d[..16] ⊙ x[..16]`.
#[inline(always)]
fn mul_acc16(acc: &mut [f32; DW_LANES], d: &[f32], x: &[f32]) {
    let d: &[f32; DW_LANES] = d[..DW_LANES].try_into().unwrap();
    let x: &[f32; DW_LANES] = x[..DW_LANES].try_into().unwrap();
    for i in 0..DW_LANES {
        acc[i] += d[i] * x[i];
    }
}

/// The offset in `src.data` of tap `(ky, kx)`'s first value for output row 0, per tap in
/// order: phase `kx mod stride`, padded row `ky`, element `kx / stride`.
#[inline(always)]
fn tap_offsets(src: &Phased, kh: usize, kw: usize, out: &mut [usize]) {
    let sx = src.stride;
    let mut t = 0;
    for ky in 0..kh {
        let (mut q, mut j) = (0, 0);
        for _ in 0..kw {
            out[t] = src.offset(q, ky) + j;
            t += 1;
            q += 1;
            if q == sx {
                q = 0;
                j += 1;
            }
        }
    }
}

/// Phase-row width for `out` outputs per row of a `k`-wide kernel with stride `s`.
fn phased_width(out: usize, k: usize, s: usize) -> usize {
    out.div_ceil(DW_LANES) * DW_LANES + k.div_ceil(s) + 1
}

/// Depthwise convolution forward (weight `[c, 1, kh, kw]`, no bias), one plane per task:
/// each plane padded once ([`Phased`]), then every output row [`DW_LANES`] values at a
/// time with all taps applied in registers.
/// With `bias` (one per channel) and `act`, the output pass also adds the bias and applies
/// the activation (inference with a folded BatchNorm).
pub fn depthwise_forward(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    g: Conv,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    if channels_last_pays(g) {
        return depthwise_forward_cl(x, s, w, g, bias, act);
    }
    let (hw, ohw, kk) = (s.plane(), g.oh * g.ow, g.kh * g.kw);
    let mut y = vec![0f32; s.n * s.c * ohw];
    let st = g.stride[1];
    let rows = (g.oh.max(1) - 1) * g.stride[0] + g.kh;
    let width = phased_width(g.ow, g.kw, st);
    y.par_chunks_mut(ohw.max(1)).enumerate().for_each_init(
        || (Phased::new(), Vec::new()),
        |(buf, row), (p, out)| {
            let c = p % s.c;
            let xp = &x[p * hw..(p + 1) * hw];
            let wc = &w[c * kk..(c + 1) * kk];
            simd(
                #[inline(always)]
                || {
                    buf.fill(xp, s.h, s.w, g.pad[0], g.pad[1], [1, 1], rows, width, st);
                    dw_plane(buf, g, wc, out, row);
                    if bias.is_some() || act != Act::None {
                        epilogue(out, bias.map_or(0.0, |b| b[c]), act);
                    }
                },
            )
        },
    );
    y
}

/// `out[oy][ox] = Σ_ky Σ_kx w[ky·kw + kx] · padded[oy·sy + ky][ox·sx + kx]` over one plane
/// (`out` `oh x ow` of `g`; the phases carry the horizontal stride), [`DW_LANES`] outputs
/// at a time in registers, taps in order.
#[inline(always)]
fn dw_plane(src: &Phased, g: Conv, w: &[f32], out: &mut [f32], row: &mut Vec<f32>) {
    // Narrow planes (the last stages) in narrower steps: less of each step is padding.
    match g.ow {
        0..=4 => dw_plane_lanes::<4>(src, g, w, out, row),
        5..=8 => dw_plane_lanes::<8>(src, g, w, out, row),
        _ => dw_plane_lanes::<DW_LANES>(src, g, w, out, row),
    }
}

#[inline(always)]
fn dw_plane_lanes<const L: usize>(
    src: &Phased,
    g: Conv,
    w: &[f32],
    out: &mut [f32],
    row: &mut Vec<f32>,
) {
    let (sy, kk) = (g.stride[0], g.kh * g.kw);
    let steps = g.ow.div_ceil(L);
    row.resize(steps * L, 0.0);
    // Each tap's offset in row 0 (on the stack for kernels up to 8x8); row `oy` adds
    // `oy · sy` padded rows. No division in the loops.
    let mut stack = [0usize; 64];
    let mut heap;
    let base: &mut [usize] = if kk <= stack.len() {
        &mut stack[..kk]
    } else {
        heap = vec![0usize; kk];
        &mut heap
    };
    tap_offsets(src, g.kh, g.kw, base);
    let mut offs_stack = [0usize; 64];
    let mut offs_heap;
    let offs: &mut [usize] = if kk <= offs_stack.len() {
        &mut offs_stack[..kk]
    } else {
        offs_heap = vec![0usize; kk];
        &mut offs_heap
    };
    for oy in 0..g.oh {
        let shift = oy * sy * src.width;
        for (o, &b) in offs.iter_mut().zip(base.iter()) {
            *o = b + shift;
        }
        for st in 0..steps {
            let mut acc = [0f32; L];
            for (&o, &wt) in offs.iter().zip(w) {
                let x: &[f32; L] = src.data[o + st * L..][..L].try_into().unwrap();
                for i in 0..L {
                    acc[i] += wt * x[i];
                }
            }
            row[st * L..(st + 1) * L].copy_from_slice(&acc);
        }
        out[oy * g.ow..(oy + 1) * g.ow].copy_from_slice(&row[..g.ow]);
    }
}

/// Depthwise convolution backward: (dx, dweight). `dx` is the stride-1 correlation of the
/// output gradient — dilated by the stride and padded by `k − 1 − pad` — with the flipped
/// kernel (one plane per task); `dweight` correlates each input plane with its output
/// gradient, [`DW_LANES`] products per tap at a time, images in order per channel.
pub fn depthwise_backward(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    g: Conv,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    if channels_last_pays(g) {
        return depthwise_backward_cl(x, s, w, g, dy);
    }
    let (hw, ohw, kk) = (s.plane(), g.oh * g.ow, g.kh * g.kw);
    assert!(
        g.pad[0] < g.kh && g.pad[1] < g.kw,
        "depthwise: padding at least the kernel size"
    );
    let mut dx = vec![0f32; x.len()];
    let flipped: Vec<f32> = (0..s.c)
        .flat_map(|c| (0..kk).rev().map(move |t| w[c * kk + t]))
        .collect();
    let full = Conv {
        kh: g.kh,
        kw: g.kw,
        stride: [1, 1],
        pad: [0, 0],
        oh: s.h,
        ow: s.w,
    };
    let rows = s.h + g.kh - 1;
    let width = phased_width(s.w, g.kw, 1);
    dx.par_chunks_mut(hw.max(1)).enumerate().for_each_init(
        || (Phased::new(), Vec::new()),
        |(buf, row), (p, dxp)| {
            let c = p % s.c;
            let dyp = &dy[p * ohw..(p + 1) * ohw];
            simd(
                #[inline(always)]
                || {
                    buf.fill(
                        dyp,
                        g.oh,
                        g.ow,
                        g.kh - 1 - g.pad[0],
                        g.kw - 1 - g.pad[1],
                        g.stride,
                        rows,
                        width,
                        1,
                    );
                    dw_plane(buf, full, &flipped[c * kk..(c + 1) * kk], dxp, row);
                },
            )
        },
    );
    // dweight: one channel per task; per image, each tap's products in DW_LANES partial sums
    // (f32), folded in order, then the images added in order in f64.
    let st = g.stride[1];
    let rows = (g.oh.max(1) - 1) * g.stride[0] + g.kh;
    let width = phased_width(g.ow, g.kw, st);
    let steps = g.ow.div_ceil(DW_LANES);
    let dw: Vec<Vec<f32>> = (0..s.c)
        .into_par_iter()
        .map_init(
            || (Phased::new(), Vec::new(), vec![0usize; kk]),
            |(buf, dpad, taps), c| {
                simd(
                    #[inline(always)]
                    || {
                        let mut total = vec![0f64; kk];
                        for n in 0..s.n {
                            let p = n * s.c + c;
                            buf.fill(
                                &x[p * hw..(p + 1) * hw],
                                s.h,
                                s.w,
                                g.pad[0],
                                g.pad[1],
                                [1, 1],
                                rows,
                                width,
                                st,
                            );
                            // The output gradient with each row padded to whole steps.
                            dpad.clear();
                            dpad.resize(g.oh * steps * DW_LANES, 0.0);
                            for oy in 0..g.oh {
                                dpad[oy * steps * DW_LANES..][..g.ow]
                                    .copy_from_slice(&dy[p * ohw + oy * g.ow..][..g.ow]);
                            }
                            // Per tap, its products over the whole plane in one register.
                            tap_offsets(buf, g.kh, g.kw, taps);
                            let row_step = g.stride[0] * buf.width;
                            for (t, tot) in total.iter_mut().enumerate() {
                                let mut acc = [0f32; DW_LANES];
                                for oy in 0..g.oh {
                                    let base = taps[t] + oy * row_step;
                                    let drow = &dpad[oy * steps * DW_LANES..][..steps * DW_LANES];
                                    for (stp, d) in drow.chunks_exact(DW_LANES).enumerate() {
                                        mul_acc16(&mut acc, d, &buf.data[base + stp * DW_LANES..]);
                                    }
                                }
                                *tot += f64::from(fold16(acc));
                            }
                        }
                        total.into_iter().map(|v| v as f32).collect()
                    },
                )
            },
        )
        .collect();
    (dx, dw.concat())
}

/// Whether a depthwise convolution runs channels-last: output rows narrower than one
/// [`DW_LANES`] step leave most of each plane-wise step idle and make the per-plane work
/// (padding, offsets) dominate; channels-last vectorises over the channels instead.
fn channels_last_pays(g: Conv) -> bool {
    g.ow < DW_LANES
}

/// `[n, c, hw]` ↔ `[n, hw, c]`: each image's `[rows, cols]` matrix transposed, one image
/// per task. Each destination row is written contiguously from a strided walk down one
/// source column (one of the two sides is short here: the positions of a narrow plane).
fn transpose_images(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut dst = vec![0f32; src.len()];
    let size = rows * cols;
    if size == 0 {
        return dst;
    }
    dst.par_chunks_mut(size).enumerate().for_each(|(i, d)| {
        let s = &src[i * size..(i + 1) * size];
        simd(
            #[inline(always)]
            || {
                for (j, drow) in d.chunks_exact_mut(rows).enumerate() {
                    for (o, &v) in drow.iter_mut().zip(s[j..].iter().step_by(cols)) {
                        *o = v;
                    }
                }
            },
        )
    });
    dst
}

/// The input rows and columns tap `(ky, kx)` reads for output `(oy, ox)`, when inside.
#[inline(always)]
fn tap_source(g: Conv, s: Nchw, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
    let iy = (oy * g.stride[0] + ky).checked_sub(g.pad[0])?;
    let ix = (ox * g.stride[1] + kx).checked_sub(g.pad[1])?;
    (iy < s.h && ix < s.w).then_some(iy * s.w + ix)
}

/// [`depthwise_forward`] channels-last: the input transposed per image to `[hw, c]`,
/// [`depthwise_forward_nhwc`], transposed back.
fn depthwise_forward_cl(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    g: Conv,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    let (hw, ohw, kk, c) = (s.plane(), g.oh * g.ow, g.kh * g.kw, s.c);
    let xt = transpose_images(x, c, hw);
    let wt = transpose_images(w, c, kk);
    let yt = depthwise_forward_nhwc(&xt, s, &wt, g, bias, act);
    transpose_images(&yt, ohw, c)
}

/// `out = act(out + bias)` along one channels-last position (`bias` per channel).
#[inline(always)]
fn row_epilogue(out: &mut [f32], bias: &[f32], act: Act) {
    match act {
        Act::None => {
            for (o, &bv) in out.iter_mut().zip(bias) {
                *o += bv;
            }
        }
        Act::Clamp(m) => {
            for (o, &bv) in out.iter_mut().zip(bias) {
                *o = (*o + bv).max(0.0).min(m);
            }
        }
        Act::Silu => {
            for (o, &bv) in out.iter_mut().zip(bias) {
                let z = *o + bv;
                *o = z * crate::dense::sigmoid(z);
            }
        }
    }
}

/// A depthwise convolution on channels-last data: `x` `[n, h, w, c]` (`s` gives the
/// sizes), the weight as `[kh·kw, c]`; one output row of one image per task, each output
/// position's channels summed over the taps in order (the order of the plane-wise kernel),
/// then the bias and the activation. Returns `[n, oh, ow, c]`.
pub fn depthwise_forward_nhwc(
    xt: &[f32],
    s: Nchw,
    wt: &[f32],
    g: Conv,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    let (hw, c) = (s.plane(), s.c);
    let zero = vec![0f32; c];
    let b = bias.unwrap_or(&zero);
    let mut yt = vec![0f32; s.n * g.oh * g.ow * c];
    if yt.is_empty() {
        return yt;
    }
    yt.par_chunks_mut(g.ow * c)
        .enumerate()
        .for_each(|(row, yr)| {
            let (n, oy) = (row / g.oh, row % g.oh);
            let xn = &xt[n * hw * c..(n + 1) * hw * c];
            simd(
                #[inline(always)]
                || {
                    for ox in 0..g.ow {
                        let out = &mut yr[ox * c..][..c];
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                if let Some(i) = tap_source(g, s, oy, ox, ky, kx) {
                                    let xr = &xn[i * c..][..c];
                                    let wr = &wt[(ky * g.kw + kx) * c..][..c];
                                    for ((o, &v), &wv) in out.iter_mut().zip(xr).zip(wr) {
                                        *o += wv * v;
                                    }
                                }
                            }
                        }
                        row_epilogue(out, b, act);
                    }
                },
            )
        });
    yt
}

/// A 1x1 convolution on channels-last data: `x` `[rows, c]` (every position of every
/// image), `w` `[co, c]`: `act(x · wᵀ + bias)` as `[rows, co]`, in row blocks fixed by the
/// shape (one single-threaded product each, the bias and activation applied while the block
/// is in cache).
pub fn pointwise_forward_nhwc(
    x: &[f32],
    rows: usize,
    c: usize,
    w: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    let mut y = vec![0f32; rows * co];
    if y.is_empty() {
        return y;
    }
    let per = rows.div_ceil(crate::dense::row_blocks(rows));
    let zero = vec![0f32; co];
    let b = bias.unwrap_or(&zero);
    y.par_chunks_mut(per * co).enumerate().for_each(|(i, yb)| {
        let r = yb.len() / co;
        let xb = &x[i * per * c..(i * per + r) * c];
        matmul_into(yb, co, Mat::rows(xb, r, c), Mat::rows(w, co, c).t(), false);
        if bias.is_some() || act != Act::None {
            simd(
                #[inline(always)]
                || {
                    for row in yb.chunks_exact_mut(co) {
                        row_epilogue(row, b, act);
                    }
                },
            );
        }
    });
    y
}

/// `act(conv2d(x, w) + bias)` on channels-last data (`x` `[n, h, w, c]`, sizes in `s`),
/// giving `[n, oh, ow, co]`: depthwise (`kind` 0) and 1x1 (`kind` 1) convolutions natively,
/// any other single-group one (`kind` 2: a stem) through the NCHW kernel between two
/// transposes.
#[allow(clippy::too_many_arguments)]
pub fn conv_inference_nhwc(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    co: usize,
    g: Conv,
    kind: usize,
    bias: &[f32],
    act: Act,
) -> Vec<f32> {
    let (hw, ohw, kk) = (s.plane(), g.oh * g.ow, g.kh * g.kw);
    match kind {
        0 => depthwise_forward_nhwc(x, s, &transpose_images(w, s.c, kk), g, Some(bias), act),
        1 => pointwise_forward_nhwc(x, s.n * hw, s.c, w, co, Some(bias), act),
        _ => {
            let xn = transpose_images(x, hw, s.c);
            let y = conv_forward(&xn, s, w, co, g, Some(bias), act);
            transpose_images(&y, co, ohw)
        }
    }
}

/// `[n, c, h, w]` → `[n, h, w, c]` (`to_last`) or back (`s` the NCHW sizes).
pub fn channels_last(x: &[f32], s: Nchw, to_last: bool) -> Vec<f32> {
    if to_last {
        transpose_images(x, s.c, s.plane())
    } else {
        transpose_images(x, s.plane(), s.c)
    }
}

/// [`depthwise_backward`] channels-last: per image (one per task) each output position's
/// gradient scattered onto the input positions its taps read, vectorised over the channels;
/// the weight gradient per run of images ([`DW_GROUPS`], fixed by the batch size) in f32,
/// the runs added in order in f64.
fn depthwise_backward_cl(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    g: Conv,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (hw, ohw, kk, c) = (s.plane(), g.oh * g.ow, g.kh * g.kw, s.c);
    if s.n == 0 || c == 0 {
        return (vec![0f32; x.len()], vec![0f32; w.len()]);
    }
    let xt = transpose_images(x, c, hw);
    let dyt = transpose_images(dy, c, ohw);
    let wt = transpose_images(w, c, kk);
    let mut dxt = vec![0f32; xt.len()];
    dxt.par_chunks_mut(hw * c).enumerate().for_each(|(n, dxn)| {
        let dyn_ = &dyt[n * ohw * c..(n + 1) * ohw * c];
        simd(
            #[inline(always)]
            || {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let d = &dyn_[(oy * g.ow + ox) * c..][..c];
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                if let Some(i) = tap_source(g, s, oy, ox, ky, kx) {
                                    let o = &mut dxn[i * c..][..c];
                                    let wr = &wt[(ky * g.kw + kx) * c..][..c];
                                    for ((o, &dv), &wv) in o.iter_mut().zip(d).zip(wr) {
                                        *o += wv * dv;
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    });
    let per = s.n.div_ceil(DW_GROUPS).max(1);
    let runs = s.n.div_ceil(per);
    let partial: Vec<Vec<f32>> = (0..runs)
        .into_par_iter()
        .map(|r| {
            let mut acc = vec![0f32; kk * c];
            simd(
                #[inline(always)]
                || {
                    for n in r * per..((r + 1) * per).min(s.n) {
                        let xn = &xt[n * hw * c..(n + 1) * hw * c];
                        let dyn_ = &dyt[n * ohw * c..(n + 1) * ohw * c];
                        for oy in 0..g.oh {
                            for ox in 0..g.ow {
                                let d = &dyn_[(oy * g.ow + ox) * c..][..c];
                                for ky in 0..g.kh {
                                    for kx in 0..g.kw {
                                        if let Some(i) = tap_source(g, s, oy, ox, ky, kx) {
                                            let xr = &xn[i * c..][..c];
                                            let a = &mut acc[(ky * g.kw + kx) * c..][..c];
                                            for ((a, &dv), &v) in a.iter_mut().zip(d).zip(xr) {
                                                *a += dv * v;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            );
            acc
        })
        .collect();
    let mut total = vec![0f64; kk * c];
    for p in &partial {
        for (t, &v) in total.iter_mut().zip(p) {
            *t += f64::from(v);
        }
    }
    let dwt: Vec<f32> = total.into_iter().map(|v| v as f32).collect();
    (transpose_images(&dxt, hw, c), transpose_images(&dwt, kk, c))
}

/// Sixteen partial sums added pairwise, always in the same order.
#[inline(always)]
fn fold16(mut a: [f32; DW_LANES]) -> f32 {
    let mut w = DW_LANES / 2;
    while w > 0 {
        for i in 0..w {
            a[i] += a[i + w];
        }
        w /= 2;
    }
    a[0]
}

/// The input positions `o·stride − pad + 0..k` of output `o` that lie inside `0..size`.
#[inline(always)]
fn window(o: usize, stride: usize, pad: usize, k: usize, size: usize) -> std::ops::Range<usize> {
    let start = o * stride;
    start.saturating_sub(pad).min(size)..(start + k).saturating_sub(pad).min(size)
}

/// Max pooling forward (padding never wins): per output the maximum over its window and
/// the index within the input plane of the first maximum (a NaN wins over any number, and
/// a later NaN over an earlier one, as in PyTorch); one plane per task.
pub fn max_pool_forward(x: &[f32], s: Nchw, g: Conv) -> (Vec<f32>, Vec<u32>) {
    let (hw, ohw) = (s.plane(), g.oh * g.ow);
    let mut y = vec![0f32; s.n * s.c * ohw];
    let mut idx = vec![0u32; y.len()];
    if y.is_empty() {
        return (y, idx);
    }
    y.par_chunks_mut(ohw)
        .zip(idx.par_chunks_mut(ohw))
        .enumerate()
        .for_each(|(p, (yp, ip))| {
            let xp = &x[p * hw..(p + 1) * hw];
            for oy in 0..g.oh {
                let rows = window(oy, g.stride[0], g.pad[0], g.kh, s.h);
                for ox in 0..g.ow {
                    let cols = window(ox, g.stride[1], g.pad[1], g.kw, s.w);
                    let mut m = f32::NEG_INFINITY;
                    let mut at = (rows.start * s.w + cols.start) as u32;
                    for iy in rows.clone() {
                        let r = &xp[iy * s.w..(iy + 1) * s.w];
                        for ix in cols.clone() {
                            let v = r[ix];
                            // Selects, not a branch: random data mispredicts half of them.
                            let take = (v > m) | v.is_nan();
                            m = if take { v } else { m };
                            at = if take { (iy * s.w + ix) as u32 } else { at };
                        }
                    }
                    yp[oy * g.ow + ox] = m;
                    ip[oy * g.ow + ox] = at;
                }
            }
        });
    (y, idx)
}

/// Max pooling forward, values only (inference): per output row the maximum over the
/// window's rows first (element by element, so it vectorises), then over each window's
/// columns. The same values as [`max_pool_forward`] (a NaN wins); one plane per task.
pub fn max_pool_values(x: &[f32], s: Nchw, g: Conv) -> Vec<f32> {
    let (hw, ohw) = (s.plane(), g.oh * g.ow);
    let mut y = vec![0f32; s.n * s.c * ohw];
    if y.is_empty() {
        return y;
    }
    y.par_chunks_mut(ohw).enumerate().for_each_init(
        || vec![0f32; s.w],
        |col, (p, yp)| {
            let xp = &x[p * hw..(p + 1) * hw];
            for (oy, yr) in yp.chunks_exact_mut(g.ow).enumerate() {
                col.fill(f32::NEG_INFINITY);
                for iy in window(oy, g.stride[0], g.pad[0], g.kh, s.h) {
                    for (m, &v) in col.iter_mut().zip(&xp[iy * s.w..(iy + 1) * s.w]) {
                        *m = if (v > *m) | v.is_nan() { v } else { *m };
                    }
                }
                for (ox, o) in yr.iter_mut().enumerate() {
                    let mut m = f32::NEG_INFINITY;
                    for &v in &col[window(ox, g.stride[1], g.pad[1], g.kw, s.w)] {
                        m = if (v > m) | v.is_nan() { v } else { m };
                    }
                    *o = m;
                }
            }
        },
    );
    y
}

/// The input gradient of [`max_pool_forward`]: each output's gradient added at its
/// maximum, in output order within each plane (one plane per task).
pub fn max_pool_backward(idx: &[u32], dy: &[f32], s: Nchw, ohw: usize) -> Vec<f32> {
    let hw = s.plane();
    let mut dx = vec![0f32; s.len()];
    if dx.is_empty() || ohw == 0 {
        return dx;
    }
    dx.par_chunks_mut(hw).enumerate().for_each(|(p, dxp)| {
        let (ip, dyp) = (&idx[p * ohw..(p + 1) * ohw], &dy[p * ohw..(p + 1) * ohw]);
        for (&i, &d) in ip.iter().zip(dyp) {
            dxp[i as usize] += d;
        }
    });
    dx
}

/// A strided matrix over a slice: element `(i, j)` at `i * rs + j * cs`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Rows `r0 .. r0 + r` (no copy).
    pub fn row_block(&self, r0: usize, r: usize) -> Mat<'a> {
        Mat {
            data: &self.data[r0 * self.rs..],
            rows: r,
            cols: self.cols,
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// The view starting `offset` values into the data (a column block of a wider matrix).
    pub fn strided(data: &'a [f32], offset: usize, rows: usize, cols: usize, rs: usize) -> Self {
        Mat {
            data: &data[offset..],
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    fn last(&self) -> usize {
        (self.rows - 1) * self.rs + (self.cols - 1) * self.cs
    }

    /// The values, row-major.
    pub fn to_row_major(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            out.extend((0..self.cols).map(|c| self.data[r * self.rs + c * self.cs]));
        }
        out
    }
}

/// `dst = a · b` (or `dst += a · b` with `accumulate`), `dst` row-major with row stride
/// `dst_rs`, on the calling thread: the convolution kernels parallelise over images or
/// output rows themselves, each product on one thread (`gemm`'s own threading gains little
/// at these shapes, and one thread per product keeps every result independent of the
/// thread count).
pub fn matmul_into(dst: &mut [f32], dst_rs: usize, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    gemm_into(dst, dst_rs, a, b, accumulate, gemm::Parallelism::None);
}

/// [`matmul_into`] on every thread of the current rayon pool: `gemm` splits the output
/// between them (never the inner dimension), so every value is summed in the same order
/// as single-threaded and the bits do not depend on the thread count. Faster than row
/// blocks of single-threaded products when both output dimensions are large (the packed
/// panels are shared instead of repacked per block): 311–316 against 274–308 GFLOP/s on
/// two cores at ViT's and BERT's linear layers.
pub fn matmul_into_threaded(
    dst: &mut [f32],
    dst_rs: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
) {
    gemm_into(dst, dst_rs, a, b, accumulate, gemm::Parallelism::Rayon(0));
}

fn gemm_into(
    dst: &mut [f32],
    dst_rs: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    assert_eq!(a.cols, b.rows, "matmul_into: inner dimensions");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        dst_rs >= n && dst.len() > (m - 1) * dst_rs + n - 1,
        "matmul_into: dst"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        a.data.len() > a.last() && b.data.len() > b.last(),
        "matmul_into: operands"
    );
    // `gemm` computes a small product (m·n <= 256) of a row-major `a` and a column-major `b`
    // as dot products along k (its "horizontal" kernels), which add in another order than its
    // microkernels: a value's bits would depend on the size of the whole product — a
    // sequence's attention scores on how far the batch is padded (issue 11's frozen text
    // prefix). A row-major copy of `b` (at most 256 columns) keeps it on the microkernels.
    let copy;
    let b = if a.cs == 1 && b.rs == 1 && m * n <= 256 && m > 1 && n > 1 {
        copy = b.to_row_major();
        Mat::rows(&copy, k, n)
    } else {
        b
    };
    // SAFETY: `gemm` reads `a` and `b` and writes `dst` only at the indices of their
    // `m x k`, `k x n` and `m x n` shapes under the given strides; the asserts above keep the
    // largest of those indices inside each slice, and `dst` is borrowed mutably, so it
    // aliases neither operand.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// One row of the columns of a convolution: what tap `tap` meets at every output position
/// of one input plane (0 in the padding), into `out` (`oh · ow` long).
#[inline(always)]
fn fill_col_row(plane: &[f32], h: usize, w: usize, g: Conv, tap: usize, out: &mut [f32]) {
    rows_of_tap(h, w, g, tap, |t| {
        let o = &mut out[t.oy * g.ow..(t.oy + 1) * g.ow][t.ox];
        let xr = &plane[t.iy * w + t.ix0..(t.iy + 1) * w];
        gather_strided(o, xr, g.stride[1]);
    });
}

/// `out[i] = inp[i · stride]`: a copy at stride 1, a de-interleave at stride 2 (which
/// vectorises, unlike `step_by`: the stride-2 stems gather most of their columns).
#[inline(always)]
fn gather_strided(out: &mut [f32], inp: &[f32], stride: usize) {
    match stride {
        1 => out.copy_from_slice(&inp[..out.len()]),
        2 => {
            let pairs = inp.chunks_exact(2);
            let last = pairs.remainder().first().copied();
            let n = pairs.len();
            for (o, p) in out.iter_mut().zip(pairs) {
                *o = p[0];
            }
            if let (Some(o), Some(v)) = (out.get_mut(n), last) {
                *o = v;
            }
        }
        _ => {
            for (o, &v) in out.iter_mut().zip(inp.iter().step_by(stride)) {
                *o = v;
            }
        }
    }
}

/// The columns of one image (`[c, h, w]`) as a `[c·kh·kw, oh·ow]` matrix into `out` (which
/// must hold zeros where the padding falls: a fresh buffer, or one filled by the same
/// geometry before).
#[inline(always)]
fn im2col_image(xn: &[f32], c: usize, h: usize, w: usize, g: Conv, out: &mut [f32]) {
    let (hw, l, kk) = (h * w, g.oh * g.ow, g.kh * g.kw);
    for ci in 0..c {
        for tap in 0..kk {
            let row = ci * kk + tap;
            fill_col_row(
                &xn[ci * hw..(ci + 1) * hw],
                h,
                w,
                g,
                tap,
                &mut out[row * l..(row + 1) * l],
            );
        }
    }
}

/// The columns of a convolution (one group, no dilation) as a `[c·kh·kw, n·oh·ow]` matrix:
/// row `(ci, ky, kx)`, column `(n, oy, ox)` holds the input value that tap meets there (0 in
/// the padding). One row per task. (The kernels use one image's columns at a time; this
/// whole-batch layout is the definition the tests check them against.)
#[cfg(test)]
fn im2col(x: &[f32], s: Nchw, g: Conv) -> Vec<f32> {
    let (hw, l, kk) = (s.plane(), g.oh * g.ow, g.kh * g.kw);
    let width = s.n * l;
    let mut cols = vec![0f32; s.c * kk * width];
    cols.par_chunks_mut(width.max(1))
        .enumerate()
        .for_each(|(row, out)| {
            let (ci, tap) = (row / kk, row % kk);
            for n in 0..s.n {
                let p = n * s.c + ci;
                fill_col_row(
                    &x[p * hw..(p + 1) * hw],
                    s.h,
                    s.w,
                    g,
                    tap,
                    &mut out[n * l..(n + 1) * l],
                );
            }
        });
    cols
}

/// The adjoint of [`im2col_image`]: sums a `[c·kh·kw, oh·ow]` column gradient onto one
/// image's `[c, h, w]` gradient, taps in order.
#[inline(always)]
fn col2im_image(cols: &[f32], c: usize, h: usize, w: usize, g: Conv, dxn: &mut [f32]) {
    let (hw, l, kk) = (h * w, g.oh * g.ow, g.kh * g.kw);
    for ci in 0..c {
        let dxp = &mut dxn[ci * hw..(ci + 1) * hw];
        tap_rows(h, w, g, |t| {
            let row = &cols[(ci * kk + t.tap) * l..][..l];
            let dr = &row[t.oy * g.ow..(t.oy + 1) * g.ow];
            let xr = &mut dxp[t.iy * w + t.ix0..(t.iy + 1) * w];
            axpy_scatter(xr, &dr[t.ox], g.stride[1], 1.0);
        });
    }
}

/// A single-group convolution (weight `[co, c, kh, kw]`): per image, im2col and one product
/// `W · cols` — by bands of output rows when one image's columns would not stay in cache
/// ([`CONV_COLS_BUDGET`]) — then (with `bias` / `act`) the bias and activation while the
/// image's output is in cache; one image per task. Banding splits the product by output
/// columns only, so it does not change a bit.
pub fn conv_forward(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    co: usize,
    g: Conv,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    conv_forward_banded(x, s, w, co, g, bias, act, [CONV_COLS_BUDGET, BAND_MIN_COLS])
}

/// [`conv_forward`] with the columns of one product bounded by `budget[0]` values, and at
/// least `budget[1]` output positions per band.
#[allow(clippy::too_many_arguments)]
fn conv_forward_banded(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    co: usize,
    g: Conv,
    bias: Option<&[f32]>,
    act: Act,
    budget: [usize; 2],
) -> Vec<f32> {
    let (hw, l, k) = (s.plane(), g.oh * g.ow, s.c * g.kh * g.kw);
    let mut y = vec![0f32; s.n * co * l];
    // Output rows per product: the columns of a band of rows stay within the budget, and
    // a band keeps enough columns for `gemm` to run at speed.
    let band = (budget[0] / (k * g.ow).max(1))
        .max(budget[1].div_ceil(g.ow.max(1)))
        .clamp(1, g.oh.max(1));
    y.par_chunks_mut((co * l).max(1)).enumerate().for_each_init(
        || vec![0f32; k * band * g.ow],
        |cols, (n, yn)| {
            let xn = &x[n * s.c * hw..(n + 1) * s.c * hw];
            if band == g.oh {
                simd(
                    #[inline(always)]
                    || im2col_image(xn, s.c, s.h, s.w, g, cols),
                );
                matmul_into(yn, l, Mat::rows(w, co, k), Mat::rows(cols, k, l), false);
            } else {
                for oy0 in (0..g.oh).step_by(band) {
                    let rows = oy0..(oy0 + band).min(g.oh);
                    let p = rows.len() * g.ow;
                    simd(
                        #[inline(always)]
                        || im2col_band(xn, s.c, s.h, s.w, g, rows.clone(), &mut cols[..k * p]),
                    );
                    let cb = Mat::rows(&cols[..k * p], k, p);
                    matmul_into(&mut yn[oy0 * g.ow..], l, Mat::rows(w, co, k), cb, false);
                }
            }
            channel_epilogue(yn, l, bias, act);
        },
    );
    y
}

/// How many values the columns of one product in [`conv_forward`] may take (512 KB): a
/// band of output rows whose columns stay in a core's L2 cache is written by im2col and
/// read by `gemm` without a trip to memory (ResNet-18's first stage at 224² has 7.2 MB of
/// columns per image; banded 10% faster, the 7x7 stem 5%).
const CONV_COLS_BUDGET: usize = 1 << 17;

/// The fewest output positions a band of [`conv_forward`] keeps (narrower products run
/// slower than the cache misses they save: ResNet's 7² stage).
const BAND_MIN_COLS: usize = 256;

/// [`im2col_image`] for the output rows `rows` only: a `[c·kh·kw, rows·ow]` matrix, every
/// value written (padding as 0), so the buffer can be reused between bands.
#[inline(always)]
fn im2col_band(
    xn: &[f32],
    c: usize,
    h: usize,
    w: usize,
    g: Conv,
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let (hw, kk) = (h * w, g.kh * g.kw);
    let p = rows.len() * g.ow;
    for ci in 0..c {
        let plane = &xn[ci * hw..(ci + 1) * hw];
        for tap in 0..kk {
            let (ky, kx) = (tap / g.kw, tap % g.kw);
            let ox = valid(g.ow, g.stride[1], g.pad[1], kx, w);
            let oys = valid(g.oh, g.stride[0], g.pad[0], ky, h);
            let row = &mut out[(ci * kk + tap) * p..(ci * kk + tap + 1) * p];
            for (r, oy) in rows.clone().enumerate() {
                let o = &mut row[r * g.ow..(r + 1) * g.ow];
                if ox.is_empty() || !oys.contains(&oy) {
                    o.fill(0.0);
                    continue;
                }
                o[..ox.start].fill(0.0);
                o[ox.end..].fill(0.0);
                let iy = oy * g.stride[0] + ky - g.pad[0];
                let ix0 = ox.start * g.stride[1] + kx - g.pad[1];
                let xr = &plane[iy * w + ix0..(iy + 1) * w];
                gather_strided(&mut o[ox.clone()], xr, g.stride[1]);
            }
        }
    }
}

/// [`epilogue`] over the `[co, l]` rows of one image, when there is anything to do.
#[inline(always)]
fn channel_epilogue(yn: &mut [f32], l: usize, bias: Option<&[f32]>, act: Act) {
    if bias.is_none() && act == Act::None {
        return;
    }
    simd(
        #[inline(always)]
        || {
            for (c, row) in yn.chunks_exact_mut(l.max(1)).enumerate() {
                epilogue(row, bias.map_or(0.0, |b| b[c]), act);
            }
        },
    );
}

/// Columns per task of [`pointwise_forward`] on a single image: its positions are cut into
/// blocks of at most this many (fixed by the shape), so one image still uses every core.
const PW_COLS: usize = 1024;

/// Below this many positions per image a 1x1 convolution runs as one product over the
/// whole batch (`[c, n·hw]`, packed) instead of one small product per image.
const PW_PACK_BELOW: usize = 256;

/// `[n, c, hw]` → `[c, n·hw]` (the images side by side per channel); one channel per task.
fn pack_channels(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut((n * hw).max(1))
        .enumerate()
        .for_each(|(ci, row)| {
            for (ni, seg) in row.chunks_exact_mut(hw.max(1)).enumerate() {
                seg.copy_from_slice(&x[(ni * c + ci) * hw..][..hw]);
            }
        });
    out
}

/// A 1x1 convolution, stride 1, no padding (weight `[co, c]`): per image `W · X_n` with the
/// bias and activation applied while the image's output is in cache, one image per task (a
/// single image in blocks of at most [`PW_COLS`] positions); with fewer than
/// [`PW_PACK_BELOW`] positions, one product over the packed batch.
pub fn pointwise_forward(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    co: usize,
    bias: Option<&[f32]>,
    act: Act,
) -> Vec<f32> {
    let hw = s.plane();
    if s.n > 1 && hw < PW_PACK_BELOW && hw > 0 {
        // Channels-last in between: one product over every position of the batch.
        let xt = transpose_images(x, s.c, hw);
        let yt = pointwise_forward_nhwc(&xt, s.n * hw, s.c, w, co, None, Act::None);
        let mut y = transpose_images(&yt, hw, co);
        if bias.is_some() || act != Act::None {
            y.par_chunks_mut(co * hw)
                .for_each(|yn| channel_epilogue(yn, hw, bias, act));
        }
        return y;
    }
    let mut y = vec![0f32; s.n * co * hw];
    if y.is_empty() {
        return y;
    }
    let blocks = if s.n == 1 { hw.div_ceil(PW_COLS) } else { 1 };
    let per = hw.div_ceil(blocks);
    y.par_chunks_mut(co * hw).enumerate().for_each(|(n, yn)| {
        let xn = &x[n * s.c * hw..(n + 1) * s.c * hw];
        if blocks == 1 {
            matmul_into(yn, hw, Mat::rows(w, co, s.c), Mat::rows(xn, s.c, hw), false);
            channel_epilogue(yn, hw, bias, act);
            return;
        }
        let mut parts: Vec<Vec<f32>> = (0..blocks)
            .into_par_iter()
            .map(|b| {
                let j0 = b * per;
                let cols = per.min(hw - j0);
                let mut out = vec![0f32; co * cols];
                matmul_into(
                    &mut out,
                    cols,
                    Mat::rows(w, co, s.c),
                    Mat::strided(xn, j0, s.c, cols, hw),
                    false,
                );
                channel_epilogue(&mut out, cols, bias, act);
                out
            })
            .collect();
        for (b, part) in parts.iter_mut().enumerate() {
            let j0 = b * per;
            let cols = per.min(hw - j0);
            for (c, row) in part.chunks_exact(cols).enumerate() {
                yn[c * hw + j0..c * hw + j0 + cols].copy_from_slice(row);
            }
        }
    });
    y
}

/// The gradients of [`pointwise_forward`] (no bias, no activation): `dX_n = Wᵀ · dY_n` (one
/// image per task, or one packed product below [`PW_PACK_BELOW`] positions) and
/// `dW = dY · Xᵀ` as one product over the packed batch.
pub fn pointwise_backward(
    x: &[f32],
    s: Nchw,
    w: &[f32],
    co: usize,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let hw = s.plane();
    if hw == 0 || s.n == 0 {
        return (vec![0f32; x.len()], vec![0f32; co * s.c]);
    }
    let l = s.n * hw;
    if hw < PW_PACK_BELOW {
        // Channels-last in between: `dW = dYᵀ · X` and `dX = dY · W` over every position.
        let dyt = transpose_images(dy, co, hw);
        let xt = transpose_images(x, s.c, hw);
        let dw = crate::dense::par_matmul(Mat::rows(&dyt, l, co).t(), Mat::rows(&xt, l, s.c), None);
        let dxt = crate::dense::par_matmul(Mat::rows(&dyt, l, co), Mat::rows(w, co, s.c), None);
        return (transpose_images(&dxt, hw, s.c), dw);
    }
    let dyp = pack_channels(dy, s.n, co, hw);
    let xp = pack_channels(x, s.n, s.c, hw);
    let dw = crate::dense::par_matmul(Mat::rows(&dyp, co, l), Mat::rows(&xp, s.c, l).t(), None);
    let wt = Mat::rows(w, co, s.c).t();
    let dx = {
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(s.c * hw)
            .enumerate()
            .for_each(|(n, dxn)| {
                matmul_into(
                    dxn,
                    hw,
                    wt,
                    Mat::rows(&dy[n * co * hw..(n + 1) * co * hw], co, hw),
                    false,
                );
            });
        dx
    };
    (dx, dw)
}

/// The input gradient of [`conv_forward`]: per image `col2im(Wᵀ · dY_n)`, one image per task.
pub fn conv_backward_x(dy: &[f32], s: Nchw, w: &[f32], co: usize, g: Conv) -> Vec<f32> {
    let (hw, l, k) = (s.plane(), g.oh * g.ow, s.c * g.kh * g.kw);
    let mut dx = vec![0f32; s.len()];
    dx.par_chunks_mut((s.c * hw).max(1))
        .enumerate()
        .for_each_init(
            || vec![0f32; k * l],
            |dcols, (n, dxn)| {
                let dyn_ = &dy[n * co * l..(n + 1) * co * l];
                matmul_into(
                    dcols,
                    l,
                    Mat::rows(w, co, k).t(),
                    Mat::rows(dyn_, co, l),
                    false,
                );
                simd(
                    #[inline(always)]
                    || col2im_image(dcols, s.c, s.h, s.w, g, dxn),
                );
            },
        );
    dx
}

/// How many partial sums [`conv_backward_w`] splits a batch into: a function of the batch
/// size only, so the result does not depend on the thread count.
const DW_GROUPS: usize = 8;

/// The weight gradient of [`conv_forward`]: `Σ_n dY_n · cols_nᵀ`. The batch is cut into at
/// most [`DW_GROUPS`] runs of consecutive images, one task each (its own im2col, one
/// product per image accumulated in order); the partial sums are then added in run order.
pub fn conv_backward_w(x: &[f32], s: Nchw, dy: &[f32], co: usize, g: Conv) -> Vec<f32> {
    let (hw, l, k) = (s.plane(), g.oh * g.ow, s.c * g.kh * g.kw);
    let size = co * k;
    let per = s.n.div_ceil(DW_GROUPS).max(1);
    let runs = s.n.div_ceil(per);
    let mut partial = vec![0f32; runs * size];
    partial
        .par_chunks_mut(size.max(1))
        .enumerate()
        .for_each_init(
            || vec![0f32; k * l],
            |cols, (r, out)| {
                for (i, n) in (r * per..((r + 1) * per).min(s.n)).enumerate() {
                    simd(
                        #[inline(always)]
                        || {
                            im2col_image(
                                &x[n * s.c * hw..(n + 1) * s.c * hw],
                                s.c,
                                s.h,
                                s.w,
                                g,
                                cols,
                            )
                        },
                    );
                    let dyn_ = &dy[n * co * l..(n + 1) * co * l];
                    matmul_into(
                        out,
                        k,
                        Mat::rows(dyn_, co, l),
                        Mat::rows(cols, k, l).t(),
                        i > 0,
                    );
                }
            },
        );
    if runs == 1 {
        return partial;
    }
    let mut dw = vec![0f32; size];
    dw.par_chunks_mut(4096).enumerate().for_each(|(b, out)| {
        let base = b * 4096;
        for r in 0..runs {
            let p = &partial[r * size + base..][..out.len()];
            for (o, &v) in out.iter_mut().zip(p) {
                *o += v;
            }
        }
    });
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The naive definition of a depthwise convolution.
    fn naive_dw(x: &[f32], s: Nchw, w: &[f32], g: Conv) -> Vec<f32> {
        let mut y = vec![0f32; s.n * s.c * g.oh * g.ow];
        for n in 0..s.n {
            for c in 0..s.c {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut acc = 0f64;
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let iy = (oy * g.stride[0] + ky) as isize - g.pad[0] as isize;
                                let ix = (ox * g.stride[1] + kx) as isize - g.pad[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < s.h && (ix as usize) < s.w
                                {
                                    acc += f64::from(
                                        x[((n * s.c + c) * s.h + iy as usize) * s.w + ix as usize],
                                    ) * f64::from(w[(c * g.kh + ky) * g.kw + kx]);
                                }
                            }
                        }
                        y[((n * s.c + c) * g.oh + oy) * g.ow + ox] = acc as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn banded_convolutions_are_bit_identical_to_whole_image_ones_issue_11() {
        // 7x7 /2 with padding (the stem), 3x3 /1 and /2, odd sizes; a budget small enough
        // for bands of one to a few output rows, including a short last band.
        for (c, co, h, w, k, stride) in [
            (3, 8, 23, 21, 7, 2),
            (5, 6, 17, 19, 3, 1),
            (4, 7, 15, 13, 3, 2),
        ] {
            let s = Nchw { n: 2, c, h, w };
            let pad = k / 2;
            let g = Conv {
                kh: k,
                kw: k,
                stride: [stride, stride],
                pad: [pad, pad],
                oh: (h + 2 * pad - k) / stride + 1,
                ow: (w + 2 * pad - k) / stride + 1,
            };
            let x = data(s.len(), 11);
            let wt = data(co * c * k * k, 12);
            let b = data(co, 13);
            let act = Act::Clamp(6.0);
            let whole = conv_forward_banded(&x, s, &wt, co, g, Some(&b), act, [usize::MAX, 1]);
            for budget in [1, c * k * k * g.ow * 2, c * k * k * g.ow * 3] {
                let banded = conv_forward_banded(&x, s, &wt, co, g, Some(&b), act, [budget, 1]);
                assert!(
                    whole
                        .iter()
                        .zip(&banded)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{c}->{co} {h}x{w} k{k}/{stride}, budget {budget}"
                );
            }
        }
    }

    #[test]
    fn max_pool_is_the_window_maximum_with_or_without_indices_issue_11() {
        for (h, w, k, stride, pad) in [(9, 8, 3, 2, 1), (8, 8, 2, 2, 0), (7, 9, 3, 1, 1)] {
            let s = Nchw { n: 2, c: 3, h, w };
            let g = Conv {
                kh: k,
                kw: k,
                stride: [stride, stride],
                pad: [pad, pad],
                oh: (h + 2 * pad - k) / stride + 1,
                ow: (w + 2 * pad - k) / stride + 1,
            };
            let mut x = data(s.len(), 7);
            // Ties (ReLU's zeros) and a NaN, which must win its windows.
            for v in x.iter_mut().step_by(3) {
                *v = v.max(0.0);
            }
            x[5 * w + 4] = f32::NAN;
            let (y, idx) = max_pool_forward(&x, s, g);
            let values = max_pool_values(&x, s, g);
            for p in 0..s.n * s.c {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let o = (p * g.oh + oy) * g.ow + ox;
                        let mut want = f32::NEG_INFINITY;
                        let mut at = None;
                        for iy in window(oy, stride, pad, k, h) {
                            for ix in window(ox, stride, pad, k, w) {
                                let v = x[p * h * w + iy * w + ix];
                                if at.is_none() || v > want || v.is_nan() {
                                    (want, at) = (v, Some(iy * w + ix));
                                }
                            }
                        }
                        assert_eq!(y[o].to_bits(), want.to_bits(), "{h}x{w} k{k} at {o}");
                        assert_eq!(values[o].to_bits(), want.to_bits(), "{h}x{w} k{k} at {o}");
                        assert_eq!(Some(idx[o] as usize), at, "{h}x{w} k{k} index at {o}");
                    }
                }
            }
            let dy = data(y.len(), 8);
            let dx = max_pool_backward(&idx, &dy, s, g.oh * g.ow);
            let total = |v: &[f32]| v.iter().map(|&d| f64::from(d)).sum::<f64>();
            assert!(
                (total(&dx) - total(&dy)).abs() < 1e-4,
                "every gradient lands once"
            );
        }
    }

    #[test]
    fn im2col_holds_what_each_tap_meets_and_col2im_is_its_adjoint_issue_11() {
        for (h, stride, k, pad) in [
            (7, 1, 3, 1),
            (8, 2, 3, 1),
            (9, 2, 7, 3),
            (5, 1, 1, 0),
            (6, 3, 2, 0),
        ] {
            let s = Nchw {
                n: 2,
                c: 3,
                h,
                w: h + 2,
            };
            let g = Conv {
                kh: k,
                kw: k,
                stride: [stride, stride],
                pad: [pad, pad],
                oh: (h + 2 * pad - k) / stride + 1,
                ow: (h + 2 + 2 * pad - k) / stride + 1,
            };
            let x = data(s.len(), 4);
            let cols = im2col(&x, s, g);
            let l = g.oh * g.ow;
            assert_eq!(cols.len(), s.c * k * k * s.n * l);
            for ci in 0..s.c {
                for ky in 0..k {
                    for kx in 0..k {
                        for n in 0..s.n {
                            for oy in 0..g.oh {
                                for ox in 0..g.ow {
                                    let iy = (oy * stride + ky) as isize - pad as isize;
                                    let ix = (ox * stride + kx) as isize - pad as isize;
                                    let want = if iy >= 0
                                        && ix >= 0
                                        && (iy as usize) < s.h
                                        && (ix as usize) < s.w
                                    {
                                        x[((n * s.c + ci) * s.h + iy as usize) * s.w + ix as usize]
                                    } else {
                                        0.0
                                    };
                                    let row = (ci * k + ky) * k + kx;
                                    let got = cols[row * s.n * l + n * l + oy * g.ow + ox];
                                    assert_eq!(got, want, "row {row} n {n} ({oy}, {ox})");
                                }
                            }
                        }
                    }
                }
            }
            // Image by image: the same columns, and col2im is the adjoint,
            // <im2col(x), c> = <x, col2im(c)> for any c.
            let k = s.c * g.kh * g.kw;
            for n in 0..s.n {
                let xn = &x[n * s.c * s.h * s.w..(n + 1) * s.c * s.h * s.w];
                let mut one = vec![0f32; k * l];
                im2col_image(xn, s.c, s.h, s.w, g, &mut one);
                for r in 0..k {
                    assert_eq!(one[r * l..(r + 1) * l], cols[r * s.n * l + n * l..][..l]);
                }
                let c = data(one.len(), 5 + n as u64);
                let mut back = vec![0f32; xn.len()];
                col2im_image(&c, s.c, s.h, s.w, g, &mut back);
                let lhs: f64 = one.iter().zip(&c).map(|(a, b)| f64::from(a * b)).sum();
                let rhs: f64 = xn.iter().zip(&back).map(|(a, b)| f64::from(a * b)).sum();
                assert!(
                    (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                    "{lhs} vs {rhs}"
                );
            }
        }
    }

    #[test]
    fn channels_last_inference_equals_the_nchw_kernels_transposed_issue_11() {
        // Depthwise (stride 1 and 2), 1x1 and a stem-like convolution, each with a bias and
        // every activation: the channels-last result is the NCHW result transposed.
        let s = Nchw {
            n: 3,
            c: 16,
            h: 9,
            w: 7,
        };
        let x = data(s.len(), 7);
        let xt = channels_last(&x, s, true);
        assert_eq!(
            channels_last(&xt, s, false),
            x,
            "the two transposes are inverses"
        );
        for act in [Act::None, Act::Clamp(6.0), Act::Silu] {
            for (kind, k, stride, co) in [(0, 3, 1, 16), (0, 3, 2, 16), (1, 1, 1, 24), (2, 3, 2, 8)]
            {
                let pad = (k - 1) / 2;
                let g = Conv {
                    kh: k,
                    kw: k,
                    stride: [stride, stride],
                    pad: [pad, pad],
                    oh: (s.h + 2 * pad - k) / stride + 1,
                    ow: (s.w + 2 * pad - k) / stride + 1,
                };
                let cin = if kind == 0 { 1 } else { s.c };
                let w = data(co * cin * k * k, 8);
                let b = data(co, 9);
                let want = match kind {
                    0 => depthwise_forward(&x, s, &w, g, Some(&b), act),
                    1 => pointwise_forward(&x, s, &w, co, Some(&b), act),
                    _ => conv_forward(&x, s, &w, co, g, Some(&b), act),
                };
                let got = conv_inference_nhwc(&xt, s, &w, co, g, kind, &b, act);
                let so = Nchw {
                    n: s.n,
                    c: co,
                    h: g.oh,
                    w: g.ow,
                };
                let back = channels_last(&got, so, false);
                assert_eq!(back.len(), want.len());
                for (i, (a, b)) in back.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "kind {kind} {act:?} at {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn depthwise_matches_the_definition_and_its_gradients_the_adjoint() {
        // Narrow rows take the channels-last kernel, rows of 16 and more the plane-wise one.
        for (h, stride, k, pad) in [
            (7, 1, 3, 1),
            (8, 2, 3, 1),
            (9, 2, 5, 2),
            (6, 1, 7, 3),
            (20, 1, 3, 1),
            (33, 2, 5, 2),
        ] {
            let s = Nchw {
                n: 2,
                c: 3,
                h,
                w: h + 1,
            };
            let oh = (h + 2 * pad - k) / stride + 1;
            let ow = (h + 1 + 2 * pad - k) / stride + 1;
            let g = Conv {
                kh: k,
                kw: k,
                stride: [stride, stride],
                pad: [pad, pad],
                oh,
                ow,
            };
            let x = data(s.len(), 1);
            let w = data(s.c * k * k, 2);
            let y = depthwise_forward(&x, s, &w, g, None, Act::None);
            let want = naive_dw(&x, s, &w, g);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            // <dy, conv(x)> is linear in x and w: its gradients are the backward's outputs.
            let dy = data(y.len(), 3);
            let (dx, dw) = depthwise_backward(&x, s, &w, g, &dy);
            let f = |x: &[f32], w: &[f32]| -> f64 {
                naive_dw(x, s, w, g)
                    .iter()
                    .zip(&dy)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum()
            };
            let eps = 1e-2f32;
            for i in [0, 5, x.len() / 2, x.len() - 1] {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += eps;
                xm[i] -= eps;
                let fd = (f(&xp, &w) - f(&xm, &w)) / (2.0 * f64::from(eps));
                assert!(
                    (fd - f64::from(dx[i])).abs() < 1e-3,
                    "dx[{i}] {fd} vs {}",
                    dx[i]
                );
            }
            for i in 0..w.len() {
                let (mut wp, mut wm) = (w.clone(), w.clone());
                wp[i] += eps;
                wm[i] -= eps;
                let fd = (f(&x, &wp) - f(&x, &wm)) / (2.0 * f64::from(eps));
                assert!(
                    (fd - f64::from(dw[i])).abs() < 1e-3,
                    "dw[{i}] {fd} vs {}",
                    dw[i]
                );
            }
        }
    }

    #[test]
    fn batch_norm_gradients_match_finite_differences() {
        let s = Nchw {
            n: 3,
            c: 2,
            h: 3,
            w: 5,
        };
        let x = data(s.len(), 4);
        let gamma = vec![1.3, -0.7];
        let beta = vec![0.2, 0.5];
        let dy = data(s.len(), 5);
        let eps = 1e-5;
        let f = |x: &[f32], g: &[f32], b: &[f32]| -> f64 {
            let (y, _, _) = batch_norm_train(x, s, g, b, eps, Act::None);
            y.iter()
                .zip(&dy)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum()
        };
        let (_, mean, var) = batch_norm_train(&x, s, &gamma, &beta, eps, Act::None);
        let (dx, dg, db) =
            batch_norm_train_backward(&x, s, &gamma, &beta, &mean, &var, eps, &dy, &[], Act::None);
        let h = 1e-2f32;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (f(&xp, &gamma, &beta) - f(&xm, &gamma, &beta)) / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(dx[i])).abs() < 2e-3,
                "dx[{i}] {fd} vs {}",
                dx[i]
            );
        }
        for c in 0..2 {
            let (mut gp, mut gm) = (gamma.clone(), gamma.clone());
            gp[c] += h;
            gm[c] -= h;
            let fd = (f(&x, &gp, &beta) - f(&x, &gm, &beta)) / (2.0 * f64::from(h));
            assert!((fd - f64::from(dg[c])).abs() < 2e-3);
            let (mut bp, mut bm) = (beta.clone(), beta.clone());
            bp[c] += h;
            bm[c] -= h;
            let fd = (f(&x, &gamma, &bp) - f(&x, &gamma, &bm)) / (2.0 * f64::from(h));
            assert!((fd - f64::from(db[c])).abs() < 2e-3);
        }
    }

    #[test]
    fn clamp_relu_passes_gradient_only_inside() {
        let y = clamp_relu(&[-1.0, 0.0, 0.5, 6.0, 7.0], 6.0);
        assert_eq!(y, vec![0.0, 0.0, 0.5, 6.0, 6.0]);
        let dx = clamp_relu_backward(&y, &[1.0; 5], 6.0);
        assert_eq!(dx, vec![0.0, 0.0, 1.0, 0.0, 0.0]);
    }
}
