//! Architectures by name: build the network a config names and load its weights.

use burn::prelude::Tensor;

use crate::convnext::ConvNext;
use crate::efficientnet::EfficientNet;
use crate::efficientnet_lite::EfficientNetLite;
use crate::mobilenet_v2::MobileNetV2;
use crate::resnet::ResNet;
use crate::vit::Vit;
use crate::weights::{WeightError, Weights};

/// Architectures the library builds today.
pub const ARCHITECTURES: &[&str] = &[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "mobilenet_v2",
    "mobilenetv2_100",
    "efficientnet_b0",
    "efficientnet_lite0",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
];

/// Why a model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("architecture `{0}` is not implemented yet (available: {list})", list = ARCHITECTURES.join(", "))]
    UnknownArchitecture(String),
    #[error(transparent)]
    Weights(#[from] WeightError),
}

/// A built network.
#[derive(burn::module::Module, Debug)]
pub enum Model {
    MobileNetV2(MobileNetV2),
    EfficientNetLite(EfficientNetLite),
    ResNet(ResNet),
    Vit(Vit),
    ConvNext(ConvNext),
    EfficientNet(EfficientNet),
}

/// The name of an architecture's classifier layer (`fc` in ResNet, `classifier.1` in
/// MobileNetV2, `head` in ViT, ...), under which a new head is saved.
pub fn head_name(arch: &str) -> Option<&'static str> {
    Some(match crate::timm::torchvision_arch(arch) {
        "mobilenet_v2" | "efficientnet_b0" => "classifier.1",
        "efficientnet_lite0" => "_fc",
        "convnext_tiny" | "convnext_small" | "convnext_base" => "classifier.2",
        a if crate::resnet::layout(a).is_some() => "fc",
        a if crate::vit::heads(a).is_some() => "head",
        "bert" | "distilbert" | "roberta" => "classifier",
        _ => return None,
    })
}

impl crate::lora::Adaptable for Model {
    /// The linear layers of the backbone that adapters can target (none in the convolutional
    /// networks but ConvNeXt).
    fn denses(&mut self) -> Vec<&mut crate::lora::Dense> {
        match self {
            Model::Vit(m) => m.denses(),
            Model::ConvNext(m) => m.denses(),
            _ => Vec::new(),
        }
    }
}

impl Model {
    /// Builds `arch` from `weights`. The width and the number of classes are read from the
    /// weights' shapes; `with_head = false` leaves the classifier out.
    pub fn build(
        arch: &str,
        w: &Weights,
        with_head: bool,
    ) -> Result<(Model, Option<usize>), ModelError> {
        // timm's names for the same networks (`mobilenetv2_100`): the weights are renamed by
        // `Weights::in_torchvision_layout`.
        match crate::timm::torchvision_arch(arch) {
            "mobilenet_v2" => {
                let width = crate::mobilenet_v2::infer_width(w).ok_or_else(|| {
                    WeightError::Missing("features.0.0.weight (with the channel counts of a MobileNetV2 at a standard width)".into())
                })?;
                let classes = if with_head {
                    w.shape("classifier.1.weight").map(|s| s[0])
                } else {
                    None
                };
                let m = MobileNetV2::load(w, width, classes)?;
                Ok((Model::MobileNetV2(m), classes))
            }
            "efficientnet_lite0" => {
                let classes = if with_head {
                    w.shape("_fc.weight").map(|s| s[0])
                } else {
                    None
                };
                Ok((
                    Model::EfficientNetLite(EfficientNetLite::load(w, classes)?),
                    classes,
                ))
            }
            name if crate::resnet::layout(name).is_some() => {
                let (blocks, bottleneck) = crate::resnet::layout(name).unwrap();
                let classes = if with_head {
                    w.shape("fc.weight").map(|s| s[0])
                } else {
                    None
                };
                Ok((
                    Model::ResNet(ResNet::load(w, blocks, bottleneck, classes)?),
                    classes,
                ))
            }
            name if crate::vit::heads(name).is_some() => {
                let classes = if with_head {
                    w.shape("head.weight").map(|s| s[0])
                } else {
                    None
                };
                Ok((
                    Model::Vit(Vit::load(w, crate::vit::heads(name).unwrap(), classes)?),
                    classes,
                ))
            }
            "convnext_tiny" | "convnext_small" | "convnext_base" => {
                let classes = if with_head {
                    w.shape("classifier.2.weight").map(|s| s[0])
                } else {
                    None
                };
                Ok((Model::ConvNext(ConvNext::load(w, classes)?), classes))
            }
            "efficientnet_b0" => {
                let classes = if with_head {
                    w.shape("classifier.1.weight").map(|s| s[0])
                } else {
                    None
                };
                Ok((
                    Model::EfficientNet(EfficientNet::load(w, classes)?),
                    classes,
                ))
            }
            other => Err(ModelError::UnknownArchitecture(other.to_string())),
        }
    }

    /// Logits (or pooled features when built without a head).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Model::MobileNetV2(m) => m.forward(x),
            Model::EfficientNetLite(m) => m.forward(x),
            Model::ResNet(m) => m.forward(x),
            Model::Vit(m) => m.forward(x),
            Model::ConvNext(m) => m.forward(x),
            Model::EfficientNet(m) => m.forward(x),
        }
    }

    /// Visits every parameter and state tensor (for gradient checks, freezing, optimisers).
    pub fn visit<V: burn::module::ModuleVisitor>(&self, visitor: &mut V) {
        use burn::module::Module;
        match self {
            Model::MobileNetV2(m) => m.visit(visitor),
            Model::EfficientNetLite(m) => m.visit(visitor),
            Model::ResNet(m) => m.visit(visitor),
            Model::Vit(m) => m.visit(visitor),
            Model::ConvNext(m) => m.visit(visitor),
            Model::EfficientNet(m) => m.visit(visitor),
        }
    }

    /// The width of the pooled features.
    pub fn num_features(&self) -> usize {
        match self {
            Model::MobileNetV2(m) => m.num_features,
            Model::EfficientNetLite(m) => m.num_features,
            Model::ResNet(m) => m.num_features,
            Model::Vit(m) => m.num_features,
            Model::ConvNext(m) => m.num_features,
            Model::EfficientNet(m) => m.num_features,
        }
    }

    /// The block names (as `export::block_of` spells them) of the sequential units a frozen
    /// prefix can be cut at, in forward order.
    pub fn prefix_units(&self) -> Vec<String> {
        match self {
            Model::MobileNetV2(m) => m.unit_names(),
            Model::EfficientNetLite(m) => m.unit_names(),
            Model::ResNet(m) => m.unit_names(),
            Model::Vit(m) => m.unit_names(),
            Model::ConvNext(m) => m.unit_names(),
            Model::EfficientNet(m) => m.unit_names(),
        }
    }

    /// The activation after the first `k` units of [`prefix_units`](Model::prefix_units):
    /// a feature map `[batch, c, h, w]`, or for a ViT the token states `[batch, 1, tokens,
    /// dim]`.
    pub fn run_prefix(&self, x: Tensor<4>, k: usize) -> Tensor<4> {
        match self {
            Model::MobileNetV2(m) => m.run_units(x, 0..k),
            Model::EfficientNetLite(m) => m.run_units(x, 0..k),
            Model::ResNet(m) => m.run_units(x, 0..k),
            Model::Vit(m) => m.run_units(x, 0..k),
            Model::ConvNext(m) => m.run_units(x, 0..k),
            Model::EfficientNet(m) => m.run_units(x, 0..k),
        }
    }

    /// Pooled features from the activation after the first `k` units (`k = 0`: the image).
    pub fn features_from(&self, x: Tensor<4>, k: usize) -> Tensor<2> {
        match self {
            Model::MobileNetV2(m) => m.features_from(x, k),
            Model::EfficientNetLite(m) => m.features_from(x, k),
            Model::ResNet(m) => m.features_from(x, k),
            Model::Vit(m) => m.features_from(x, k),
            Model::ConvNext(m) => m.features_from(x, k),
            Model::EfficientNet(m) => m.features_from(x, k),
        }
    }

    /// Pooled features, no head.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Model::MobileNetV2(m) => m.features(x),
            Model::EfficientNetLite(m) => m.features(x),
            Model::ResNet(m) => m.features(x),
            Model::Vit(m) => m.features(x),
            Model::ConvNext(m) => m.features(x),
            Model::EfficientNet(m) => m.features(x),
        }
    }
}
