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

/// Loads an image-model parity fixture, builds `arch` from its weights (every tensor used,
/// `classes` outputs), and hands the model, the PyTorch input and the fixture to `check`.
fn with_image_model(
    file: &str,
    arch: &str,
    classes: usize,
    check: impl FnOnce(&Model, Tensor<4>, &zoo_checkpoint::Loaded<'_>),
) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let (model, got) = Model::build(arch, &w, true).unwrap();
    w.finish().unwrap();
    assert_eq!(got, Some(classes), "{arch}: classes");
    check(&model, input(&loaded, &device), &loaded);
}

/// The fixture's `input` tensor, NCHW.
fn input(loaded: &zoo_checkpoint::Loaded<'_>, device: &burn::prelude::Device) -> Tensor<4> {
    let (shape, x) = f32s(loaded, "input");
    Tensor::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    )
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn mobilenet_v2_matches_pytorch() {
    with_image_model(
        "mobilenet_v2.parity.safetensors",
        "mobilenet_v2",
        7,
        |model, x, fx| {
            close(
                "features",
                &values(model.features(x.clone())),
                &f32s(fx, "out.features").1,
            );
            close(
                "logits",
                &values(model.forward(x)),
                &f32s(fx, "out.logits").1,
            );
        },
    );
}

fn resnet_matches_pytorch(arch: &str) {
    with_image_model(
        &format!("{arch}.parity.safetensors"),
        arch,
        5,
        |model, x, fx| {
            let Model::ResNet(net) = model else {
                panic!("not a ResNet")
            };
            for (i, stage) in net.stages(x.clone()).into_iter().enumerate() {
                close(
                    &format!("{arch} layer{}", i + 1),
                    &values(stage),
                    &f32s(fx, &format!("out.layer{}", i + 1)).1,
                );
            }
            close(
                &format!("{arch} logits"),
                &values(model.forward(x)),
                &f32s(fx, "out.logits").1,
            );
        },
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
    encoder_matches_transformers("bert");
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
    let x = input(&loaded, &device);
    close(
        "vit tokens",
        &values(vit.tokens(x.clone())),
        &f32s(&loaded, "out.tokens").1,
    );
    close(
        "vit features",
        &values(vit.features(x.clone())),
        &f32s(&loaded, "out.features").1,
    );
    close(
        "vit logits",
        &values(vit.forward(x)),
        &f32s(&loaded, "out.logits").1,
    );
}

#[test]
fn convnext_matches_torchvision_at_every_stage() {
    with_image_model(
        "convnext.parity.safetensors",
        "convnext_tiny",
        5,
        |model, x, fx| {
            let Model::ConvNext(net) = model else {
                panic!("not a ConvNeXt")
            };
            for (i, stage) in net.stages(x.clone()).into_iter().enumerate() {
                close(
                    &format!("convnext stage{}", i + 1),
                    &values(stage),
                    &f32s(fx, &format!("out.stage{}", i + 1)).1,
                );
            }
            close(
                "convnext features",
                &values(model.features(x.clone())),
                &f32s(fx, "out.features").1,
            );
            close(
                "convnext logits",
                &values(model.forward(x)),
                &f32s(fx, "out.logits").1,
            );
        },
    );
}

#[test]
fn efficientnet_b0_matches_torchvision() {
    with_image_model(
        "efficientnet_b0.parity.safetensors",
        "efficientnet_b0",
        5,
        |model, x, fx| {
            close(
                "efficientnet_b0 features",
                &values(model.features(x.clone())),
                &f32s(fx, "out.features").1,
            );
            close(
                "efficientnet_b0 logits",
                &values(model.forward(x)),
                &f32s(fx, "out.logits").1,
            );
        },
    );
}

/// An encoder fixture (padding in the batch): hidden states, mean pooling and, where the
/// fixture has it, the pooler; token type ids from the fixture when it has them.
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
    let has = |n: &str| loaded.tensors.iter().any(|t| t.name == n);
    let (shape, ids) = i64s(&loaded, "input_ids");
    let (_, mask) = i64s(&loaded, "attention_mask");
    let [b, t] = [shape[0], shape[1]];
    let ids: Tensor<2, Int> = Tensor::from_data(TensorData::new(ids, [b, t]), &device);
    let types: Tensor<2, Int> = if has("token_type_ids") {
        Tensor::from_data(
            TensorData::new(i64s(&loaded, "token_type_ids").1, [b, t]),
            &device,
        )
    } else {
        ids.zeros_like()
    };
    let mask: Tensor<2> = Tensor::from_data(
        TensorData::new(mask.iter().map(|&m| m as f32).collect::<Vec<_>>(), [b, t]),
        &device,
    );
    let hidden = bert.forward(ids, types, mask.clone());
    close(
        &format!("{name} hidden"),
        &values(hidden.clone()),
        &f32s(&loaded, "out.hidden").1,
    );
    close(
        &format!("{name} mean pooling"),
        &values(Bert::mean_pool(hidden.clone(), mask)),
        &f32s(&loaded, "out.mean").1,
    );
    if has("out.pooler") {
        let pooled = bert.pool_cls(hidden).unwrap();
        close(
            &format!("{name} pooler"),
            &values(pooled),
            &f32s(&loaded, "out.pooler").1,
        );
    }
}

#[test]
fn roberta_matches_transformers() {
    encoder_matches_transformers("roberta");
}

#[test]
fn distilbert_matches_transformers() {
    encoder_matches_transformers("distilbert");
}

/// Issue 11: the activation after any number of leading units, fed back in, gives the
/// whole pass's features bit for bit — what the frozen-prefix cache of `zoo finetune`
/// relies on — for every image architecture.
#[test]
fn features_from_every_unit_boundary_equal_the_whole_pass_issue_11() {
    fn check(arch: &str, model: &Model, x: &Tensor<4>) {
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let whole = bits(values(model.features(x.clone())));
        let units = model.prefix_units();
        assert!(units.len() >= 3, "{arch}: {units:?}");
        for k in 0..=units.len() {
            let y = model.run_prefix(x.clone(), k);
            let got = bits(values(model.features_from(y, k)));
            assert!(
                got == whole,
                "{arch}: features from the cut after {k} units differ"
            );
        }
    }
    for (file, arch, classes) in [
        ("mobilenet_v2.parity.safetensors", "mobilenet_v2", 7),
        ("resnet18.parity.safetensors", "resnet18", 5),
        ("resnet50.parity.safetensors", "resnet50", 5),
        ("efficientnet_b0.parity.safetensors", "efficientnet_b0", 5),
        ("convnext.parity.safetensors", "convnext_tiny", 5),
    ] {
        with_image_model(file, arch, classes, |model, x, _| check(arch, model, &x));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit.parity.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    let device = zoo_engine::cpu();
    let w = Weights::from_loaded_prefix(&loaded, "weights.", &device);
    let vit = zoo_engine::vit::Vit::load(&w, 2, Some(5)).unwrap();
    w.finish().unwrap();
    check("vit", &Model::Vit(vit), &input(&loaded, &device));
}

/// Issue 13: every tensor name maps between torchvision's and timm's layouts, both ways, as
/// the two libraries name the same tensors (`fixtures/timm_names.py` writes the pairs).
#[test]
fn torchvision_and_timm_names_map_both_ways_issue_13() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/timm_names.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (arch, entry) in v.as_object().unwrap() {
        assert_eq!(
            zoo_engine::timm::timm_arch(arch),
            entry["timm"].as_str().unwrap()
        );
        assert_eq!(
            zoo_engine::timm::torchvision_arch(entry["timm"].as_str().unwrap()),
            arch
        );
        let pairs = entry["pairs"].as_array().unwrap();
        let timm_names: Vec<&str> = pairs.iter().map(|p| p[2].as_str().unwrap()).collect();
        assert!(
            zoo_engine::timm::is_timm_layout(arch, &timm_names),
            "{arch}"
        );
        let tv_names: Vec<&str> = pairs.iter().map(|p| p[0].as_str().unwrap()).collect();
        assert!(!zoo_engine::timm::is_timm_layout(arch, &tv_names), "{arch}");
        for p in pairs {
            let (tv, timm) = (p[0].as_str().unwrap(), p[2].as_str().unwrap());
            let shape = |i: usize| -> Vec<usize> {
                p[i].as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect()
            };
            assert_eq!(
                zoo_engine::timm::to_timm(arch, tv).as_deref(),
                Some(timm),
                "{arch}: {tv}"
            );
            assert_eq!(
                zoo_engine::timm::to_torchvision(arch, timm).as_deref(),
                Some(tv),
                "{arch}: {timm}"
            );
            assert_eq!(
                zoo_engine::timm::timm_shape(timm, &shape(1)),
                shape(3),
                "{timm}"
            );
            assert_eq!(
                zoo_engine::timm::torchvision_shape(tv, &shape(3)),
                shape(1),
                "{tv}"
            );
        }
    }
}

/// Issue 13: the `pretrained_cfg` zoo writes names the classifier and first convolution as
/// timm does (timm 1.0.31's `get_pretrained_cfg(arch).classifier` / `.first_conv`), so
/// `timm.create_model("hf-hub:…", pretrained=True, num_classes=N)` finds the head to replace.
#[test]
fn pretrained_cfg_names_modules_as_timm_does_issue_13() {
    for (arch, classifier, first_conv) in [
        ("mobilenet_v2", "classifier", "conv_stem"),
        ("efficientnet_b0", "classifier", "conv_stem"),
        ("convnext_tiny", "head.fc", "stem.0"),
        ("resnet18", "fc", "conv1"),
        ("resnet50", "fc", "conv1"),
        ("vit_small_patch16_224", "head", "patch_embed.proj"),
    ] {
        let cfg = zoo_engine::timm::pretrained_cfg(arch);
        assert_eq!(cfg.classifier.as_deref(), Some(classifier), "{arch}");
        assert_eq!(cfg.first_conv.as_deref(), Some(first_conv), "{arch}");
    }
}
