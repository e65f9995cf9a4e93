//! The engine's own CPU kernels for the ops that dominate a training step, plugged into burn
//! without forking it: [`ext::ZooKernels`] is a backend trait of this project's
//! (`#[backend_extension]`), implemented for burn's `flex` CPU backend with the kernels in
//! [`cpu`] and for the autodiff backend with hand-written backward passes. Models call the
//! layer functions in [`nn`], which pick the kernel on the CPU and burn's own ops on any
//! other device (the GPU backend keeps working unchanged). [`profile`] times a step per op
//! kind, forward and backward.
//!
//! Kernels: BatchNorm with batch statistics (one reduction pass, fused normalise + affine,
//! fused backward), depthwise convolution forward and backward, 1x1 convolution as matrix
//! products forward and backward, ReLU/ReLU6 with a one-pass backward.

pub mod cpu;
pub mod dense;
pub mod ext;
pub mod nn;
pub mod profile;
