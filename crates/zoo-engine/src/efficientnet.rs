//! EfficientNet-B0 with torchvision's names (`features.N.M.block.K...`, squeeze-excite
//! `fc1`/`fc2`, `classifier.1`): SiLU, symmetric padding, BatchNorm eps 1e-5. Channels and
//! kernels come from the weights; strides from the B0 table.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear};
use burn::prelude::Tensor;
use burn::tensor::activation::sigmoid;
use zoo_kernels::nn::{Act, silu};

use crate::weights::{WeightError, Weights};

const EPS: f64 = 1e-5;
/// The first block's stride in each of the seven stages.
const STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];

/// Conv → BatchNorm → SiLU (or no activation).
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    act: bool,
}

impl ConvBn {
    fn load(
        w: &Weights,
        prefix: &str,
        stride: usize,
        groups_depthwise: bool,
        act: bool,
    ) -> Result<Self, WeightError> {
        let s = w
            .shape(&format!("{prefix}.0.weight"))
            .ok_or_else(|| WeightError::Missing(format!("{prefix}.0.weight")))?
            .to_vec();
        let (out, k) = (s[0], s[2]);
        let (inp, groups) = if groups_depthwise {
            (out, out)
        } else {
            (s[1], 1)
        };
        let p = (k - 1) / 2;
        Ok(ConvBn {
            conv: w.conv2d(
                &format!("{prefix}.0"),
                [inp, out],
                k,
                stride,
                [p, p, p, p],
                groups,
                false,
            )?,
            bn: w.batch_norm(&format!("{prefix}.1"), out, EPS)?,
            act,
        })
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let act = if self.act { Act::Silu } else { Act::None };
        crate::fused::conv_bn_with(&self.conv, &self.bn, x, act)
    }

    /// [`ConvBn::forward`] on channels-last data (see [`crate::fused::conv_bn_nhwc`]).
    fn forward_nhwc(&self, x: Tensor<4>) -> Tensor<4> {
        let act = if self.act { Act::Silu } else { Act::None };
        crate::fused::conv_bn_nhwc(&self.conv, &self.bn, x, act)
    }

    fn nhwc_ok(&self, x: &Tensor<4>) -> bool {
        crate::fused::nhwc_ok(&self.conv, &self.bn, x)
    }
}

/// Squeeze-and-excitation: channel weights from the pooled features.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    fc1: Conv2d,
    fc2: Conv2d,
}

impl SqueezeExcite {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = x.clone().mean_dim(3).mean_dim(2);
        let s = zoo_kernels::nn::conv2d(&self.fc1, s);
        let s = sigmoid(zoo_kernels::nn::conv2d(&self.fc2, silu(s)));
        zoo_kernels::nn::op("se scale", x, |x| x * s)
    }

    /// [`SqueezeExcite::forward`] on channels-last data.
    fn forward_nhwc(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, _, _, c] = x.dims();
        let s = x.clone().mean_dim(2).mean_dim(1).reshape([n, c, 1, 1]);
        let s = zoo_kernels::nn::conv2d(&self.fc1, s);
        let s = sigmoid(zoo_kernels::nn::conv2d(&self.fc2, silu(s))).reshape([n, 1, 1, c]);
        zoo_kernels::nn::op("se scale", x, |x| x * s)
    }

    fn frozen(&self) -> bool {
        [&self.fc1, &self.fc2].iter().all(|f| {
            !f.weight.val().is_tracked() && !f.bias.as_ref().is_some_and(|b| b.val().is_tracked())
        })
    }
}

/// An MBConv block.
#[derive(Module, Debug)]
pub struct MbConv {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    se: SqueezeExcite,
    project: ConvBn,
    residual: bool,
}

impl MbConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward(y);
        }
        let y = self
            .project
            .forward(self.se.forward(self.depthwise.forward(y)));
        if self.residual {
            zoo_kernels::nn::op("add", y, |y| y + x)
        } else {
            y
        }
    }

    /// [`MbConv::forward`] on channels-last data.
    fn forward_nhwc(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(e) = &self.expand {
            y = e.forward_nhwc(y);
        }
        let y = self
            .project
            .forward_nhwc(self.se.forward_nhwc(self.depthwise.forward_nhwc(y)));
        if self.residual {
            zoo_kernels::nn::op("add", y, |y| y + x)
        } else {
            y
        }
    }

    fn nhwc_ok(&self, x: &Tensor<4>) -> bool {
        self.expand.as_ref().is_none_or(|e| e.nhwc_ok(x))
            && self.depthwise.nhwc_ok(x)
            && self.project.nhwc_ok(x)
            && self.se.frozen()
    }
}

/// EfficientNet-B0 (torchvision layout).
#[derive(Module, Debug)]
pub struct EfficientNet {
    stem: ConvBn,
    /// The seven stages of MBConv blocks (`features.1` … `features.7`).
    stages: Vec<Vec<MbConv>>,
    head: ConvBn,
    classifier: Option<Linear>,
    pub num_features: usize,
}

impl EfficientNet {
    pub fn load(w: &Weights, num_classes: Option<usize>) -> Result<Self, WeightError> {
        let stem = ConvBn::load(w, "features.0", 2, false, true)?;
        let mut stages = Vec::new();
        for (s, &first_stride) in STRIDES.iter().enumerate() {
            let mut blocks = Vec::new();
            let stage = s + 1;
            let n = (0..)
                .take_while(|i| w.has(&format!("features.{stage}.{i}.block.0.0.weight")))
                .count();
            if n == 0 {
                return Err(WeightError::Missing(format!(
                    "features.{stage}.0.block.0.0.weight"
                )));
            }
            for i in 0..n {
                let b = format!("features.{stage}.{i}.block");
                let stride = if i == 0 { first_stride } else { 1 };
                let has_expand = w.has(&format!("{b}.3.0.weight"));
                let (expand, dw, se, proj) = if has_expand {
                    (Some(0), 1, 2, 3)
                } else {
                    (None, 0, 1, 2)
                };
                let expand = match expand {
                    Some(k) => Some(ConvBn::load(w, &format!("{b}.{k}"), 1, false, true)?),
                    None => None,
                };
                let depthwise = ConvBn::load(w, &format!("{b}.{dw}"), stride, true, true)?;
                let fc1 = w
                    .shape(&format!("{b}.{se}.fc1.weight"))
                    .ok_or_else(|| WeightError::Missing(format!("{b}.{se}.fc1.weight")))?
                    .to_vec();
                let (squeeze, hidden) = (fc1[0], fc1[1]);
                let se = SqueezeExcite {
                    fc1: w.conv2d(
                        &format!("{b}.{se}.fc1"),
                        [hidden, squeeze],
                        1,
                        1,
                        [0, 0, 0, 0],
                        1,
                        true,
                    )?,
                    fc2: w.conv2d(
                        &format!("{b}.{se}.fc2"),
                        [squeeze, hidden],
                        1,
                        1,
                        [0, 0, 0, 0],
                        1,
                        true,
                    )?,
                };
                let project = ConvBn::load(w, &format!("{b}.{proj}"), 1, false, false)?;
                let pshape = w
                    .shape(&format!("{b}.{proj}.0.weight"))
                    .unwrap_or(&[])
                    .to_vec();
                let input = match &expand {
                    Some(_) => w
                        .shape(&format!("{b}.0.0.weight"))
                        .map(|s| s[1])
                        .unwrap_or(0),
                    None => hidden,
                };
                let residual = stride == 1 && pshape.first() == Some(&input);
                blocks.push(MbConv {
                    expand,
                    depthwise,
                    se,
                    project,
                    residual,
                });
            }
            stages.push(blocks);
        }
        let head = ConvBn::load(w, "features.8", 1, false, true)?;
        let num_features = w.shape("features.8.0.weight").map(|s| s[0]).unwrap_or(1280);
        let classifier = match num_classes {
            Some(n) => Some(w.linear("classifier.1", num_features, n)?),
            None => None,
        };
        Ok(EfficientNet {
            stem,
            stages,
            head,
            classifier,
            num_features,
        })
    }

    /// The sequential units of the trunk, by block name: `features.0` (stem), the stages
    /// `features.1` … `features.7`, `features.8` (the last 1x1 convolution).
    pub fn unit_names(&self) -> Vec<String> {
        (0..self.units()).map(|u| format!("features.{u}")).collect()
    }

    pub fn units(&self) -> usize {
        self.stages.len() + 2
    }

    /// Runs units `range` (indices as in `features.N`) on `y` (NCHW in and out).
    pub fn run_units(&self, mut y: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        use zoo_kernels::nn::{to_channels_first, to_channels_last};
        // Frozen blocks (inference, a frozen prefix) run channels-last, as in MobileNetV2's
        // `run_units`; the stem and the head stay NCHW.
        let mut last = false;
        for u in range {
            if u == 0 {
                y = self.stem.forward(y);
            } else if u <= self.stages.len() {
                for b in &self.stages[u - 1] {
                    let ok = b.nhwc_ok(&y);
                    if ok != last {
                        y = if ok {
                            to_channels_last(y)
                        } else {
                            to_channels_first(y)
                        };
                        last = ok;
                    }
                    y = if ok { b.forward_nhwc(y) } else { b.forward(y) };
                }
            } else {
                if last {
                    y = to_channels_first(y);
                    last = false;
                }
                y = self.head.forward(y);
            }
        }
        if last { to_channels_first(y) } else { y }
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
        match &self.classifier {
            Some(c) => zoo_kernels::nn::linear(c, f),
            None => f,
        }
    }
}
