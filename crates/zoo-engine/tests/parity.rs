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

fn i64s(loaded: &zoo_checkpoint::Loaded<'_>, name: &str) -> (Vec<usize>, Vec<i64>) {
    let t = loaded
        .tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("{name}"));
    (
        t.shape.clone(),
        t.data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    )
}

#[test]
fn bert_matches_transformers_with_padding() {
    use burn::prelude::Int;
    use zoo_engine::bert::{Bert, BertConfig};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mapped = zoo_checkpoint::Mapped::open(dir.join("bert.parity.safetensors")).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bert.config.json")).unwrap())
            .unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let bert = Bert::load(&w, &BertConfig::from_json(&config).unwrap()).unwrap();
    w.finish().unwrap();
    let (shape, ids) = i64s(&loaded, "input_ids");
    let (_, types) = i64s(&loaded, "token_type_ids");
    let (_, mask) = i64s(&loaded, "attention_mask");
    let [b, t] = [shape[0], shape[1]];
    let ids: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [b, t]), &device);
    let types: Tensor<2, Int> = Tensor::from_data(TensorData::new(types, [b, t]), &device);
    let mask: Tensor<2> = Tensor::from_data(
        TensorData::new(mask.iter().map(|&m| m as f32).collect::<Vec<_>>(), [b, t]),
        &device,
    );
    let hidden = bert.forward(ids, types, mask.clone());
    let ours: Vec<f32> = hidden.clone().into_data().try_to_vec::<f32>().unwrap();
    close("bert hidden", &ours, &f32s(&loaded, "out.hidden").1);
    let mean: Vec<f32> = Bert::mean_pool(hidden.clone(), mask)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close("bert mean pooling", &mean, &f32s(&loaded, "out.mean").1);
    let pooled: Vec<f32> = bert
        .pool_cls(hidden)
        .unwrap()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close("bert pooler", &pooled, &f32s(&loaded, "out.pooler").1);
}

#[test]
fn vit_matches_timm() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit.parity.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let vit = zoo_engine::vit::Vit::load(&w, 2, Some(5)).unwrap();
    w.finish().unwrap();
    let (shape, x) = f32s(&loaded, "input");
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let tokens: Vec<f32> = vit
        .tokens(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close("vit tokens", &tokens, &f32s(&loaded, "out.tokens").1);
    let feats: Vec<f32> = vit
        .features(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close("vit features", &feats, &f32s(&loaded, "out.features").1);
    let logits: Vec<f32> = vit.forward(x).into_data().try_to_vec::<f32>().unwrap();
    close("vit logits", &logits, &f32s(&loaded, "out.logits").1);
}

#[test]
fn convnext_matches_torchvision_at_every_stage() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/convnext.parity.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let (model, classes) = Model::build("convnext_tiny", &w, true).unwrap();
    w.finish().unwrap();
    assert_eq!(classes, Some(5));
    let (shape, x) = f32s(&loaded, "input");
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let Model::ConvNext(net) = &model else {
        panic!("not a ConvNeXt")
    };
    for (i, stage) in net.stages(x.clone()).into_iter().enumerate() {
        let ours: Vec<f32> = stage.into_data().try_to_vec::<f32>().unwrap();
        close(
            &format!("convnext stage{}", i + 1),
            &ours,
            &f32s(&loaded, &format!("out.stage{}", i + 1)).1,
        );
    }
    let feats: Vec<f32> = model
        .features(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close(
        "convnext features",
        &feats,
        &f32s(&loaded, "out.features").1,
    );
    let logits: Vec<f32> = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    close("convnext logits", &logits, &f32s(&loaded, "out.logits").1);
}

#[test]
fn efficientnet_b0_matches_torchvision() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/efficientnet_b0.parity.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let (model, classes) = Model::build("efficientnet_b0", &w, true).unwrap();
    w.finish().unwrap();
    assert_eq!(classes, Some(5));
    let (shape, x) = f32s(&loaded, "input");
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        &device,
    );
    let feats: Vec<f32> = model
        .features(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close(
        "efficientnet_b0 features",
        &feats,
        &f32s(&loaded, "out.features").1,
    );
    let logits: Vec<f32> = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    close(
        "efficientnet_b0 logits",
        &logits,
        &f32s(&loaded, "out.logits").1,
    );
}

fn encoder_matches_transformers(name: &str) {
    use burn::prelude::Int;
    use zoo_engine::bert::{Bert, BertConfig};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mapped =
        zoo_checkpoint::Mapped::open(dir.join(format!("{name}.parity.safetensors"))).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.config.json"))).unwrap(),
    )
    .unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let bert = Bert::load(&w, &BertConfig::from_json(&config).unwrap()).unwrap();
    w.finish().unwrap();
    let (shape, ids) = i64s(&loaded, "input_ids");
    let (_, mask) = i64s(&loaded, "attention_mask");
    let [b, t] = [shape[0], shape[1]];
    let ids: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [b, t]), &device);
    let mask: Tensor<2> = Tensor::from_data(
        TensorData::new(mask.iter().map(|&m| m as f32).collect::<Vec<_>>(), [b, t]),
        &device,
    );
    let hidden = bert.forward(ids.clone(), ids.zeros_like(), mask.clone());
    let ours: Vec<f32> = hidden.clone().into_data().try_to_vec::<f32>().unwrap();
    close(
        &format!("{name} hidden"),
        &ours,
        &f32s(&loaded, "out.hidden").1,
    );
    let mean: Vec<f32> = Bert::mean_pool(hidden, mask)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    close(
        &format!("{name} mean pooling"),
        &mean,
        &f32s(&loaded, "out.mean").1,
    );
}

#[test]
fn roberta_matches_transformers() {
    encoder_matches_transformers("roberta");
}

#[test]
fn distilbert_matches_transformers() {
    encoder_matches_transformers("distilbert");
}
