//! ResNet-18/34/50 with torchvision's names (`conv1`, `bn1`, `layerN.M.convK`, `downsample`,
//! `fc`); the stride of a bottleneck sits on its 3×3 convolution (torchvision's "v1.5").

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::Tensor;

use crate::weights::{WeightError, Weights};

const EPS: f64 = 1e-5;

/// Conv → BatchNorm (no activation; the block decides).
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn load(
        w: &Weights,
        conv: &str,
        bn: &str,
        c: [usize; 2],
        k: usize,
        s: usize,
    ) -> Result<Self, WeightError> {
        let p = k / 2;
        Ok(ConvBn {
            conv: w.conv2d(conv, c, k, s, [p, p, p, p], 1, false)?,
            bn: w.batch_norm(bn, c[1], EPS)?,
        })
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::fused::conv_bn(&self.conv, &self.bn, x)
    }
    /// With a ReLU after it (fused into the BatchNorm while training).
    fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        crate::fused::conv_bn_act(&self.conv, &self.bn, x, Some(f32::INFINITY))
    }
}

/// A basic (two 3×3) or bottleneck (1×1, 3×3, 1×1) residual block.
#[derive(Module, Debug)]
pub struct Block {
    convs: Vec<ConvBn>,
    downsample: Option<ConvBn>,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        let last = self.convs.len() - 1;
        for (i, c) in self.convs.iter().enumerate() {
            y = if i < last {
                c.forward_relu(y)
            } else {
                c.forward(y)
            };
        }
        let identity = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        zoo_kernels::nn::relu(zoo_kernels::nn::op("add", y, |y| y + identity))
    }
}

/// ResNet.
#[derive(Module, Debug)]
pub struct ResNet {
    stem: ConvBn,
    pool: MaxPool2d,
    stages: Vec<Vec<Block>>,
    fc: Option<Linear>,
    pub num_features: usize,
}

/// Blocks per stage and whether blocks are bottlenecks, by torchvision name.
pub fn layout(arch: &str) -> Option<([usize; 4], bool)> {
    Some(match arch {
        "resnet18" => ([2, 2, 2, 2], false),
        "resnet34" => ([3, 4, 6, 3], false),
        "resnet50" => ([3, 4, 6, 3], true),
        "resnet101" => ([3, 4, 23, 3], true),
        _ => return None,
    })
}

impl ResNet {
    /// Builds from weights; the stem width (64 in torchvision) is read from `conv1.weight`, so
    /// reduced test models load too.
    pub fn load(
        w: &Weights,
        blocks: [usize; 4],
        bottleneck: bool,
        num_classes: Option<usize>,
    ) -> Result<Self, WeightError> {
        let base = w
            .shape("conv1.weight")
            .ok_or_else(|| WeightError::Missing("conv1.weight".into()))?[0];
        let stem = ConvBn::load(w, "conv1", "bn1", [3, base], 7, 2)?;
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let expansion = if bottleneck { 4 } else { 1 };
        let mut inplanes = base;
        let mut stages = Vec::new();
        for (s, &n) in blocks.iter().enumerate() {
            let planes = base << s;
            let mut stage = Vec::new();
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let p = format!("layer{}.{b}", s + 1);
                let out = planes * expansion;
                let convs = if bottleneck {
                    vec![
                        ConvBn::load(
                            w,
                            &format!("{p}.conv1"),
                            &format!("{p}.bn1"),
                            [inplanes, planes],
                            1,
                            1,
                        )?,
                        ConvBn::load(
                            w,
                            &format!("{p}.conv2"),
                            &format!("{p}.bn2"),
                            [planes, planes],
                            3,
                            stride,
                        )?,
                        ConvBn::load(
                            w,
                            &format!("{p}.conv3"),
                            &format!("{p}.bn3"),
                            [planes, out],
                            1,
                            1,
                        )?,
                    ]
                } else {
                    vec![
                        ConvBn::load(
                            w,
                            &format!("{p}.conv1"),
                            &format!("{p}.bn1"),
                            [inplanes, planes],
                            3,
                            stride,
                        )?,
                        ConvBn::load(
                            w,
                            &format!("{p}.conv2"),
                            &format!("{p}.bn2"),
                            [planes, planes],
                            3,
                            1,
                        )?,
                    ]
                };
                let downsample = if stride != 1 || inplanes != out {
                    Some(ConvBn::load(
                        w,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        [inplanes, out],
                        1,
                        stride,
                    )?)
                } else {
                    None
                };
                stage.push(Block { convs, downsample });
                inplanes = out;
            }
            stages.push(stage);
        }
        let fc = match num_classes {
            Some(n) => Some(w.linear("fc", inplanes, n)?),
            None => None,
        };
        Ok(ResNet {
            stem,
            pool,
            stages,
            fc,
            num_features: inplanes,
        })
    }

    /// Freezes everything but the classifier: no gradients, and BatchNorm keeps its running
    /// statistics (burn's `freeze` turns the layers' training behaviour off too).
    pub fn freeze_backbone(self) -> Self {
        ResNet {
            stem: self.stem.freeze(),
            pool: self.pool,
            stages: self
                .stages
                .into_iter()
                .map(|s| s.into_iter().map(Module::freeze).collect())
                .collect(),
            fc: self.fc,
            num_features: self.num_features,
        }
    }

    /// Feature maps after each stage (`layer1` … `layer4`).
    pub fn stages(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut y = x;
        let mut out = Vec::new();
        for u in 0..self.units() {
            y = self.run_units(y, u..u + 1);
            if u > 0 {
                out.push(y.clone());
            }
        }
        out
    }

    /// The sequential units of the trunk, by block name: `stem` (convolution, BatchNorm,
    /// ReLU and max pooling), then `layer1` … `layer4`.
    pub fn unit_names(&self) -> Vec<String> {
        std::iter::once("stem".to_string())
            .chain((1..=self.stages.len()).map(|i| format!("layer{i}")))
            .collect()
    }

    pub fn units(&self) -> usize {
        self.stages.len() + 1
    }

    /// Runs units `range` (indices into [`unit_names`](ResNet::unit_names)) on `y`.
    pub fn run_units(&self, mut y: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        for u in range {
            if u == 0 {
                y = self.stem.forward_relu(y);
                y = zoo_kernels::nn::max_pool2d(&self.pool, y);
            } else {
                for b in &self.stages[u - 1] {
                    y = b.forward(y);
                }
            }
        }
        y
    }

    /// Pooled features from the activation after the first `start` units.
    pub fn features_from(&self, x: Tensor<4>, start: usize) -> Tensor<2> {
        let last = self.run_units(x, start..self.units());
        last.mean_dim(3).mean_dim(2).flatten(1, 3)
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
