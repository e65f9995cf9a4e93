//! A backbone with a new head, for fine-tuning: the head's tensors take the architecture's
//! standard head names, so the exported checkpoint loads back into torchvision / timm /
//! transformers (a linear head) like the original did.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::{Device, Int, Tensor};

use crate::bert::Bert;
use crate::model::Model;
use crate::weights::Names;

/// The head on top of pooled features.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Head {
    Linear(Linear),
    Mlp(Mlp),
}

/// `Linear → ReLU → Dropout → Linear` (`--head mlp:HIDDEN`).
#[derive(Module, Debug)]
pub struct Mlp {
    fc1: Linear,
    dropout: Dropout,
    fc2: Linear,
}

/// How a head is shaped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadSpec {
    Linear,
    Mlp { hidden: usize, dropout: f64 },
}

impl HeadSpec {
    /// Parses `linear` or `mlp:HIDDEN`.
    pub fn parse(s: &str) -> Option<HeadSpec> {
        match s {
            "linear" => Some(HeadSpec::Linear),
            _ => {
                let hidden = s.strip_prefix("mlp:")?.parse().ok()?;
                (hidden > 0).then_some(HeadSpec::Mlp {
                    hidden,
                    dropout: 0.2,
                })
            }
        }
    }

    /// `linear` or `mlp:HIDDEN`, as written in config.json.
    pub fn to_config(self) -> String {
        match self {
            HeadSpec::Linear => "linear".into(),
            HeadSpec::Mlp { hidden, .. } => format!("mlp:{hidden}"),
        }
    }
}

impl Head {
    /// The number of classes: the last linear layer's output width (burn keeps linear
    /// weights as `[in, out]`).
    pub fn classes(&self) -> usize {
        let last = match self {
            Head::Linear(l) => l,
            Head::Mlp(m) => &m.fc2,
        };
        last.weight.dims()[1]
    }

    /// A freshly initialised head (burn's default: Kaiming-uniform weights like PyTorch's
    /// `nn.Linear`), registered under `name` (the architecture's head name; an MLP's layers
    /// are `name.0` and `name.3`).
    pub fn new(
        spec: HeadSpec,
        features: usize,
        classes: usize,
        name: &str,
        names: &mut Names,
        device: &Device,
        seed: u64,
    ) -> Head {
        // PyTorch's nn.Linear initialisation, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias,
        // drawn from `seed` (not the global generator) so a run is reproducible.
        let mut rng = crate::seeded::SplitMix::new(seed ^ 0x5851_f42d_4c95_7f2d);
        let mut linear = |i: usize, o: usize, n: String, names: &mut Names| {
            let mut l = LinearConfig::new(i, o).init(device);
            let bound = 1.0 / (i as f64).sqrt();
            let mut draw = |len: usize| -> Vec<f32> {
                (0..len)
                    .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                    .collect()
            };
            l.weight = burn::module::Param::from_tensor(Tensor::from_data(
                burn::tensor::TensorData::new(draw(i * o), [i, o]),
                device,
            ));
            l.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
                burn::tensor::TensorData::new(draw(o), [o]),
                device,
            )));
            names.insert(l.weight.id, format!("{n}.weight"), true);
            if let Some(b) = &l.bias {
                names.insert(b.id, format!("{n}.bias"), false);
            }
            l
        };
        match spec {
            HeadSpec::Linear => Head::Linear(linear(features, classes, name.to_string(), names)),
            HeadSpec::Mlp { hidden, dropout } => Head::Mlp(Mlp {
                fc1: linear(features, hidden, format!("{name}.0"), names),
                dropout: DropoutConfig::new(dropout).init(),
                fc2: linear(hidden, classes, format!("{name}.3"), names),
            }),
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Head::Linear(l) => l.forward(x),
            Head::Mlp(m) => m.fc2.forward(
                m.dropout
                    .forward(burn::tensor::activation::relu(m.fc1.forward(x))),
            ),
        }
    }
}

/// An image backbone (built without its head) with a new head.
#[derive(Module, Debug)]
pub struct ImageClassifier {
    pub backbone: Model,
    pub head: Head,
}

impl ImageClassifier {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.backbone.features(x))
    }
}

/// Pooling of a text encoder's token states into one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over real tokens (sentence-transformers' default).
    Mean,
    /// Max over real tokens.
    Max,
    /// The first token's state.
    Cls,
    /// BERT's pooler: tanh(dense(first token)) — what `BertForSequenceClassification` uses.
    Pooler,
}

impl Pooling {
    pub fn parse(s: &str) -> Option<Pooling> {
        Some(match s {
            "mean" => Pooling::Mean,
            "max" => Pooling::Max,
            "cls" => Pooling::Cls,
            "pooler" => Pooling::Pooler,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Max => "max",
            Pooling::Cls => "cls",
            Pooling::Pooler => "pooler",
        }
    }

    /// Pools `hidden` `[batch, tokens, dim]` with `mask` `[batch, tokens]`.
    pub fn pool(self, encoder: &Bert, hidden: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
        match self {
            Pooling::Mean => Bert::mean_pool(hidden, mask),
            Pooling::Max => Bert::max_pool(hidden, mask),
            Pooling::Cls => Bert::cls_pool(hidden),
            Pooling::Pooler => encoder
                .pool_cls(hidden.clone())
                .unwrap_or_else(|| Bert::cls_pool(hidden)),
        }
    }
}

/// A text encoder with a new head.
#[derive(Module, Debug)]
pub struct TextClassifier {
    pub encoder: Bert,
    pub head: Head,
}

impl TextClassifier {
    pub fn features(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        mask: Tensor<2>,
        pooling: Pooling,
    ) -> Tensor<2> {
        let hidden = self.encoder.forward(ids, types, mask.clone());
        pooling.pool(&self.encoder, hidden, mask)
    }

    /// The token states after the first `k` units of the encoder (embeddings, then layers;
    /// `k >= 1`) — a frozen prefix.
    pub fn run_prefix(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        mask: Tensor<2>,
        k: usize,
    ) -> Tensor<3> {
        let x = self.encoder.embed(ids, types, mask.clone());
        self.encoder.run_layers(x, mask, 0..k.max(1) - 1)
    }

    /// Pooled features from the token states after the first `k >= 1` units.
    pub fn features_from(
        &self,
        x: Tensor<3>,
        mask: Tensor<2>,
        k: usize,
        pooling: Pooling,
    ) -> Tensor<2> {
        let n = self.encoder.layers();
        let hidden = self.encoder.run_layers(x, mask.clone(), k.max(1) - 1..n);
        pooling.pool(&self.encoder, hidden, mask)
    }

    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        mask: Tensor<2>,
        pooling: Pooling,
    ) -> Tensor<2> {
        self.head.forward(self.features(ids, types, mask, pooling))
    }
}

#[cfg(test)]
mod tests {
    use super::{Head, HeadSpec};
    use crate::Names;

    #[test]
    fn a_head_knows_its_classes() {
        let device = crate::cpu();
        let mut names = Names::default();
        for spec in [HeadSpec::Linear, HeadSpec::parse("mlp:8").unwrap()] {
            let h = Head::new(spec, 16, 7, "fc", &mut names, &device, 0);
            assert_eq!(h.classes(), 7, "{spec:?}");
        }
    }
}
