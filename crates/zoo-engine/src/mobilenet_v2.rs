//! MobileNetV2 with torchvision's names (`features.N...`, `classifier.1`).

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::Tensor;

use crate::weights::{WeightError, Weights};

const EPS: f64 = 1e-5;
/// (expansion t, channels c, repeats n, stride s) for each stage, as in the paper.
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// torchvision's `_make_divisible`.
pub fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let new = ((v + d / 2.0) / d).floor().max(1.0) * d;
    let new = new.max(d);
    if new < 0.9 * v {
        (new + d) as usize
    } else {
        new as usize
    }
}

/// The width multiplier whose channel counts match the weights' shapes (stem and every
/// block's projection), or `None`.
pub fn infer_width(w: &Weights) -> Option<f64> {
    let candidates = [1.0, 0.5, 0.75, 0.35, 1.4, 1.3, 0.25, 0.1, 2.0];
    candidates.into_iter().find(|&m| {
        if w.shape("features.0.0.weight").map(|s| s[0]) != Some(make_divisible(32.0 * m, 8)) {
            return false;
        }
        let mut idx = 1;
        for (t, c, n, _) in SETTINGS {
            let out = make_divisible(c as f64 * m, 8);
            for _ in 0..n {
                let proj = if t == 1 {
                    format!("features.{idx}.conv.1.weight")
                } else {
                    format!("features.{idx}.conv.2.weight")
                };
                if w.shape(&proj).map(|s| s[0]) != Some(out) {
                    return false;
                }
                idx += 1;
            }
        }
        true
    })
}

/// Conv → BatchNorm → ReLU6 (or no activation).
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    relu6: bool,
}

impl ConvBn {
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
        let p = (k - 1) / 2;
        Ok(ConvBn {
            conv: w.conv2d(conv, c, k, s, [p, p, p, p], groups, false)?,
            bn: w.batch_norm(bn, c[1], EPS)?,
            relu6,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = self.relu6.then_some(6.0);
        crate::fused::conv_bn_act(&self.conv, &self.bn, x, act)
    }

    /// [`ConvBn::forward`] on channels-last data (see [`crate::fused::conv_bn_nhwc`]).
    fn forward_nhwc(&self, x: Tensor<4>) -> Tensor<4> {
        let act = if self.relu6 {
            zoo_kernels::nn::Act::Clamp(6.0)
        } else {
            zoo_kernels::nn::Act::None
        };
        crate::fused::conv_bn_nhwc(&self.conv, &self.bn, x, act)
    }

    fn nhwc_ok(&self, x: &Tensor<4>) -> bool {
        crate::fused::nhwc_ok(&self.conv, &self.bn, x)
    }
}

/// An inverted residual block.
#[derive(Module, Debug)]
pub struct Block {
    layers: Vec<ConvBn>,
    residual: bool,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        for l in &self.layers {
            y = l.forward(y);
        }
        if self.residual {
            zoo_kernels::nn::op("add", y, |y| y + x)
        } else {
            y
        }
    }

    /// [`Block::forward`] on channels-last data.
    fn forward_nhwc(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        for l in &self.layers {
            y = l.forward_nhwc(y);
        }
        if self.residual {
            zoo_kernels::nn::op("add", y, |y| y + x)
        } else {
            y
        }
    }

    fn nhwc_ok(&self, x: &Tensor<4>) -> bool {
        self.layers.iter().all(|l| l.nhwc_ok(x))
    }
}

/// MobileNetV2.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    stem: ConvBn,
    blocks: Vec<Block>,
    last: ConvBn,
    classifier: Option<Linear>,
    pub num_features: usize,
}

impl MobileNetV2 {
    /// Builds the network from torchvision-named weights. With `num_classes = None` the
    /// classifier is left out (pooled features only) and `classifier.*` may be absent.
    pub fn load(
        w: &Weights,
        width_mult: f64,
        num_classes: Option<usize>,
    ) -> Result<Self, WeightError> {
        let mut input = make_divisible(32.0 * width_mult, 8);
        let last_channels = make_divisible(1280.0 * width_mult.max(1.0), 8);
        let stem = ConvBn::load(w, "features.0.0", "features.0.1", [3, input], 3, 2, 1, true)?;
        let mut blocks = Vec::new();
        let mut idx = 1;
        for (t, c, n, s) in SETTINGS {
            let out = make_divisible(c as f64 * width_mult, 8);
            for i in 0..n {
                let stride = if i == 0 { s } else { 1 };
                let hidden = input * t;
                let p = format!("features.{idx}.conv");
                let mut layers = Vec::new();
                let mut j = 0;
                if t != 1 {
                    layers.push(ConvBn::load(
                        w,
                        &format!("{p}.0.0"),
                        &format!("{p}.0.1"),
                        [input, hidden],
                        1,
                        1,
                        1,
                        true,
                    )?);
                    j = 1;
                }
                layers.push(ConvBn::load(
                    w,
                    &format!("{p}.{j}.0"),
                    &format!("{p}.{j}.1"),
                    [hidden, hidden],
                    3,
                    stride,
                    hidden,
                    true,
                )?);
                layers.push(ConvBn::load(
                    w,
                    &format!("{p}.{}", j + 1),
                    &format!("{p}.{}", j + 2),
                    [hidden, out],
                    1,
                    1,
                    1,
                    false,
                )?);
                blocks.push(Block {
                    layers,
                    residual: stride == 1 && input == out,
                });
                input = out;
                idx += 1;
            }
        }
        let last = ConvBn::load(
            w,
            &format!("features.{idx}.0"),
            &format!("features.{idx}.1"),
            [input, last_channels],
            1,
            1,
            1,
            true,
        )?;
        let classifier = match num_classes {
            Some(n) => Some(w.linear("classifier.1", last_channels, n)?),
            None => None,
        };
        Ok(MobileNetV2 {
            stem,
            blocks,
            last,
            classifier,
            num_features: last_channels,
        })
    }

    /// Pooled features `[batch, num_features]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_from(x, 0)
    }

    /// The sequential units of the trunk, by block name: `features.0` (stem) …
    /// `features.18` (last conv).
    pub fn unit_names(&self) -> Vec<String> {
        (0..self.units()).map(|u| format!("features.{u}")).collect()
    }

    pub fn units(&self) -> usize {
        self.blocks.len() + 2
    }

    /// Runs units `range` (indices as in `features.N`) on `y`.
    pub fn run_units(&self, mut y: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        use zoo_kernels::nn::{to_channels_first, to_channels_last};
        let n = self.blocks.len();
        // Frozen units (inference, a frozen prefix) run channels-last: their 1x1
        // convolutions are then single products over the batch and the depthwise ones
        // vectorise over channels. The stem (three input channels) stays NCHW.
        let mut last = false;
        for i in range {
            let ok = match i {
                0 => false,
                i if i <= n => self.blocks[i - 1].nhwc_ok(&y),
                _ => self.last.nhwc_ok(&y),
            };
            if ok != last {
                y = if ok {
                    to_channels_last(y)
                } else {
                    to_channels_first(y)
                };
                last = ok;
            }
            y = match (i, ok) {
                (0, _) => self.stem.forward(y),
                (i, false) if i <= n => self.blocks[i - 1].forward(y),
                (i, true) if i <= n => self.blocks[i - 1].forward_nhwc(y),
                (_, false) => self.last.forward(y),
                (_, true) => self.last.forward_nhwc(y),
            };
        }
        if last { to_channels_first(y) } else { y }
    }

    /// Pooled features from the activation after the first `start` units.
    pub fn features_from(&self, x: Tensor<4>, start: usize) -> Tensor<2> {
        let y = self.run_units(x, start..self.units());
        y.mean_dim(3).mean_dim(2).flatten(1, 3)
    }

    /// Logits `[batch, num_classes]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.features(x);
        match &self.classifier {
            Some(c) => zoo_kernels::nn::linear(c, f),
            None => f,
        }
    }
}
