//! Fine-tuning on the real fixtures (issue 6): fine-tuning beats training from scratch, frozen
//! tensors stay bit-identical, the feature cache makes a second run skip the backbone, a
//! resumed run ends byte-identical, early stopping fires, bad data is named.

use std::path::{Path, PathBuf};

mod common;
use common::sentiment_csv;

use zoo_train::Silent;
use zoo_train::finetune::{Options, finetune};

fn fixtures() -> PathBuf {
    zoo_testkit::real_fixtures()
}

/// The torchvision MobileNetV2 as a zoo model folder.
fn mobilenet(dir: &Path) -> PathBuf {
    let out = dir.join("mobilenet_v2");
    std::fs::create_dir_all(&out).unwrap();
    zoo_checkpoint::convert(
        &fixtures().join("checkpoints/mobilenet_v2-b0353104.pth"),
        &out.join("model.safetensors"),
        None,
    )
    .unwrap();
    let labels: Vec<String> = std::fs::read_to_string(fixtures().join("imagenet_classes.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let config =
        zoo_card::Config::timm("mobilenet_v2", &labels, &zoo_card::PretrainedCfg::default());
    std::fs::write(out.join("config.json"), config.to_json_string()).unwrap();
    out
}

/// A checkpoint's tensors under torchvision's names (zoo publishes MobileNetV2 under timm's).
fn tensors(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mapped = zoo_checkpoint::Mapped::open(path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    loaded
        .tensors
        .iter()
        .map(|t| {
            let name = zoo_engine::timm::to_torchvision("mobilenet_v2", &t.name)
                .unwrap_or_else(|| t.name.clone());
            (name, t.data.to_vec())
        })
        .collect()
}

fn small(o: Options) -> Options {
    Options {
        image_size: Some(64),
        per_class: Some(10),
        max_test: Some(200),
        batch_size: 25,
        ..o
    }
}

#[test]
fn fine_tuning_beats_training_from_scratch_and_keeps_frozen_blocks_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let model = mobilenet(tmp.path());
    let data = fixtures().join("fashion-mnist");
    let base = small(Options {
        epochs: 3,
        freeze: "stages:8".into(),
        lr: 1e-3,
        ..Options::default()
    });
    let tuned = finetune(&model, &data, &tmp.path().join("tuned"), &base, &Silent).unwrap();
    let scratch = finetune(
        &model,
        &data,
        &tmp.path().join("scratch"),
        &Options {
            from_scratch: true,
            ..base
        },
        &Silent,
    )
    .unwrap();
    eprintln!(
        "fine-tuned {:.3} vs from scratch {:.3} on {} test images ({} training)",
        tuned.eval.accuracy, scratch.eval.accuracy, tuned.eval.examples, tuned.train_examples
    );
    assert_eq!(tuned.eval.examples, 200);
    assert!(
        tuned.eval.accuracy >= scratch.eval.accuracy + 0.15,
        "fine-tuning {:.3} should beat scratch {:.3} by 0.15",
        tuned.eval.accuracy,
        scratch.eval.accuracy
    );
    // The first 8 blocks (stem = features.0 ... features.7), statistics included, are the
    // original bytes; a later block trained.
    let before = tensors(&model.join("model.safetensors"));
    let after = tensors(&tmp.path().join("tuned/model.safetensors"));
    let mut frozen = 0;
    for (name, bytes) in &after {
        let block: usize = match name
            .strip_prefix("features.")
            .and_then(|r| r.split('.').next())
        {
            Some(b) => b.parse().unwrap(),
            None => continue,
        };
        if block < 8 {
            assert_eq!(Some(bytes), before.get(name), "{name} is frozen");
            frozen += 1;
        }
    }
    assert!(frozen > 40, "{frozen} frozen tensors checked");
    assert_ne!(
        after["features.17.conv.0.0.weight"],
        before["features.17.conv.0.0.weight"]
    );
    assert_eq!(
        after["classifier.1.weight"].len(),
        10 * 1280 * 4,
        "a 10-class head"
    );
    for f in [
        "config.json",
        "README.md",
        "metrics.jsonl",
        "curves.png",
        "confusion.png",
        "report.html",
    ] {
        assert!(tmp.path().join("tuned").join(f).exists(), "{f} written");
    }
    let card = std::fs::read_to_string(tmp.path().join("tuned/README.md")).unwrap();
    assert!(card.contains("base_model"), "{card}");
    assert!(card.contains("model-index"), "{card}");
    let lines = std::fs::read_to_string(tmp.path().join("tuned/metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);
}

#[test]
fn a_second_head_only_run_reads_every_feature_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let model = mobilenet(tmp.path());
    let data = fixtures().join("fashion-mnist");
    let o = small(Options {
        epochs: 4,
        freeze: "all".into(),
        augment: false,
        cache_dir: Some(tmp.path().join("cache")),
        ..Options::default()
    });
    let first = finetune(&model, &data, &tmp.path().join("a"), &o, &Silent).unwrap();
    let with_id = Options {
        dataset_id: Some("zalando-datasets/fashion_mnist".into()),
        ..o
    };
    let second = finetune(&model, &data, &tmp.path().join("b"), &with_id, &Silent).unwrap();
    // Issue 13: the card names a data set only when given its hub id.
    let card = |d: &str| std::fs::read_to_string(tmp.path().join(d).join("README.md")).unwrap();
    assert!(!card("a").contains("datasets:"), "{}", card("a"));
    assert!(
        card("b").contains("datasets:\n- zalando-datasets/fashion_mnist"),
        "{}",
        card("b")
    );
    assert!(first.backbone_batches > 0);
    assert_eq!(
        second.backbone_batches, 0,
        "no backbone forward pass on the second run"
    );
    assert_eq!(second.feature_cache_hits, 3);
    assert_eq!(
        std::fs::read(tmp.path().join("a/model.safetensors")).unwrap(),
        std::fs::read(tmp.path().join("b/model.safetensors")).unwrap()
    );
    // Only the head changed.
    let before = tensors(&model.join("model.safetensors"));
    let after = tensors(&tmp.path().join("a/model.safetensors"));
    for (name, bytes) in &after {
        if !name.starts_with("classifier.") {
            assert_eq!(Some(bytes), before.get(name), "{name}");
        }
    }
    assert!(
        first.eval.accuracy > 0.5,
        "frozen features + linear head: {}",
        first.eval.accuracy
    );
}

/// Resume (issue 6): a run stopped after epoch 1 and resumed ends with the same weights as one
/// that ran straight through — full fine-tuning of the real MiniLM on real sentences.
#[test]
fn a_resumed_text_run_ends_where_a_straight_run_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixtures().join("checkpoints/all-MiniLM-L6-v2");
    let csv = sentiment_csv(tmp.path(), 30);
    let o = Options {
        epochs: 3,
        batch_size: 16,
        lr: 1e-4,
        patience: 10,
        ..Options::default()
    };
    let straight = finetune(&model, &csv, &tmp.path().join("straight"), &o, &Silent).unwrap();
    let stopped = finetune(
        &model,
        &csv,
        &tmp.path().join("resumed"),
        &Options {
            stop_after: Some(1),
            ..o.clone()
        },
        &Silent,
    );
    assert!(stopped.is_err(), "the first process stops after epoch 1");
    assert!(!tmp.path().join("resumed/model.safetensors").exists());
    let resumed = finetune(
        &model,
        &csv,
        &tmp.path().join("resumed"),
        &Options { resume: true, ..o },
        &Silent,
    )
    .unwrap();
    assert_eq!(resumed.epochs_run, straight.epochs_run);
    // Byte-identical: parameters reloaded in burn's own contiguous layout take the same
    // kernels as the uninterrupted run's.
    let a = tensors(&tmp.path().join("straight/model.safetensors"));
    let b = tensors(&tmp.path().join("resumed/model.safetensors"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let differing: Vec<&String> = a.keys().filter(|n| a[*n] != b[*n]).collect();
    assert!(
        differing.is_empty(),
        "resumed run differs in {} of {} tensors: {:?}",
        differing.len(),
        a.len(),
        &differing[..differing.len().min(5)]
    );
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("straight/config.json")).unwrap(),
    )
    .unwrap();
    // Mean pooling (the MiniLM folder's own): sentence-transformers' layout (issue 13).
    assert_eq!(config["architectures"][0], "BertModel");
    assert!(tmp.path().join("straight/modules.json").exists());
    assert_eq!(config["id2label"]["1"], "positive");
    assert!(tmp.path().join("straight/tokenizer.json").exists());
}

#[test]
fn early_stopping_fires_on_a_tiny_data_set_that_overfits() {
    let tmp = tempfile::tempdir().unwrap();
    let model = mobilenet(tmp.path());
    let o = Options {
        image_size: Some(64),
        per_class: Some(3),
        epochs: 40,
        patience: 2,
        freeze: "all".into(),
        augment: false,
        head: "mlp:256".into(),
        lr: 1e-2,
        label_smoothing: 0.0,
        max_test: Some(50),
        cache_dir: Some(tmp.path().join("cache")),
        ..Options::default()
    };
    let s = finetune(
        &model,
        &fixtures().join("fashion-mnist"),
        &tmp.path().join("o"),
        &o,
        &Silent,
    )
    .unwrap();
    assert!(s.stopped_early, "ran {} epochs", s.epochs_run);
    assert!(s.epochs_run < 40);
    assert!(s.best_epoch < s.epochs_run);
}

#[test]
fn bad_data_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let model = mobilenet(tmp.path());
    // A corrupt image among good ones.
    let data = tmp.path().join("imgs");
    for class in ["a", "b"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..3 {
            std::fs::copy(
                fixtures().join("images/coffee.png"),
                data.join(class).join(format!("{i}.png")),
            )
            .unwrap();
        }
    }
    std::fs::write(data.join("b/broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    let o = Options {
        image_size: Some(32),
        epochs: 1,
        augment: false,
        freeze: "all".into(),
        use_cache: false,
        val_fraction: 0.3,
        ..Options::default()
    };
    let e = finetune(&model, &data, &tmp.path().join("o"), &o, &Silent)
        .unwrap_err()
        .to_string();
    assert!(e.contains("broken.png"), "{e}");
    // An empty label in a CSV names the file and line.
    let csv = tmp.path().join("t.csv");
    std::fs::write(&csv, "text,label\ngood,positive\nbad,negative\nhm,\n").unwrap();
    let e = zoo_train::data::load(&csv).unwrap_err().to_string();
    assert!(e.contains("t.csv:4"), "{e}");
    // A label the model does not know, at evaluation.
    let d = zoo_train::data::load(&csv.with_file_name("u.csv"))
        .unwrap_err()
        .to_string();
    assert!(d.contains("u.csv"), "{d}");
    std::fs::write(&csv, "text,label\ngood,positive\nbad,neutral\n").unwrap();
    let d = zoo_train::data::load(&csv).unwrap();
    let e = d
        .relabel(&["negative".to_string(), "positive".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.csv:3") && e.contains("neutral"), "{e}");
}

/// A zoo model folder from one of zoo-engine's parity fixtures (random weights of a reduced
/// torchvision architecture, `weights.*` in the fixture).
fn fixture_model(dir: &Path, file: &str, arch: &str, classes: usize) -> PathBuf {
    let out = dir.join(arch);
    common::write_fixture_weights(file, &out, &[]);
    let labels: Vec<String> = (0..classes).map(|i| format!("class {i}")).collect();
    let config = zoo_card::Config::timm(arch, &labels, &zoo_card::PretrainedCfg::default());
    std::fs::write(out.join("config.json"), config.to_json_string()).unwrap();
    out
}

/// Fine-tunes `model` with the first blocks frozen (`freeze`), once with their output
/// computed once and once running the whole network every step, and asserts the two models
/// are byte-identical; then a third run reads the activations back from the cache.
fn prefix_once_equals_every_step(tmp: &Path, model: &Path, freeze: &str) {
    let o = small(Options {
        epochs: 2,
        freeze: freeze.into(),
        augment: false,
        per_class: Some(5),
        max_test: Some(20),
        batch_size: 16,
        cache_dir: Some(tmp.join("cache")),
        ..Options::default()
    });
    prefix_once_equals_every_step_on(tmp, model, &fixtures().join("fashion-mnist"), &o);
}

fn prefix_once_equals_every_step_on(tmp: &Path, model: &Path, data: &Path, o: &Options) {
    let once = finetune(model, data, &tmp.join("once"), o, &Silent).unwrap();
    let every = finetune(
        model,
        data,
        &tmp.join("every"),
        &Options {
            prefix_cache: false,
            ..o.clone()
        },
        &Silent,
    )
    .unwrap();
    // The training steps and validation passes never ran the backbone's bottom.
    assert!(
        once.backbone_batches < every.backbone_batches,
        "{}: {} vs {}",
        model.display(),
        once.backbone_batches,
        every.backbone_batches
    );
    let (a, b) = (
        tensors(&tmp.join("once/model.safetensors")),
        tensors(&tmp.join("every/model.safetensors")),
    );
    assert_eq!(a.len(), b.len());
    let differ: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
    assert!(
        differ.is_empty(),
        "{}: {} tensors differ: {:?}",
        model.display(),
        differ.len(),
        &differ[..differ.len().min(5)]
    );
    assert_eq!(once.eval.accuracy, every.eval.accuracy);
    // A second run reads the activations from the cache (memory-mapped) and ends the same.
    let again = finetune(model, data, &tmp.join("again"), o, &Silent).unwrap();
    assert_eq!(tensors(&tmp.join("again/model.safetensors")), a);
    assert_eq!(again.eval.accuracy, once.eval.accuracy);
    assert!(again.backbone_batches < once.backbone_batches);
}

/// Issue 11: with the first blocks frozen and no augmentation, their output is computed once
/// and every epoch trains the blocks above it — and the fine-tuned model is byte-identical
/// to the one that runs the whole network every step.
#[test]
fn the_frozen_prefix_computed_once_gives_the_same_bytes_issue_11() {
    let tmp = tempfile::tempdir().unwrap();
    let model = mobilenet(tmp.path());
    prefix_once_equals_every_step(tmp.path(), &model, "stages:8");
}

/// Issue 11: the same for the other image architectures (ResNet, EfficientNet-B0, ConvNeXt;
/// reduced random-weight models).
#[test]
fn the_frozen_prefix_of_every_image_architecture_gives_the_same_bytes_issue_11() {
    for (file, arch, classes, freeze) in [
        ("resnet18.parity.safetensors", "resnet18", 5, "stages:3"),
        (
            "efficientnet_b0.parity.safetensors",
            "efficientnet_b0",
            5,
            "stages:4",
        ),
        (
            "convnext.parity.safetensors",
            "convnext_tiny",
            5,
            "stages:3",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let model = fixture_model(tmp.path(), file, arch, classes);
        prefix_once_equals_every_step(tmp.path(), &model, freeze);
    }
}

/// Issue 11: a text encoder's frozen layers too (MiniLM with the embeddings and the first two
/// layers frozen, real sentences of different lengths): token states cached padded to the
/// longest sentence, each batch read back at its own length.
#[test]
fn the_frozen_prefix_of_a_text_encoder_gives_the_same_bytes_issue_11() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixtures().join("checkpoints/all-MiniLM-L6-v2");
    let csv = sentiment_csv(tmp.path(), 30);
    let o = Options {
        epochs: 2,
        batch_size: 8,
        lr: 1e-4,
        freeze: "stages:3".into(),
        cache_dir: Some(tmp.path().join("cache")),
        ..Options::default()
    };
    prefix_once_equals_every_step_on(tmp.path(), &model, &csv, &o);
}
