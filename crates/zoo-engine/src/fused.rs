//! Convolution followed by BatchNorm, folded into one convolution whenever the BatchNorm uses
//! its running statistics (inference, or a frozen layer during fine-tuning): the per-channel
//! scale goes into the kernel and the shift into the bias, so the activation is written once
//! instead of five times (conv, subtract, divide, multiply, add). With batch statistics
//! (training) the two layers run as they are.

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// `bn(conv(x))`, the BatchNorm folded into the convolution when it is not training.
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    if x.device().is_autodiff() && bn.training.is_enabled() {
        return bn.forward(conv.forward(x));
    }
    // Our layers pad explicitly (or not at all); anything else runs unfolded.
    let ((top, bottom), (left, right)) = match &conv.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((*top, *bottom), (*left, *right)),
        PaddingConfig2d::Same => return bn.forward(conv.forward(x)),
    };
    let options = ConvOptions::new_with_padding(
        conv.stride,
        [(top, bottom), (left, right)],
        conv.dilation,
        conv.groups,
    );
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
    conv2d(x, weight, Some(shift), options)
}
