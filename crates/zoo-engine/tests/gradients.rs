//! Gradient coverage: after one backward pass in train mode, every parameter of the network
//! has a non-zero gradient. (Issue 5; the frozen-backbone half comes with fine-tuning.)

use std::path::Path;

use burn::module::{ModuleVisitor, Param};
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

/// One backward pass on random inputs in train mode; returns (parameters visited, those with a
/// non-zero gradient, shapes of those without).
fn coverage(model: &Model, device: &Device, classes: usize) -> (usize, usize, Vec<String>) {
    let x: Tensor<4> = Tensor::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), device);
    let target: Tensor<2> = Tensor::random([2, classes], Distribution::Normal(0.0, 1.0), device);
    let loss = (model.forward(x) * target).sum();
    let grads = loss.backward();
    let mut cov = Coverage {
        grads: &grads,
        total: 0,
        nonzero: 0,
        zero: Vec::new(),
    };
    model.visit(&mut cov);
    (cov.total, cov.nonzero, cov.zero)
}

/// Builds `arch` from the tensors of `path` under `prefix` (all of them used) on an autodiff
/// device and asserts every parameter gets a non-zero gradient.
fn check(path: &Path, arch: &str, prefix: &str) {
    let mapped = zoo_checkpoint::Mapped::open(path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded_prefix(&loaded, prefix, &device);
    let (model, classes) = Model::build(arch, &w, true).unwrap();
    w.finish().unwrap();
    let (total, nonzero, zero) = coverage(&model, &device, classes.unwrap());
    // Parameters: every tensor but BatchNorm's running statistics.
    let expected = loaded
        .tensors
        .iter()
        .filter(|t| t.name.starts_with(prefix) && !zoo_checkpoint::is_buffer(&t.name))
        .count();
    assert_eq!(total, expected, "{arch}: visited parameters");
    assert!(
        zero.is_empty(),
        "{arch}: parameters without a gradient: {zero:?}"
    );
    assert_eq!(nonzero, expected);
    eprintln!("{arch}: {nonzero}/{expected} parameters have a gradient");
}

/// A parity fixture of this crate (random weights under `weights.`).
fn fixture(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

#[test]
fn every_mobilenet_v2_parameter_gets_a_gradient() {
    check(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../zoo-checkpoint/tests/fixtures/mobilenet_v2_tiny.expected.safetensors"),
        "mobilenet_v2",
        "",
    );
}

#[test]
fn every_efficientnet_lite0_parameter_gets_a_gradient() {
    let dir = zoo_testkit::real_fixtures();
    check(
        &dir.join("checkpoints/efficientnet-lite0-57934424.pth"),
        "efficientnet_lite0",
        "",
    );
}

#[test]
fn every_resnet_parameter_gets_a_gradient() {
    for arch in ["resnet18", "resnet50"] {
        check(
            &fixture(&format!("{arch}.parity.safetensors")),
            arch,
            "weights.",
        );
    }
}

#[test]
fn every_bert_parameter_gets_a_gradient() {
    use burn::module::Module;
    use burn::prelude::Int;
    use burn::tensor::TensorData;
    use zoo_engine::bert::{Bert, BertConfig};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mapped = zoo_checkpoint::Mapped::open(dir.join("bert.parity.safetensors")).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bert.config.json")).unwrap())
            .unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let bert = Bert::load(&w, &BertConfig::from_json(&config).unwrap()).unwrap();
    w.finish().unwrap();
    let ids: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(vec![2i64, 45, 17, 88, 3, 2, 51, 7, 4, 0], [2, 5]),
        &device,
    );
    let types: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(vec![0i64, 0, 0, 1, 1, 0, 0, 0, 0, 0], [2, 5]),
        &device,
    );
    let mask: Tensor<2> = Tensor::from_data(
        TensorData::new(vec![1f32, 1., 1., 1., 1., 1., 1., 1., 1., 0.], [2, 5]),
        &device,
    );
    let hidden = bert.forward(ids, types, mask.clone());
    let target: Tensor<2> = Tensor::random([2, 32], Distribution::Normal(0.0, 1.0), &device);
    let loss = (Bert::mean_pool(hidden.clone(), mask) * target.clone()).sum()
        + (bert.pool_cls(hidden).unwrap() * target).sum();
    let grads = loss.backward();
    let mut cov = Coverage {
        grads: &grads,
        total: 0,
        nonzero: 0,
        zero: Vec::new(),
    };
    bert.visit(&mut cov);
    let expected = loaded
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("weights.") && !t.name.ends_with("position_ids"))
        .count();
    assert!(cov.zero.is_empty(), "without a gradient: {:?}", cov.zero);
    assert_eq!((cov.total, cov.nonzero), (expected, expected));
    eprintln!(
        "bert: {}/{expected} parameters have a gradient",
        cov.nonzero
    );
}

/// Every float tensor of a module (parameters and BatchNorm statistics), in visiting order.
struct Snapshot(Vec<Vec<f32>>);

impl ModuleVisitor for Snapshot {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .push(param.val().into_data().try_to_vec::<f32>().unwrap());
    }
}

#[test]
fn a_frozen_backbone_stays_bit_identical_while_the_head_trains() {
    use burn::module::Module;
    use burn::optim::{AdamWConfig, GradientsParams};
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet18.parity.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let mut model = zoo_engine::resnet::ResNet::load(&w, [2, 2, 2, 2], false, Some(5))
        .unwrap()
        .freeze_backbone();
    w.finish().unwrap();
    let mut before = Snapshot(Vec::new());
    model.visit(&mut before);
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    for _ in 0..3 {
        let x: Tensor<4> = Tensor::random([4, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let target: Tensor<2> = Tensor::random([4, 5], Distribution::Normal(0.0, 1.0), &device);
        let loss = (model.forward(x) - target).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model.clone(), grads);
    }
    let mut after = Snapshot(Vec::new());
    model.visit(&mut after);
    let n = before.0.len();
    // The classifier (fc.weight, fc.bias) is visited last.
    for i in 0..n - 2 {
        assert!(
            before.0[i]
                .iter()
                .zip(&after.0[i])
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "frozen tensor {i} of {n} changed"
        );
    }
    assert_ne!(before.0[n - 2], after.0[n - 2], "the head's weight trained");
    assert_ne!(before.0[n - 1], after.0[n - 1], "the head's bias trained");
}

#[test]
fn every_vit_parameter_gets_a_gradient() {
    use burn::module::Module;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit.parity.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let vit = zoo_engine::vit::Vit::load(&w, 2, Some(5)).unwrap();
    w.finish().unwrap();
    let x: Tensor<4> = Tensor::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let target: Tensor<2> = Tensor::random([2, 5], Distribution::Normal(0.0, 1.0), &device);
    let grads = (vit.forward(x) * target).sum().backward();
    let mut cov = Coverage {
        grads: &grads,
        total: 0,
        nonzero: 0,
        zero: Vec::new(),
    };
    vit.visit(&mut cov);
    let expected = loaded
        .tensors
        .iter()
        .filter(|t| t.name.starts_with("weights."))
        .count();
    assert!(cov.zero.is_empty(), "without a gradient: {:?}", cov.zero);
    assert_eq!((cov.total, cov.nonzero), (expected, expected));
    eprintln!("vit: {}/{expected} parameters have a gradient", cov.nonzero);
}

#[test]
fn every_convnext_parameter_gets_a_gradient() {
    check(
        &fixture("convnext.parity.safetensors"),
        "convnext_tiny",
        "weights.",
    );
}

#[test]
fn every_efficientnet_b0_parameter_gets_a_gradient() {
    check(
        &fixture("efficientnet_b0.parity.safetensors"),
        "efficientnet_b0",
        "weights.",
    );
}
