//! Convolution followed by BatchNorm, folded into one convolution whenever the BatchNorm uses
//! its running statistics (inference, or a frozen layer during fine-tuning): the per-channel
//! scale goes into the kernel and the shift into the bias, so the activation is written once
//! instead of five times (conv, subtract, divide, multiply, add). With batch statistics
//! (training) the two layers run as they are, each through the project's kernels
//! (`zoo_kernels::nn`).

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::Tensor;
use zoo_kernels::nn::{self, Act};

/// `bn(conv(x))`, the BatchNorm folded into the convolution when it is not training.
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    conv_bn_with(conv, bn, x, Act::None)
}

/// `act(bn(conv(x)))` with the clamp `[0, act]` (ReLU: `f32::INFINITY`, ReLU6: 6): fused
/// into the BatchNorm kernel while training, into the folded convolution's output pass
/// otherwise.
pub fn conv_bn_act(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, act: Option<f32>) -> Tensor<4> {
    conv_bn_with(conv, bn, x, act.map_or(Act::None, Act::Clamp))
}

/// `act(bn(conv(x)))` for any [`Act`] (EfficientNet's SiLU): in the folded convolution's
/// output pass when the BatchNorm uses its running statistics, into the BatchNorm kernel
/// while training.
pub fn conv_bn_with(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, act: Act) -> Tensor<4> {
    match conv_bn_inner(conv, bn, x, act) {
        Fused::Done(y) => y,
        Fused::Pending(y) => nn::activation(y, act),
    }
}

enum Fused {
    /// The activation is applied.
    Done(Tensor<4>),
    /// The activation is still to apply.
    Pending(Tensor<4>),
}

fn conv_bn_inner(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, act: Act) -> Fused {
    if nn::bn_trains(bn, &x) {
        return Fused::Done(nn::batch_norm_act(bn, nn::conv2d(conv, x), act));
    }
    // Our layers pad explicitly (or not at all); anything else runs unfolded.
    let pad = match &conv.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [*top, *left, *bottom, *right],
        PaddingConfig2d::Same => return Fused::Pending(nn::batch_norm(bn, nn::conv2d(conv, x))),
    };
    let device = x.device();
    let mean = bn.running_mean.value().to_device(&device);
    let var = bn.running_var.value().to_device(&device);
    // scale = gamma / sqrt(var + eps); shift = beta - mean * scale (+ conv bias * scale).
    let scale = bn.gamma.val().div(var.add_scalar(bn.epsilon).sqrt());
    let mut shift = bn.beta.val().sub(mean.mul(scale.clone()));
    if let Some(b) = &conv.bias {
        shift = shift.add(b.val().mul(scale.clone()));
    }
    let [c_out] = scale.dims();
    let weight = conv.weight.val().mul(scale.reshape([c_out, 1, 1, 1]));
    Fused::Done(nn::conv2d_raw_act(
        x,
        weight,
        shift,
        conv.stride,
        pad,
        conv.dilation,
        conv.groups,
        act,
    ))
}
