//! Numerical parity with PyTorch on the same weights and inputs (fixtures/generate.py):
//! outputs agree within 1e-4 of the largest output magnitude, at every named stage.

use std::path::Path;

use burn::prelude::Tensor;
use burn::tensor::TensorData;
use zoo_engine::{Model, Weights};

fn f32s(loaded: &zoo_checkpoint::Loaded<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = loaded
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name}"));
    (
        t.shape.clone(),
        t.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

fn close(stage: &str, ours: &[f32], theirs: &[f32]) {
    assert_eq!(ours.len(), theirs.len(), "{stage}");
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = ours
        .iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{stage}: max |diff| {worst:.2e}, max |value| {scale:.3}");
    assert!(
        worst <= 1e-4 * scale,
        "{stage}: max |diff| {worst} > 1e-4 × {scale}"
    );
}

#[test]
fn mobilenet_v2_matches_pytorch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mobilenet_v2.parity.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let (model, classes) = Model::build("mobilenet_v2", &w, true).unwrap();
    w.finish().unwrap();
    assert_eq!(classes, Some(7));
    let (shape, x) = f32s(&loaded, "input");
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let features: Vec<f32> = model
        .features(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close("features", &features, &f32s(&loaded, "out.features").1);
    let logits: Vec<f32> = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    close("logits", &logits, &f32s(&loaded, "out.logits").1);
}

fn resnet_matches_pytorch(arch: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/fixtures/{arch}.parity.safetensors"));
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let (model, classes) = Model::build(arch, &w, true).unwrap();
    w.finish().unwrap();
    assert_eq!(classes, Some(5));
    let (shape, x) = f32s(&loaded, "input");
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let Model::ResNet(net) = &model else {
        panic!("not a ResNet")
    };
    for (i, stage) in net.stages(x.clone()).into_iter().enumerate() {
        let ours: Vec<f32> = stage.into_data().try_to_vec::<f32>().unwrap();
        close(
            &format!("{arch} layer{}", i + 1),
            &ours,
            &f32s(&loaded, &format!("out.layer{}", i + 1)).1,
        );
    }
    let logits: Vec<f32> = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    close(
        &format!("{arch} logits"),
        &logits,
        &f32s(&loaded, "out.logits").1,
    );
}

#[test]
fn resnet18_matches_pytorch_at_every_stage() {
    resnet_matches_pytorch("resnet18");
}

#[test]
fn resnet50_matches_pytorch_at_every_stage() {
    resnet_matches_pytorch("resnet50");
}
