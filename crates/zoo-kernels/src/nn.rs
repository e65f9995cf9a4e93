//! Layers as the models call them: each one takes the project's kernel when the tensor lives
//! on the CPU (`flex`, with or without autodiff) and burn's own op everywhere else (the GPU
//! backend), and each is one profiled op kind ([`crate::profile`]).

use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::{Dispatch, DispatchDevice};
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::Tensor;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;

pub use crate::cpu::Act;
use crate::ext::ZooKernels;
use crate::profile::scope;

static OWN: AtomicU8 = AtomicU8::new(0);

/// Whether the project's kernels are used (default) or burn's own ops everywhere — for
/// comparisons: `ZOO_KERNELS=burn` in the environment, or [`use_own_kernels`].
pub fn own_kernels() -> bool {
    match OWN.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let own = std::env::var("ZOO_KERNELS").map_or(true, |v| v != "burn");
            OWN.store(if own { 1 } else { 2 }, Ordering::Relaxed);
            own
        }
    }
}

/// Chooses the project's kernels (`true`) or burn's ops (`false`) for what follows.
pub fn use_own_kernels(on: bool) {
    OWN.store(if on { 1 } else { 2 }, Ordering::SeqCst);
}

/// Whether `t` takes the project's kernels: it runs on the `flex` CPU backend (possibly
/// under autodiff) and they are switched on.
pub fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    own_kernels()
        && matches!(
            t.device().as_dispatch().clone().inner(),
            DispatchDevice::Flex(_)
        )
}

fn dispatch<const D: usize>(t: burn::backend::DispatchTensor) -> Tensor<D> {
    Tensor::from_dispatch(t)
}

/// How a convolution is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    /// One filter per channel.
    Depthwise,
    /// 1x1, stride 1, no padding, one group.
    Pointwise,
    /// Any other single-group convolution without dilation: the project's im2col + gemm,
    /// forward and backward, one image per task.
    Gemm,
    /// Anything else (grouped, dilated, `Same` padding): burn's convolution.
    General,
}

fn padding(p: &PaddingConfig2d) -> Option<[usize; 4]> {
    match p {
        PaddingConfig2d::Valid => Some([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([*top, *left, *bottom, *right]),
        PaddingConfig2d::Same => None,
    }
}

fn conv_kind(
    weight: &[usize; 4],
    groups: usize,
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: Option<[usize; 4]>,
) -> ConvKind {
    let Some(pad) = pad else {
        return ConvKind::General;
    };
    if dilation != [1, 1] {
        return ConvKind::General;
    }
    if groups > 1 && weight[1] == 1 && weight[0] == groups {
        return ConvKind::Depthwise;
    }
    if groups == 1 && weight[2] == 1 && weight[3] == 1 && stride == [1, 1] && pad == [0; 4] {
        return ConvKind::Pointwise;
    }
    if groups == 1 {
        return ConvKind::Gemm;
    }
    ConvKind::General
}

/// `conv2d(x, weight) + bias` with the given geometry: the project's depthwise and
/// pointwise kernels where they apply, burn's convolution otherwise.
pub fn conv2d_raw(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: [usize; 2],
    pad: Option<[usize; 4]>,
    dilation: [usize; 2],
    groups: usize,
) -> Tensor<4> {
    let dims = weight.dims();
    let kind = if on_flex(&x) {
        match conv_kind(&dims, groups, stride, dilation, pad) {
            // Without gradients flex's own depthwise path is faster than ours (EfficientNet-B0
            // inference 77 img/s against 63); ours runs where a backward will follow.
            ConvKind::Depthwise if !(x.is_tracked() || weight.is_tracked()) => ConvKind::General,
            k => k,
        }
    } else {
        ConvKind::General
    };
    let label = match kind {
        ConvKind::Depthwise => "conv2d depthwise",
        ConvKind::Pointwise => "conv2d 1x1",
        ConvKind::Gemm | ConvKind::General => "conv2d",
    };
    scope(label, x, |x| {
        let with_bias = |y: Tensor<4>, bias: Option<Tensor<1>>| match bias {
            Some(b) => {
                let [c] = b.dims();
                y + b.reshape([1, c, 1, 1])
            }
            None => y,
        };
        match kind {
            ConvKind::Depthwise | ConvKind::Gemm => {
                let p = pad.unwrap_or([0; 4]);
                let run = if kind == ConvKind::Depthwise {
                    <Dispatch as ZooKernels>::zoo_depthwise_conv2d
                } else {
                    <Dispatch as ZooKernels>::zoo_conv2d
                };
                with_bias(
                    dispatch(run(
                        x.into_dispatch(),
                        weight.into_dispatch(),
                        stride[0],
                        stride[1],
                        p[0],
                        p[1],
                        p[2],
                        p[3],
                    )),
                    bias,
                )
            }
            ConvKind::Pointwise => with_bias(
                dispatch(<Dispatch as ZooKernels>::zoo_pointwise_conv2d(
                    x.into_dispatch(),
                    weight.into_dispatch(),
                )),
                bias,
            ),
            ConvKind::General => match pad {
                Some(p) => burn_conv2d(
                    x,
                    weight,
                    bias,
                    ConvOptions::new_with_padding(
                        stride,
                        [(p[0], p[2]), (p[1], p[3])],
                        dilation,
                        groups,
                    ),
                ),
                None => unreachable!("`Same` padding goes through conv2d()"),
            },
        }
    })
}

/// `act(conv2d(x, weight) + bias)`: without gradients (inference, a frozen prefix) on the
/// CPU one kernel whose output pass adds the bias and applies the activation (no separate
/// passes over the activations); otherwise [`conv2d_raw`] then the activation.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_raw_act(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: [usize; 2],
    pad: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    act: Act,
) -> Tensor<4> {
    let dims = weight.dims();
    let untracked = !(x.is_tracked() || weight.is_tracked() || bias.is_tracked());
    let kind = conv_kind(&dims, groups, stride, dilation, Some(pad));
    let fused = on_flex(&x)
        && untracked
        && match kind {
            ConvKind::Depthwise | ConvKind::Pointwise => Some(kind),
            // One image per task: with fewer images than threads burn's threaded one wins.
            ConvKind::Gemm if x.dims()[0] >= rayon::current_num_threads() => Some(kind),
            _ => None,
        }
        .is_some();
    if !fused {
        let y = conv2d_raw(x, weight, Some(bias), stride, Some(pad), dilation, groups);
        return activation(y, act);
    }
    let (code, label) = match kind {
        ConvKind::Depthwise => (0, "conv2d depthwise (+bias, act)"),
        ConvKind::Pointwise => (1, "conv2d 1x1 (+bias, act)"),
        _ => (2, "conv2d (+bias, act)"),
    };
    scope(label, x, |x| {
        dispatch(<Dispatch as ZooKernels>::zoo_conv2d_inference(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            code,
            stride[0],
            stride[1],
            pad[0],
            pad[1],
            pad[2],
            pad[3],
            act.code(),
            false,
        ))
    })
}

/// Whether `x` can take the channels-last inference path ([`conv2d_raw_act_nhwc`]): on the
/// CPU with the project's kernels, and no gradient to follow.
pub fn channels_last_ok(x: &Tensor<4>) -> bool {
    on_flex(x) && !x.is_tracked()
}

/// A burn `MaxPool2d` layer's forward: on the CPU the project's kernel (forward and
/// backward; explicit or no padding, no dilation, floor mode), burn's op otherwise.
pub fn max_pool2d(pool: &burn::nn::pool::MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let pad = padding(&pool.padding);
    let own = on_flex(&x) && pool.dilation == [1, 1] && !pool.ceil_mode;
    // Every window must meet the input (padding below the kernel size, as PyTorch requires),
    // so each output has a maximum to route its gradient to.
    let [kh, kw] = pool.kernel_size;
    let meets = |p: &[usize; 4]| p[0] < kh && p[2] < kh && p[1] < kw && p[3] < kw;
    let Some(p) = pad.filter(|p| own && meets(p)) else {
        return scope("max_pool", x, |x| pool.forward(x));
    };
    scope("max_pool", x, |x| {
        let indices = x.is_tracked();
        let (y, _) = <Dispatch as ZooKernels>::zoo_max_pool2d(
            x.into_dispatch(),
            indices,
            pool.kernel_size[0],
            pool.kernel_size[1],
            pool.stride[0],
            pool.stride[1],
            p[0],
            p[1],
            p[2],
            p[3],
        );
        dispatch(y)
    })
}

/// `[n, c, h, w]` → `[n, h, w, c]`, for a tensor that passes [`channels_last_ok`].
pub fn to_channels_last(x: Tensor<4>) -> Tensor<4> {
    scope("layout", x, |x| {
        dispatch(<Dispatch as ZooKernels>::zoo_channels_last(
            x.into_dispatch(),
            true,
        ))
    })
}

/// `[n, h, w, c]` → `[n, c, h, w]`: the inverse of [`to_channels_last`].
pub fn to_channels_first(x: Tensor<4>) -> Tensor<4> {
    scope("layout", x, |x| {
        dispatch(<Dispatch as ZooKernels>::zoo_channels_last(
            x.into_dispatch(),
            false,
        ))
    })
}

/// [`conv2d_raw_act`] on a channels-last `[n, h, w, c]` tensor (one that passes
/// [`channels_last_ok`]), giving `[n, oh, ow, co]`: depthwise and 1x1 convolutions run
/// natively on that layout (a 1x1 convolution is then one product over every position of
/// the batch, no packing), the rest between two transposes.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_raw_act_nhwc(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: [usize; 2],
    pad: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    act: Act,
) -> Tensor<4> {
    let dims = weight.dims();
    let kind = conv_kind(&dims, groups, stride, dilation, Some(pad));
    let (code, label) = match kind {
        ConvKind::Depthwise => (0, "conv2d depthwise (+bias, act)"),
        ConvKind::Pointwise => (1, "conv2d 1x1 (+bias, act)"),
        ConvKind::Gemm => (2, "conv2d (+bias, act)"),
        ConvKind::General => {
            let y = conv2d_raw_act(
                to_channels_first(x),
                weight,
                bias,
                stride,
                pad,
                dilation,
                groups,
                act,
            );
            return to_channels_last(y);
        }
    };
    scope(label, x, |x| {
        dispatch(<Dispatch as ZooKernels>::zoo_conv2d_inference(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            code,
            stride[0],
            stride[1],
            pad[0],
            pad[1],
            pad[2],
            pad[3],
            act.code(),
            true,
        ))
    })
}

/// `act(x)` as its own op.
pub fn activation<const D: usize>(x: Tensor<D>, act: Act) -> Tensor<D> {
    match act {
        Act::None => x,
        Act::Clamp(m) if m.is_finite() => relu6_like(x, m),
        Act::Clamp(_) => relu(x),
        Act::Silu => silu(x),
    }
}

fn relu6_like<const D: usize>(x: Tensor<D>, max: f32) -> Tensor<D> {
    if max == 6.0 {
        relu6(x)
    } else {
        clamp_relu("clamp", x, max)
    }
}

/// A burn `Conv2d` layer's forward.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let pad = padding(&conv.padding);
    if pad.is_none() {
        return scope("conv2d", x, |x| conv.forward(x));
    }
    conv2d_raw(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        conv.stride,
        pad,
        conv.dilation,
        conv.groups,
    )
}

/// Whether a BatchNorm computes batch statistics (autodiff device and a training layer).
pub fn bn_trains<const D: usize>(bn: &BatchNorm, x: &Tensor<D>) -> bool {
    x.device().is_autodiff() && bn.training.is_enabled()
}

/// A burn `BatchNorm` layer's forward. In training the batch statistics come from one pass
/// of the project's kernel, and the running statistics move as PyTorch moves them (the
/// *unbiased* batch variance, momentum 0.1 by default).
pub fn batch_norm(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    batch_norm_act(bn, x, Act::None)
}

/// [`batch_norm`] followed by `act` (ReLU, ReLU6, SiLU), fused into one kernel (forward and
/// backward) while training on the CPU.
pub fn batch_norm_act(bn: &BatchNorm, x: Tensor<4>, act: Act) -> Tensor<4> {
    let then_act = |y: Tensor<4>| activation(y, act);
    if !bn_trains(bn, &x) {
        return then_act(scope("batch_norm (running stats)", x, |x| bn.forward(x)));
    }
    if !on_flex(&x) {
        return then_act(scope("batch_norm train", x, |x| bn.forward(x)));
    }
    let label = match act {
        Act::Clamp(m) if m.is_finite() => "batch_norm train + relu6",
        Act::Clamp(_) => "batch_norm train + relu",
        Act::Silu => "batch_norm train + silu",
        Act::None => "batch_norm train",
    };
    let [n, _, h, w] = x.dims();
    let count = (n * h * w) as f64;
    scope(label, x, |x| {
        let (y, mean, var) = <Dispatch as ZooKernels>::zoo_batch_norm_train(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.epsilon,
            act.code(),
        );
        let (mean, var): (Tensor<1>, Tensor<1>) = (dispatch(mean), dispatch(var));
        let device = mean.device();
        let unbiased = if count > 1.0 {
            var.mul_scalar(count / (count - 1.0))
        } else {
            var
        };
        let m = bn.momentum;
        let rm = bn.running_mean.value_sync().to_device(&device);
        let rv = bn.running_var.value_sync().to_device(&device);
        bn.running_mean.update(
            rm.mul_scalar(1.0 - m)
                .add(mean.detach().mul_scalar(m))
                .detach(),
        );
        bn.running_var.update(
            rv.mul_scalar(1.0 - m)
                .add(unbiased.detach().mul_scalar(m))
                .detach(),
        );
        dispatch(y)
    })
}

/// `min(max(x, 0), max)` through the project's kernel on the CPU.
fn clamp_relu<const D: usize>(label: &'static str, x: Tensor<D>, max: f32) -> Tensor<D> {
    scope(label, x, |x| {
        if on_flex(&x) {
            dispatch(<Dispatch as ZooKernels>::zoo_clamp_relu(
                x.into_dispatch(),
                max,
            ))
        } else if max.is_finite() {
            x.clamp(0.0, max)
        } else {
            burn::tensor::activation::relu(x)
        }
    })
}

/// ReLU6.
pub fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    clamp_relu("relu6", x, 6.0)
}

/// ReLU.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    clamp_relu("relu", x, f32::INFINITY)
}

/// A linear layer: on the CPU the project's kernel on the rows of `x` flattened to one
/// `[rows, d]` matrix (products cut into blocks by the shape, one thread each), burn's
/// `Linear` elsewhere.
pub fn linear<const D: usize>(l: &Linear, x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return scope("linear", x, |x| l.forward(x));
    }
    scope("linear", x, |x| linear_rows(x, l.weight.val(), bias_of(l)))
}

/// `gelu(linear(x))` (a transformer's MLP): without gradients on the CPU one kernel that
/// applies GELU to each block of the product while it is in cache; otherwise
/// [`linear`] then [`gelu`].
pub fn linear_gelu<const D: usize>(l: &Linear, x: Tensor<D>) -> Tensor<D> {
    let bias = bias_of(l);
    let w = l.weight.val();
    if !on_flex(&x) || x.is_tracked() || w.is_tracked() || bias.is_tracked() {
        return gelu(linear(l, x));
    }
    scope("linear (+gelu)", x, |x| {
        let dims = x.dims();
        let [k, n] = w.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let y: Tensor<2> = dispatch(<Dispatch as ZooKernels>::zoo_linear_gelu_inference(
            x.reshape([rows, k]).into_dispatch(),
            w.into_dispatch(),
            bias.into_dispatch(),
        ));
        let mut out = dims;
        out[D - 1] = n;
        y.reshape(out)
    })
}

/// Several linear layers on the same input as one product, their outputs side by side on
/// the last axis (BERT's query, key and value): weights and biases are concatenated for the
/// product (a copy of the weights per call) and the gradients split back by autodiff.
pub fn linear_many<const D: usize>(ls: &[&Linear], x: Tensor<D>) -> Tensor<D> {
    if !on_flex(&x) {
        return scope("linear", x, |x| {
            Tensor::cat(ls.iter().map(|l| l.forward(x.clone())).collect(), D - 1)
        });
    }
    scope("linear", x, |x| {
        let w = Tensor::cat(ls.iter().map(|l| l.weight.val()).collect(), 1);
        let b = Tensor::cat(ls.iter().map(|l| bias_of(l)).collect(), 0);
        linear_rows(x, w, b)
    })
}

fn bias_of(l: &Linear) -> Tensor<1> {
    match &l.bias {
        Some(b) => b.val(),
        None => {
            let [_, n] = l.weight.dims();
            Tensor::zeros([n], &l.weight.device())
        }
    }
}

/// `x · w + b` on the rows of `x` through the project's kernel.
fn linear_rows<const D: usize>(x: Tensor<D>, w: Tensor<2>, b: Tensor<1>) -> Tensor<D> {
    let dims = x.dims();
    let [k, n] = w.dims();
    let rows = dims[..D - 1].iter().product::<usize>();
    let y: Tensor<2> = dispatch(<Dispatch as ZooKernels>::zoo_linear(
        x.reshape([rows, k]).into_dispatch(),
        w.into_dispatch(),
        b.into_dispatch(),
    ));
    let mut out = dims;
    out[D - 1] = n;
    y.reshape(out)
}

/// Multi-head self-attention, `softmax(q kᵀ / sqrt(hd) + mask) v`, over the packed output
/// of one `[d, 3·d]` projection (`qkv` `[b, t, 3·d]`: query, key, value, each `heads`
/// heads side by side — timm's `qkv` layout); `mask` `[b, t]` is added to the score of each
/// key (0 to attend, a large negative number for padding). Returns the context
/// `[b, t, d]`, heads side by side. On the CPU one fused kernel per sequence, forward and
/// backward (no head transposes, no score tensors between ops); burn's ops elsewhere.
pub fn attention(qkv: Tensor<3>, mask: Option<Tensor<2>>, heads: usize) -> Tensor<3> {
    let [b, t, d3] = qkv.dims();
    let (d, hd) = (d3 / 3, d3 / 3 / heads);
    scope("attention (matmul, softmax)", qkv, |qkv| {
        if on_flex(&qkv) {
            let mask = mask.unwrap_or_else(|| Tensor::zeros([b, t], &qkv.device()));
            let keep = qkv.is_tracked();
            let (ctx, _probs) = <Dispatch as ZooKernels>::zoo_attention(
                qkv.into_dispatch(),
                mask.into_dispatch(),
                heads,
                keep,
            );
            return dispatch(ctx);
        }
        let qkv = qkv.reshape([b, t, 3, heads, hd]);
        let part = |i: usize| {
            qkv.clone()
                .narrow(2, i, 1)
                .reshape([b, t, heads, hd])
                .swap_dims(1, 2)
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let mut scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar((hd as f64).powf(-0.5));
        if let Some(m) = mask {
            scores = scores + m.reshape([b, 1, 1, t]);
        }
        burn::tensor::activation::softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, t, d])
    })
}

/// Layer norm over the last dimension with a learned scale and shift, as
/// `torch.nn.LayerNorm(d, eps)`: the parameters are named as burn's (`gamma`, `beta`), and
/// the module keeps its epsilon where the forward pass can read it (burn's keeps it private).
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// The scale (`weight` in PyTorch).
    pub gamma: Param<Tensor<1>>,
    /// The shift (`bias` in PyTorch).
    pub beta: Param<Tensor<1>>,
    /// Added to the variance.
    pub epsilon: f64,
}

impl LayerNorm {
    /// Scale 1, shift 0 over `d` features.
    pub fn new(d: usize, epsilon: f64, device: &burn::prelude::Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([d], device)),
            beta: Param::from_tensor(Tensor::zeros([d], device)),
            epsilon,
        }
    }

    /// The normalised input, same shape. On the CPU one kernel forward and one backward
    /// (statistics per row, no intermediate tensors); burn's `layer_norm` elsewhere.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let (gamma, beta) = (self.gamma.val(), self.beta.val());
        if !on_flex(&x) {
            return burn::tensor::module::layer_norm(x, gamma, Some(beta), self.epsilon);
        }
        let dims = x.dims();
        let d = dims[D - 1];
        let rows = dims[..D - 1].iter().product::<usize>();
        let (y, _mean, _rstd) = <Dispatch as ZooKernels>::zoo_layer_norm(
            x.reshape([rows, d]).into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            self.epsilon,
        );
        dispatch::<2>(y).reshape(dims)
    }
}

/// Layer norm (profiled).
pub fn layer_norm<const D: usize>(l: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    scope("layer_norm", x, |x| l.forward(x))
}

/// GELU (erf-based, as PyTorch's default): the project's kernel on the CPU, forward and
/// backward in one pass each.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    scope("gelu", x, |x| {
        if on_flex(&x) {
            dispatch(<Dispatch as ZooKernels>::zoo_gelu(x.into_dispatch()))
        } else {
            burn::tensor::activation::gelu(x)
        }
    })
}

/// SiLU (swish): the project's kernel on the CPU, forward and backward in one pass each.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    scope("silu", x, |x| {
        if on_flex(&x) {
            dispatch(<Dispatch as ZooKernels>::zoo_silu(x.into_dispatch()))
        } else {
            burn::tensor::activation::silu(x)
        }
    })
}

/// Any other op, profiled under `kind`.
pub fn op<const D: usize, const E: usize>(
    kind: &'static str,
    x: Tensor<D>,
    f: impl FnOnce(Tensor<D>) -> Tensor<E>,
) -> Tensor<E> {
    scope(kind, x, f)
}
