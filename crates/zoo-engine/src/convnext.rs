//! ConvNeXt with torchvision's names (`features.0` stem, `features.{1,3,5,7}` stages of
//! `block.{0,2,3,5}` + `layer_scale`, `features.{2,4,6}` downsampling, `classifier.{0,2}`);
//! depths and widths are read from the weights (`convnext_tiny`: [3, 3, 9, 3] × [96…768]).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::prelude::Tensor;
use zoo_kernels::nn::{LayerNorm, conv2d, layer_norm as ln, linear};

use crate::lora::{Adaptable, Dense};
use crate::weights::{WeightError, Weights};

const EPS: f64 = 1e-6;

fn layer_norm(w: &Weights, prefix: &str, d: usize) -> Result<LayerNorm, WeightError> {
    w.layer_norm(prefix, d, EPS)
}

/// LayerNorm over the channels of an NCHW tensor.
fn norm2d(norm: &LayerNorm, x: Tensor<4>) -> Tensor<4> {
    ln(norm, x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2])
}

/// One ConvNeXt block: 7×7 depthwise conv, LayerNorm, MLP ×4 with GELU, layer scale, residual.
#[derive(Module, Debug)]
pub struct Block {
    dwconv: Conv2d,
    norm: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    scale: Param<Tensor<3>>,
}

impl Block {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = conv2d(&self.dwconv, x.clone()).permute([0, 2, 3, 1]);
        let y = self
            .fc2
            .forward(self.fc1.forward_gelu(ln(&self.norm, y)))
            .permute([0, 3, 1, 2]);
        let [c, _, _] = self.scale.dims();
        x + y * self.scale.val().reshape([1, c, 1, 1])
    }
}

/// Downsampling between stages: LayerNorm then a 2×2 stride-2 convolution.
#[derive(Module, Debug)]
pub struct Down {
    norm: LayerNorm,
    conv: Conv2d,
}

/// ConvNeXt.
#[derive(Module, Debug)]
pub struct ConvNext {
    stem: Conv2d,
    stem_norm: LayerNorm,
    downs: Vec<Down>,
    stages: Vec<Vec<Block>>,
    head_norm: LayerNorm,
    head: Option<Linear>,
    pub num_features: usize,
}

impl Adaptable for ConvNext {
    fn denses(&mut self) -> Vec<&mut Dense> {
        self.stages
            .iter_mut()
            .flatten()
            .flat_map(|b| [&mut b.fc1, &mut b.fc2])
            .collect()
    }
}

impl ConvNext {
    pub fn load(w: &Weights, num_classes: Option<usize>) -> Result<Self, WeightError> {
        let stem_w = w
            .shape("features.0.0.weight")
            .ok_or_else(|| WeightError::Missing("features.0.0.weight".into()))?
            .to_vec();
        let mut dim = stem_w[0];
        let stem = w.conv2d(
            "features.0.0",
            [3, dim],
            stem_w[2],
            stem_w[2],
            [0, 0, 0, 0],
            1,
            true,
        )?;
        let stem_norm = layer_norm(w, "features.0.1", dim)?;
        let (mut downs, mut stages) = (Vec::new(), Vec::new());
        for s in 0..4 {
            if s > 0 {
                let f = format!("features.{}", 2 * s);
                let out = w
                    .shape(&format!("{f}.1.weight"))
                    .ok_or_else(|| WeightError::Missing(format!("{f}.1.weight")))?[0];
                downs.push(Down {
                    norm: layer_norm(w, &format!("{f}.0"), dim)?,
                    conv: w.conv2d(&format!("{f}.1"), [dim, out], 2, 2, [0, 0, 0, 0], 1, true)?,
                });
                dim = out;
            }
            let f = format!("features.{}", 2 * s + 1);
            let depth = (0..)
                .take_while(|j| w.has(&format!("{f}.{j}.block.0.weight")))
                .count();
            let mut blocks = Vec::new();
            for j in 0..depth {
                let b = format!("{f}.{j}");
                let hidden = w
                    .shape(&format!("{b}.block.3.weight"))
                    .map(|s| s[0])
                    .unwrap_or(4 * dim);
                blocks.push(Block {
                    dwconv: w.conv2d(
                        &format!("{b}.block.0"),
                        [dim, dim],
                        7,
                        1,
                        [3, 3, 3, 3],
                        dim,
                        true,
                    )?,
                    norm: layer_norm(w, &format!("{b}.block.2"), dim)?,
                    fc1: Dense::from(w.linear(&format!("{b}.block.3"), dim, hidden)?),
                    fc2: Dense::from(w.linear(&format!("{b}.block.5"), hidden, dim)?),
                    scale: w.param(&format!("{b}.layer_scale"), [dim, 1, 1])?,
                });
            }
            stages.push(blocks);
        }
        let head_norm = layer_norm(w, "classifier.0", dim)?;
        let head = match num_classes {
            Some(n) => Some(w.linear("classifier.2", dim, n)?),
            None => None,
        };
        Ok(ConvNext {
            stem,
            stem_norm,
            downs,
            stages,
            head_norm,
            head,
            num_features: dim,
        })
    }

    /// Feature maps after each stage.
    pub fn stages(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut y = x;
        let mut out = Vec::new();
        for u in 0..self.units() {
            y = self.run_units(y, u..u + 1);
            if u % 2 == 1 {
                out.push(y.clone());
            }
        }
        out
    }

    /// The sequential units of the trunk, by block name as torchvision numbers them:
    /// `features.0` (stem), then stages (`features.1`, `.3`, `.5`, `.7`) and downsampling
    /// layers (`features.2`, `.4`, `.6`) in turn.
    pub fn unit_names(&self) -> Vec<String> {
        (0..self.units()).map(|u| format!("features.{u}")).collect()
    }

    pub fn units(&self) -> usize {
        2 * self.stages.len()
    }

    /// Runs units `range` (indices as in `features.N`) on `y`.
    pub fn run_units(&self, mut y: Tensor<4>, range: std::ops::Range<usize>) -> Tensor<4> {
        for u in range {
            y = match u {
                0 => norm2d(&self.stem_norm, conv2d(&self.stem, y)),
                u if u % 2 == 0 => {
                    let d = &self.downs[u / 2 - 1];
                    conv2d(&d.conv, norm2d(&d.norm, y))
                }
                u => {
                    for b in &self.stages[u / 2] {
                        y = b.forward(y);
                    }
                    y
                }
            };
        }
        y
    }

    /// Pooled, normalised features from the activation after the first `start` units.
    pub fn features_from(&self, x: Tensor<4>, start: usize) -> Tensor<2> {
        let last = self.run_units(x, start..self.units());
        let [b, c, _, _] = last.dims();
        self.head_norm
            .forward(last.mean_dim(3).mean_dim(2).reshape([b, c]))
    }

    /// Pooled, normalised features (what the classifier sees).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_from(x, 0)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let f = self.features(x);
        match &self.head {
            Some(h) => linear(h, f),
            None => f,
        }
    }
}
