//! Fine-tuning support (issues 5 and 6): a new head under the architecture's standard name,
//! freezing by name, and export back to a PyTorch-style state dict.
//!
//! For every architecture: with the backbone frozen, several train-mode AdamW steps change the
//! head and leave every backbone tensor — BatchNorm running statistics included — bit-identical,
//! and every head parameter gets a non-zero gradient.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::{Device, Int, Tensor};
use burn::tensor::{Distribution, TensorData};
use zoo_engine::classifier::{Head, HeadSpec, ImageClassifier, Pooling, TextClassifier};
use zoo_engine::export::{block_of, parameters, set_trainable, state_dict, trainable};
use zoo_engine::{Model, Names, Weights, head_name};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Builds `arch` without its head from a parity fixture, plus a new 3-class head.
fn classifier(arch: &str, file: &Path, prefix: &str, device: &Device) -> (ImageClassifier, Names) {
    let mapped = zoo_checkpoint::Mapped::open(file).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let head = head_name(arch).unwrap();
    let w = Weights::from_loaded_prefix(&loaded, prefix, device).allow_unused(&[head]);
    let backbone = if arch == "vit_small_patch16_224" {
        // The reduced fixture has 2 heads, not ViT-S's 6.
        Model::Vit(zoo_engine::vit::Vit::load(&w, 2, None).unwrap())
    } else {
        Model::build(arch, &w, false).unwrap().0
    };
    w.finish().unwrap();
    let mut names = w.names();
    let head = Head::new(
        HeadSpec::Linear,
        backbone.num_features(),
        3,
        head,
        &mut names,
        device,
        0,
    );
    (ImageClassifier { backbone, head }, names)
}

fn bits<M: Module>(m: &M, names: &Names) -> Vec<(String, Vec<u8>)> {
    state_dict(m, names)
        .into_iter()
        .map(|t| (t.name, t.data))
        .collect()
}

fn frozen_backbone(arch: &str, file: &Path, prefix: &str, size: usize) {
    let device = Device::autodiff(zoo_engine::cpu());
    let (model, names) = classifier(arch, file, prefix, &device);
    let head = head_name(arch).unwrap();
    let backbone: HashSet<_> = parameters(&model.backbone, &names)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut model = set_trainable(model, &backbone, false);
    let train = trainable(&model, &names);
    assert_eq!(
        train.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
        [format!("{head}.weight"), format!("{head}.bias")],
        "{arch}: only the head trains"
    );
    let before = bits(&model, &names);
    let mut optim = AdamWConfig::new().with_weight_decay(0.01).init();
    for step in 0..3 {
        let x: Tensor<4> =
            Tensor::random([4, 3, size, size], Distribution::Normal(0.0, 1.0), &device);
        let target: Tensor<1, Int> =
            Tensor::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), &device);
        let logits = model.forward(x);
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, target);
        let grads = loss.backward();
        if step == 0 {
            for (id, name) in &train {
                let _ = id;
                // The head's parameters are the only ones with a gradient, all non-zero.
                let g = match name.ends_with("weight") {
                    true => match &model.head {
                        Head::Linear(l) => l.weight.val().grad(&grads).unwrap().abs().sum(),
                        Head::Mlp(_) => unreachable!(),
                    },
                    false => match &model.head {
                        Head::Linear(l) => l
                            .bias
                            .as_ref()
                            .unwrap()
                            .val()
                            .grad(&grads)
                            .unwrap()
                            .abs()
                            .sum(),
                        Head::Mlp(_) => unreachable!(),
                    },
                };
                assert!(
                    g.into_scalar::<f32>() > 0.0,
                    "{arch}: {name} has no gradient"
                );
            }
        }
        let grads = GradientsParams::from_grads(grads, &model);
        model = optim.step(1e-2, model, grads);
    }
    let after = bits(&model, &names);
    assert_eq!(before.len(), after.len());
    let mut changed = Vec::new();
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        if name.starts_with(head) {
            assert_ne!(a, b, "{arch}: {name} trained");
        } else if a != b {
            changed.push(name.clone());
        }
    }
    assert!(
        changed.is_empty(),
        "{arch}: frozen tensors changed: {changed:?}"
    );
    eprintln!(
        "{arch}: {} frozen tensors bit-identical after 3 steps",
        before.len() - 2
    );
}

#[test]
fn frozen_backbones_stay_bit_identical_for_every_image_architecture() {
    frozen_backbone(
        "mobilenet_v2",
        &fixture("mobilenet_v2.parity.safetensors"),
        "weights.",
        64,
    );
    frozen_backbone(
        "resnet18",
        &fixture("resnet18.parity.safetensors"),
        "weights.",
        64,
    );
    frozen_backbone(
        "resnet50",
        &fixture("resnet50.parity.safetensors"),
        "weights.",
        64,
    );
    frozen_backbone(
        "efficientnet_b0",
        &fixture("efficientnet_b0.parity.safetensors"),
        "weights.",
        64,
    );
    frozen_backbone(
        "convnext_tiny",
        &fixture("convnext.parity.safetensors"),
        "weights.",
        64,
    );
    frozen_backbone(
        "vit_small_patch16_224",
        &fixture("vit.parity.safetensors"),
        "weights.",
        32,
    );
    frozen_backbone(
        "efficientnet_lite0",
        &zoo_testkit::real_fixtures().join("checkpoints/efficientnet-lite0-57934424.pth"),
        "",
        64,
    );
}

#[test]
fn a_frozen_text_encoder_stays_bit_identical() {
    use zoo_engine::bert::{Bert, BertConfig};
    for family in ["bert", "roberta", "distilbert"] {
        let device = Device::autodiff(zoo_engine::cpu());
        let mapped =
            zoo_checkpoint::Mapped::open(fixture(&format!("{family}.parity.safetensors"))).unwrap();
        let loaded = zoo_checkpoint::load(&mapped).unwrap();
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("{family}.config.json"))).unwrap(),
        )
        .unwrap();
        let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
        let encoder = Bert::load(&w, &BertConfig::from_json(&config).unwrap()).unwrap();
        w.finish().unwrap();
        let mut names = w.names();
        let head = Head::new(
            HeadSpec::Mlp {
                hidden: 8,
                dropout: 0.1,
            },
            encoder.hidden_size,
            2,
            "classifier",
            &mut names,
            &device,
            0,
        );
        let model = TextClassifier { encoder, head };
        let enc: HashSet<_> = parameters(&model.encoder, &names)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let mut model = set_trainable(model, &enc, false);
        assert_eq!(
            trainable(&model, &names).len(),
            4,
            "{family}: two linear layers train"
        );
        let before = bits(&model, &names);
        let mut optim = AdamWConfig::new().init();
        let ids: Tensor<2, Int> = Tensor::from_data(
            TensorData::new(vec![2i64, 45, 17, 88, 3, 2, 51, 7, 4, 0], [2, 5]),
            &device,
        );
        let types: Tensor<2, Int> = ids.zeros_like();
        let mask: Tensor<2> = Tensor::from_data(
            TensorData::new(vec![1f32, 1., 1., 1., 1., 1., 1., 1., 1., 0.], [2, 5]),
            &device,
        );
        for _ in 0..3 {
            let logits = model.forward(ids.clone(), types.clone(), mask.clone(), Pooling::Mean);
            let target: Tensor<1, Int> =
                Tensor::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
            let loss = burn::nn::loss::CrossEntropyLossConfig::new()
                .init(&device)
                .forward(logits, target);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let after = bits(&model, &names);
        for ((name, a), (_, b)) in before.iter().zip(&after) {
            if name.starts_with("classifier.") {
                assert_ne!(a, b, "{family}: {name} trained");
            } else {
                assert_eq!(a, b, "{family}: {name} is frozen");
            }
        }
    }
}

/// Two AdamW steps on MobileNetV2 with its first 4 blocks frozen (and, with `fixed_stats`,
/// every BatchNorm's statistics fixed); returns (name, frozen block, before, after).
fn train_with_first_blocks_frozen(fixed_stats: bool) -> Vec<(String, bool, Vec<u8>, Vec<u8>)> {
    let device = Device::autodiff(zoo_engine::cpu());
    let (model, names) = classifier(
        "mobilenet_v2",
        &fixture("mobilenet_v2.parity.safetensors"),
        "weights.",
        &device,
    );
    let all = parameters(&model, &names);
    let blocks = zoo_engine::export::blocks(&all);
    assert_eq!(blocks[0], "features.0");
    let first: Vec<&String> = blocks.iter().take(4).collect();
    let frozen: HashSet<_> = all
        .iter()
        .filter(|(_, n)| first.contains(&&block_of(n)))
        .map(|(id, _)| *id)
        .collect();
    let mut model = set_trainable(model, &frozen, false);
    if fixed_stats {
        model = zoo_engine::export::set_batch_norm_training(model, false);
    }
    let before = bits(&model, &names);
    let mut optim = AdamWConfig::new().init();
    for _ in 0..2 {
        let x: Tensor<4> = Tensor::random([4, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
        let target: Tensor<1, Int> =
            Tensor::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), &device);
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(model.forward(x), target);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    let after = bits(&model, &names);
    before
        .into_iter()
        .zip(after)
        .filter(|((name, _), _)| !name.ends_with("num_batches_tracked"))
        .map(|((name, a), (_, b))| {
            let f = first.contains(&&block_of(&name));
            (name, f, a, b)
        })
        .collect()
}

/// `--freeze stages:N`: the first blocks keep their weights and BatchNorm statistics; the
/// later ones train, statistics included.
#[test]
fn freezing_the_first_blocks_keeps_their_batch_norm_statistics() {
    for (name, frozen_block, a, b) in train_with_first_blocks_frozen(false) {
        if frozen_block {
            assert_eq!(a, b, "{name} is in a frozen block");
        } else {
            assert_ne!(a, b, "{name} trains (statistics included)");
        }
    }
}

/// `--freeze-bn-stats`: no running statistic moves; the unfrozen weights (BatchNorm's gamma
/// and beta included) still train.
#[test]
fn fixed_batch_norm_statistics_stay_bit_identical_while_weights_train() {
    let mut stats = 0;
    for (name, frozen_block, a, b) in train_with_first_blocks_frozen(true) {
        if frozen_block || name.ends_with("running_mean") || name.ends_with("running_var") {
            stats += usize::from(!frozen_block);
            assert_eq!(a, b, "{name} stays fixed");
        } else {
            assert_ne!(a, b, "{name} trains");
        }
    }
    assert!(stats > 20, "{stats} statistics checked in trained blocks");
}

/// The exported state dict has the original names (minus the old head, plus the new one)
/// and loads back into the same network with the same outputs.
#[test]
fn export_round_trips_through_standard_names() {
    let device = zoo_engine::cpu();
    let file = fixture("resnet18.parity.safetensors");
    let (model, names) = classifier("resnet18", &file, "weights.", &device);
    let exported = state_dict(&model, &names);
    let mapped = zoo_checkpoint::Mapped::open(&file).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let mut original: Vec<String> = loaded
        .tensors
        .iter()
        .filter_map(|t| t.name.strip_prefix("weights.").map(str::to_string))
        .collect();
    original.sort();
    let mut ours: Vec<String> = exported.iter().map(|t| t.name.clone()).collect();
    ours.sort();
    assert_eq!(ours, original, "same names (fc replaced by the new fc)");
    let fc = exported.iter().find(|t| t.name == "fc.weight").unwrap();
    assert_eq!(
        fc.shape,
        vec![3, model.backbone.num_features()],
        "PyTorch's [out, in]"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let views: Vec<_> = exported.iter().map(|t| t.view()).collect();
    let mut f = std::fs::File::create(&path).unwrap();
    zoo_formats::safetensors::write(&views, None, &mut f).unwrap();
    drop(f);
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let w = Weights::from_loaded(&loaded, &device);
    let (again, classes) = Model::build("resnet18", &w, true).unwrap();
    w.finish().unwrap();
    assert_eq!(classes, Some(3));
    let x: Tensor<4> = Tensor::random([2, 3, 64, 64], Distribution::Normal(0.0, 1.0), &device);
    let a = model
        .forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let b = again.forward(x).into_data().try_to_vec::<f32>().unwrap();
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-6, "max |diff| {worst}");
}
