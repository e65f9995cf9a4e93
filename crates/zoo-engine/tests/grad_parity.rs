//! Gradient parity with PyTorch (issue 11): the weights and input of each parity fixture, the
//! training-mode forward (BatchNorm with the batch's statistics), the fixed loss `<output, r>`
//! with PyTorch's `r`, one backward pass; every parameter's gradient agrees with PyTorch's
//! within 1e-4 of that tensor's largest gradient magnitude (fixtures/generate.py,
//! `gradients()`; PyTorch computes in float64, so the reference is the exact gradient).
//!
//! Where PyTorch's own float32 pass is further than that from the exact gradient (BatchNorm
//! with batch statistics over a few images amplifies rounding: the narrow ResNet-50), zoo
//! must be within twice PyTorch's own distance (`err32.<name>` in the fixture).
//!
//! Some tensors' exact gradient is zero: a key bias (it shifts every score of a query alike,
//! and softmax does not see it), a BatchNorm bias followed only by a 1x1 convolution and a
//! BatchNorm with batch statistics (whose input gradient sums to zero per channel). There
//! "within 1e-4 of the largest magnitude" would compare rounding noise with rounding noise;
//! those tensors must instead stay within 1e-5 of the model's largest gradient magnitude.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::{Device, Int, Tensor};
use burn::tensor::{Gradients, TensorData};
use zoo_engine::weights::Names;
use zoo_engine::{Model, Weights};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's tensors as (shape, f32 values) or (shape, i64 values).
struct Fixture {
    f32s: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    i64s: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
}

fn read(file: &str) -> Fixture {
    let mapped = zoo_checkpoint::Mapped::open(dir().join(file)).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let mut fx = Fixture {
        f32s: BTreeMap::new(),
        i64s: BTreeMap::new(),
    };
    for t in &loaded.tensors {
        match t.dtype {
            zoo_formats::Dtype::F32 => {
                let v = t
                    .data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                fx.f32s.insert(t.name.clone(), (t.shape.clone(), v));
            }
            zoo_formats::Dtype::I64 => {
                let v = t
                    .data
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                fx.i64s.insert(t.name.clone(), (t.shape.clone(), v));
            }
            _ => {}
        }
    }
    fx
}

fn tensor<const D: usize>(fx: &Fixture, name: &str, device: &Device) -> Tensor<D> {
    let (shape, v) = fx.f32s.get(name).unwrap_or_else(|| panic!("{name}"));
    let shape: [usize; D] = shape.clone().try_into().unwrap();
    Tensor::from_data(TensorData::new(v.clone(), shape), device)
}

fn ints(fx: &Fixture, name: &str, device: &Device) -> Tensor<2, Int> {
    let (shape, v) = fx.i64s.get(name).unwrap_or_else(|| panic!("{name}"));
    Tensor::from_data(TensorData::new(v.clone(), [shape[0], shape[1]]), device)
}

/// Every trainable parameter's gradient under its standard (PyTorch) name.
struct Collect<'a> {
    names: &'a Names,
    grads: &'a Gradients,
    out: BTreeMap<String, Vec<f32>>,
    unnamed: usize,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        if !t.is_require_grad() {
            return;
        }
        let Some(p) = self.names.params.get(&param.id) else {
            self.unnamed += 1;
            return;
        };
        let g = t
            .grad(self.grads)
            .unwrap_or_else(|| panic!("{}: no gradient", p.name));
        let g = if p.transposed { g.transpose() } else { g };
        let v = g.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        self.out.insert(p.name.clone(), v);
    }
}

/// Compares every gradient with PyTorch's: the same set of names, each within 1e-4 of the
/// largest magnitude of PyTorch's gradient for that tensor.
fn compare(what: &str, ours: &BTreeMap<String, Vec<f32>>, theirs: &Fixture) {
    let want: BTreeMap<&str, &Vec<f32>> = theirs
        .f32s
        .iter()
        .filter_map(|(k, (_, v))| k.strip_prefix("grad.").map(|n| (n, v)))
        .collect();
    let got: Vec<&str> = ours.keys().map(String::as_str).collect();
    let expected: Vec<&str> = want.keys().copied().collect();
    assert_eq!(got, expected, "{what}: the parameters with a gradient");
    let model_max = want
        .values()
        .flat_map(|v| v.iter())
        .fold(0f32, |m, v| m.max(v.abs()));
    let (mut worst_ratio, mut zeros, mut relaxed) = (0f32, 0, 0);
    for (name, g) in ours {
        let w = want[name.as_str()];
        assert_eq!(g.len(), w.len(), "{what} {name}: length");
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = g
            .iter()
            .zip(w.iter())
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let torch32 = 2.0 * theirs.f32s[&format!("err32.{name}")].1[0];
        if scale < 1e-6 * model_max {
            zeros += 1;
            assert!(
                worst <= (1e-5 * model_max).max(torch32),
                "{what} {name}: exact gradient ~0 (max {scale:.3e}) but ours is off by \
                 {worst:.3e} (> 1e-5 × the model's largest gradient {model_max:.3e})"
            );
            continue;
        }
        assert!(
            worst <= (1e-4 * scale).max(torch32),
            "{what} {name}: max |grad diff| {worst:.3e} > 1e-4 × {scale:.3e} (and > twice \
             PyTorch's own f32 distance, {torch32:.3e})"
        );
        if worst > 1e-4 * scale {
            relaxed += 1;
        }
        worst_ratio = worst_ratio.max(worst / scale);
    }
    eprintln!(
        "{what}: {} gradients ({zeros} exactly zero, {relaxed} beyond 1e-4 but within twice \
         PyTorch's f32 distance), worst max|diff| / max|grad| = {worst_ratio:.2e}",
        ours.len()
    );
}

/// Collects the gradients of every parameter `visit` walks under its standard name and
/// compares them with the fixture's.
fn check(
    what: &str,
    names: &Names,
    grads: &Gradients,
    theirs: &Fixture,
    visit: impl FnOnce(&mut Collect<'_>),
) {
    let mut c = Collect {
        names,
        grads,
        out: BTreeMap::new(),
        unnamed: 0,
    };
    visit(&mut c);
    assert_eq!(c.unnamed, 0, "{what}: parameters without a standard name");
    compare(what, &c.out, theirs);
}

/// `train_bn = false`: BatchNorm on running statistics (as PyTorch's eval mode).
fn image_model(name: &str, arch: &str, train_bn: bool) {
    let theirs = read(&format!("{name}.grads.safetensors"));
    let mapped =
        zoo_checkpoint::Mapped::open(dir().join(format!("{name}.parity.safetensors"))).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let (mut model, _) = Model::build(arch, &w, true).unwrap();
    w.finish().unwrap();
    if !train_bn {
        let Model::ResNet(net) = model else {
            panic!("running statistics: only ResNet here")
        };
        model = Model::ResNet(zoo_engine::export::set_batch_norm_training(net, false));
    }
    let x: Tensor<4> = tensor(&theirs, "input", &device);
    let r: Tensor<2> = tensor(&theirs, "r.logits", &device);
    let grads = (model.forward(x) * r).sum().backward();
    check(arch, &w.names(), &grads, &theirs, |c| model.visit(c));
}

#[test]
fn mobilenet_v2_gradients_match_pytorch_issue_11() {
    image_model("mobilenet_v2", "mobilenet_v2", true);
}

#[test]
fn resnet18_gradients_match_pytorch_issue_11() {
    image_model("resnet18", "resnet18", true);
}

#[test]
fn resnet50_gradients_match_pytorch_with_running_statistics_issue_11() {
    // In training mode the narrow fixture is chaotic (generate.py): running statistics.
    image_model("resnet50", "resnet50", false);
}

#[test]
fn efficientnet_b0_gradients_match_pytorch_issue_11() {
    image_model("efficientnet_b0", "efficientnet_b0", true);
}

#[test]
fn convnext_gradients_match_pytorch_issue_11() {
    image_model("convnext", "convnext_tiny", true);
}

#[test]
fn vit_gradients_match_timm_issue_11() {
    let theirs = read("vit.grads.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(dir().join("vit.parity.safetensors")).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let vit = zoo_engine::vit::Vit::load(&w, 2, Some(5)).unwrap();
    w.finish().unwrap();
    let x: Tensor<4> = tensor(&theirs, "input", &device);
    let r: Tensor<2> = tensor(&theirs, "r.logits", &device);
    let grads = (vit.forward(x) * r).sum().backward();
    check("vit", &w.names(), &grads, &theirs, |c| vit.visit(c));
}

fn encoder(name: &str) {
    use zoo_engine::bert::{Bert, BertConfig};
    let fx = read(&format!("{name}.parity.safetensors"));
    let theirs = read(&format!("{name}.grads.safetensors"));
    let mapped =
        zoo_checkpoint::Mapped::open(dir().join(format!("{name}.parity.safetensors"))).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join(format!("{name}.config.json"))).unwrap(),
    )
    .unwrap();
    let device = Device::autodiff(zoo_engine::cpu());
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let bert = Bert::load(&w, &BertConfig::from_json(&config).unwrap()).unwrap();
    w.finish().unwrap();
    let ids = ints(&fx, "input_ids", &device);
    let types = if fx.i64s.contains_key("token_type_ids") {
        ints(&fx, "token_type_ids", &device)
    } else {
        ids.zeros_like()
    };
    let mask_i = ints(&fx, "attention_mask", &device);
    let mask: Tensor<2> = mask_i.float();
    let hidden = bert.forward(ids, types, mask.clone());
    let r: Tensor<3> = tensor(&theirs, "r.hidden", &device);
    let mut loss = (hidden.clone() * mask.unsqueeze_dim::<3>(2) * r).sum();
    if theirs.f32s.contains_key("r.pooler") {
        let r: Tensor<2> = tensor(&theirs, "r.pooler", &device);
        loss = loss + (bert.pool_cls(hidden).expect("a pooler") * r).sum();
    }
    let grads = loss.backward();
    check(name, &w.names(), &grads, &theirs, |c| bert.visit(c));
}

#[test]
fn bert_gradients_match_transformers_issue_11() {
    encoder("bert");
}

#[test]
fn roberta_gradients_match_transformers_issue_11() {
    encoder("roberta");
}

#[test]
fn distilbert_gradients_match_transformers_issue_11() {
    encoder("distilbert");
}
