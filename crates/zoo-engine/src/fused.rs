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

/// The BatchNorm's running statistics folded into the convolution: (weight, bias).
fn folded(conv: &Conv2d, bn: &BatchNorm, x: &Tensor<4>) -> (Tensor<4>, Tensor<1>) {
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
    (weight, shift)
}

fn explicit_padding(conv: &Conv2d) -> Option<[usize; 4]> {
    match &conv.padding {
        PaddingConfig2d::Valid => Some([0; 4]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([*top, *left, *bottom, *right]),
        PaddingConfig2d::Same => None,
    }
}

fn conv_bn_inner(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, act: Act) -> Fused {
    if nn::bn_trains(bn, &x) {
        return Fused::Done(nn::batch_norm_act(bn, nn::conv2d(conv, x), act));
    }
    // Our layers pad explicitly (or not at all); anything else runs unfolded.
    let Some(pad) = explicit_padding(conv) else {
        return Fused::Pending(nn::batch_norm(bn, nn::conv2d(conv, x)));
    };
    let (weight, shift) = folded(conv, bn, &x);
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

/// Whether `bn(conv(x))` can run channels-last: `x` passes [`nn::channels_last_ok`], the
/// BatchNorm uses its running statistics and no parameter of either layer is tracked (a
/// frozen layer, or inference).
pub fn nhwc_ok(conv: &Conv2d, bn: &BatchNorm, x: &Tensor<4>) -> bool {
    nn::channels_last_ok(x)
        && !nn::bn_trains(bn, x)
        && !conv.weight.val().is_tracked()
        && !conv.bias.as_ref().is_some_and(|b| b.val().is_tracked())
        && !bn.gamma.val().is_tracked()
        && !bn.beta.val().is_tracked()
}

/// [`conv_bn_with`] on a channels-last `[n, h, w, c]` tensor (inference: `x` passes
/// [`nn::channels_last_ok`]), giving `[n, oh, ow, co]`. A BatchNorm that would use batch
/// statistics, or `Same` padding, runs through the NCHW path between two transposes.
pub fn conv_bn_nhwc(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, act: Act) -> Tensor<4> {
    let pad = explicit_padding(conv);
    let Some(pad) = pad.filter(|_| !nn::bn_trains(bn, &x)) else {
        let y = conv_bn_with(conv, bn, nn::to_channels_first(x), act);
        return nn::to_channels_last(y);
    };
    let (weight, shift) = folded(conv, bn, &x);
    nn::conv2d_raw_act_nhwc(
        x,
        weight,
        shift,
        conv.stride,
        pad,
        conv.dilation,
        conv.groups,
        act,
    )
}
