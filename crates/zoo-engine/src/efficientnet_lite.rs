//! EfficientNet-Lite0 in the lukemelas EfficientNet-PyTorch layout (`_conv_stem`, `_bn0`,
//! `_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2`, `_conv_head`, `_bn1`,
//! `_fc`): ReLU6, no squeeze-excite, TensorFlow "same" padding (asymmetric when the stride is
//! 2 on an even size), BatchNorm eps 1e-3.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::Tensor;
use burn::tensor::ops::PadMode;

use crate::weights::{WeightError, Weights};

const EPS: f64 = 1e-3;
/// (repeats, kernel, stride, expansion, output channels) per stage of EfficientNet-B0/Lite0.
const STAGES: [(usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
];

/// A convolution with TensorFlow "same" padding computed from the input size, then BatchNorm
/// and optionally ReLU6.
#[derive(Module, Debug)]
pub struct SameConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    kernel: usize,
    stride: usize,
    relu6: bool,
}

/// TensorFlow's "same" padding for one dimension: (before, after).
fn same_pad(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

impl SameConvBn {
    #[allow(clippy::too_many_arguments)]
    fn load(
        w: &Weights,
        conv: &str,
        bn: &str,
        c: [usize; 2],
        k: usize,
        s: usize,
        groups: usize,
        relu6: bool,
    ) -> Result<Self, WeightError> {
        Ok(SameConvBn {
            conv: w.conv2d(conv, c, k, s, [0, 0, 0, 0], groups, false)?,
            bn: w.batch_norm(bn, c[1], EPS)?,
            kernel: k,
            stride: s,
            relu6,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, wd] = x.dims();
        let (top, bottom) = same_pad(h, self.kernel, self.stride);
        let (left, right) = same_pad(wd, self.kernel, self.stride);
        let x = if top + bottom + left + right > 0 {
            x.pad((left, right, top, bottom), PadMode::Constant(0.0))
        } else {
            x
        };
        let act = self.relu6.then_some(6.0);
        crate::fused::conv_bn_act(&self.conv, &self.bn, x, act)
    }
}

/// A mobile inverted bottleneck (MBConv) without squeeze-excite.
#[derive(Module, Debug)]
pub struct MbConv {
    expand: Option<SameConvBn>,
    depthwise: SameConvBn,
    project: SameConvBn,
    skip: bool,
}

impl MbConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        let y = self.project.forward(self.depthwise.forward(y));
        if self.skip { y + x } else { y }
    }
}

/// EfficientNet-Lite0.
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    stem: SameConvBn,
    blocks: Vec<MbConv>,
    head: SameConvBn,
    fc: Option<Linear>,
    pub num_features: usize,
}

impl EfficientNetLite {
    pub fn load(w: &Weights, num_classes: Option<usize>) -> Result<Self, WeightError> {
        let stem = SameConvBn::load(w, "_conv_stem", "_bn0", [3, 32], 3, 2, 1, true)?;
        let mut blocks = Vec::new();
        let mut input = 32;
        let mut idx = 0;
        for (repeats, k, s, e, out) in STAGES {
            for i in 0..repeats {
                let stride = if i == 0 { s } else { 1 };
                let hidden = input * e;
                let p = format!("_blocks.{idx}");
                let expand = if e != 1 {
                    Some(SameConvBn::load(
                        w,
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        [input, hidden],
                        1,
                        1,
                        1,
                        true,
                    )?)
                } else {
                    None
                };
                let depthwise = SameConvBn::load(
                    w,
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    [hidden, hidden],
                    k,
                    stride,
                    hidden,
                    true,
                )?;
                let project = SameConvBn::load(
                    w,
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    [hidden, out],
                    1,
                    1,
                    1,
                    false,
                )?;
                blocks.push(MbConv {
                    expand,
                    depthwise,
                    project,
                    skip: stride == 1 && input == out,
                });
                input = out;
                idx += 1;
            }
        }
        let head = SameConvBn::load(w, "_conv_head", "_bn1", [input, 1280], 1, 1, 1, true)?;
        let fc = match num_classes {
            Some(n) => Some(w.linear("_fc", 1280, n)?),
            None => None,
        };
        Ok(EfficientNetLite {
            stem,
            blocks,
            head,
            fc,
            num_features: 1280,
        })
    }

    /// The sequential units, by block name: `stem`, `_blocks.0` … `_blocks.15`, then the
    /// head convolution (`_conv_head`, with its BatchNorm `_bn1`).
    pub fn unit_names(&self) -> Vec<String> {
        std::iter::once("stem".to_string())
            .chain((0..self.blocks.len()).map(|i| format!("_blocks.{i}")))
            .chain(std::iter::once("_conv_head".to_string()))
            .collect()
    }

    pub fn units(&self) -> usize {
        self.blocks.len() + 2
    }

    /// Runs units `range` (indices into [`unit_names`](EfficientNetLite::unit_names)).
    pub fn run_units(&self, mut y: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        for u in range {
            y = match u {
                0 => self.stem.forward(y),
                u if u <= self.blocks.len() => self.blocks[u - 1].forward(y),
                _ => self.head.forward(y),
            };
        }
        y
    }

    /// Pooled features from the activation after the first `start` units.
    pub fn features_from(&self, x: Tensor<4>, start: usize) -> Tensor<2> {
        self.run_units(x, start..self.units())
            .mean_dim(3)
            .mean_dim(2)
            .flatten(1, 3)
    }

    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_from(x, 0)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.features(x);
        match &self.fc {
            Some(fc) => zoo_kernels::nn::linear(fc, f),
            None => f,
        }
    }
}
