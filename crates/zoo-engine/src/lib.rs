//! The model library: networks built from an architecture name, weights loaded by their
//! standard (torchvision / timm / Hugging Face) names, strictly — a missing or unexpected
//! tensor is an error naming it.
//!
//! Built on burn with the pure-Rust `flex` CPU backend (see ARCHITECTURE.md, "The engine
//! decision"). Every layer here is burn's own module or a composition of tensor ops that
//! burn's autodiff differentiates, so every op on the training path has a backward pass.

pub mod bert;
pub mod classifier;
pub mod convnext;
pub mod efficientnet;
pub mod efficientnet_lite;
pub mod export;
pub mod fused;
pub mod lora;
pub mod mobilenet_v2;
pub mod model;
pub mod resnet;
pub mod seeded;
pub mod timm;
pub mod vit;
pub mod weights;

pub use burn::prelude::{Device, Tensor};
pub use model::{ARCHITECTURES, Model, ModelError, head_name};
pub use weights::{Names, WeightError, Weights};

/// The CPU device used by default.
pub fn cpu() -> Device {
    Device::flex()
}

/// The first CUDA GPU (feature `cuda`; runs only where a GPU machine is lent).
#[cfg(feature = "cuda")]
pub fn cuda() -> Device {
    Device::cuda(0)
}
