//! Gradient coverage: after one backward pass in train mode, every parameter of the network
//! has a non-zero gradient. (Issue 5; the frozen-backbone half comes with fine-tuning.)

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::{Device, Tensor};
use burn::tensor::Distribution;
use zoo_engine::{Model, Weights};

struct Coverage<'a> {
    grads: &'a burn::tensor::Gradients,
    total: usize,
    nonzero: usize,
    zero: Vec<String>,
}

impl ModuleVisitor for Coverage<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // BatchNorm's running statistics are state, not parameters.
        if !param.val().is_require_grad() {
            return;
        }
        self.total += 1;
        match param.val().grad(self.grads) {
            Some(g) if g.clone().abs().sum().into_scalar::<f32>() > 0.0 => self.nonzero += 1,
            _ => self.zero.push(format!("{:?}", param.val().shape())),
        }
    }
}

#[test]
fn every_mobilenet_v2_parameter_gets_a_gradient() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../zoo-checkpoint/tests/fixtures/mobilenet_v2_tiny.expected.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded(&loaded, &device);
    let (model, classes) = Model::build("mobilenet_v2", &w, true).unwrap();
    w.finish().unwrap();
    assert_eq!(classes, Some(10));
    let Model::MobileNetV2(net) = &model;
    let x: Tensor<4> = Tensor::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let target: Tensor<2> = Tensor::random([2, 10], Distribution::Normal(0.0, 1.0), &device);
    let loss = (model.forward(x) * target).sum();
    let grads = loss.backward();
    let mut cov = Coverage {
        grads: &grads,
        total: 0,
        nonzero: 0,
        zero: Vec::new(),
    };
    net.visit(&mut cov);
    // Parameters: every tensor but BatchNorm's running statistics.
    let expected = loaded
        .tensors
        .iter()
        .filter(|t| !zoo_checkpoint::is_buffer(&t.name))
        .count();
    assert_eq!(cov.total, expected, "visited parameters");
    assert!(
        cov.zero.is_empty(),
        "parameters without a gradient: {:?}",
        cov.zero
    );
    assert_eq!(cov.nonzero, expected);
}
