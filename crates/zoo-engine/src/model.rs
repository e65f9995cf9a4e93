//! Architectures by name: build the network a config names and load its weights.

use burn::prelude::Tensor;

use crate::mobilenet_v2::{MobileNetV2, make_divisible};
use crate::weights::{WeightError, Weights};

/// Architectures the library builds today.
pub const ARCHITECTURES: &[&str] = &["mobilenet_v2"];

/// Why a model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("architecture `{0}` is not implemented yet (available: {list})", list = ARCHITECTURES.join(", "))]
    UnknownArchitecture(String),
    #[error(transparent)]
    Weights(#[from] WeightError),
}

/// A built network.
#[derive(Debug)]
pub enum Model {
    MobileNetV2(MobileNetV2),
}

impl Model {
    /// Builds `arch` from `weights`. The width and the number of classes are read from the
    /// weights' shapes; `with_head = false` leaves the classifier out.
    pub fn build(
        arch: &str,
        w: &Weights,
        with_head: bool,
    ) -> Result<(Model, Option<usize>), ModelError> {
        match arch {
            "mobilenet_v2" => {
                let stem = w
                    .shape("features.0.0.weight")
                    .ok_or_else(|| WeightError::Missing("features.0.0.weight".into()))?[0];
                // The stem has make_divisible(32 × width, 8) channels: find the width that gives it.
                let width = [0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 0.25]
                    .into_iter()
                    .find(|m| make_divisible(32.0 * m, 8) == stem)
                    .unwrap_or(stem as f64 / 32.0);
                let classes = if with_head {
                    w.shape("classifier.1.weight").map(|s| s[0])
                } else {
                    None
                };
                let m = MobileNetV2::load(w, width, classes)?;
                Ok((Model::MobileNetV2(m), classes))
            }
            other => Err(ModelError::UnknownArchitecture(other.to_string())),
        }
    }

    /// Logits (or pooled features when built without a head).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Model::MobileNetV2(m) => m.forward(x),
        }
    }

    /// Pooled features, no head.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Model::MobileNetV2(m) => m.features(x),
        }
    }
}
