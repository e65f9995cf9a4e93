//! Parameter-efficient fine-tuning (issue 17) on the real MiniLM and real sentences: LoRA
//! trains only its adapters and the head (every base tensor bit-identical), the adapter
//! folder is peft's format, merging gives the adapter's logits, BitFit moves only biases, and
//! a malformed adapter_config.json is a clear error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use burn::module::{ModuleVisitor, Param};
use burn::prelude::{Device, Tensor};
use zoo_engine::classifier::HeadSpec;
use zoo_engine::lora::LoraShape;
use zoo_train::Silent;
use zoo_train::data::Example;
use zoo_train::finetune::{Options, finetune, predict_logits};
use zoo_train::net::{Prep, Source, prepare};
use zoo_train::peft::{self, Published};

mod common;
use common::sentiment_csv;

/// The backend's random generator is one per process, seeded at every training step: runs in
/// parallel threads would draw each other's dropout masks. The tests that draw take turns (a
/// `zoo finetune` process runs one training).
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn minilm() -> PathBuf {
    zoo_testkit::real_fixtures().join("checkpoints/all-MiniLM-L6-v2")
}

/// A checkpoint's f32 tensors by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mapped = zoo_checkpoint::Mapped::open(path).unwrap();
    let loaded = zoo_checkpoint::load(&mapped).unwrap();
    loaded
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.data.to_vec()))
        .collect()
}

fn lora_options() -> Options {
    Options {
        epochs: 2,
        batch_size: 16,
        lr: 1e-3,
        patience: 10,
        pooling: Some("pooler".into()),
        peft: Some("lora:r=4,alpha=8,dropout=0.1".into()),
        ..Options::default()
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Gradient coverage through a training run (issue 17): after two epochs of LoRA every base
/// tensor of the published model is bit-identical to the checkpoint's, every adapter factor
/// moved from its initial value (B starts at zero, so a non-zero B is a gradient received;
/// A moves only once B is non-zero), and the head moved; merging gives the adapter's logits.
#[test]
fn lora_trains_only_adapters_and_head_and_merges_to_the_same_logits_issue_17() {
    let _turn = rng();
    let tmp = tempfile::tempdir().unwrap();
    let csv = sentiment_csv(tmp.path(), 30);
    let out = tmp.path().join("adapter");
    let o = lora_options();
    let s = finetune(&minilm(), &csv, &out, &o, &Silent).unwrap();
    assert!(s.eval.accuracy > 0.0);
    // peft's files, no full copy of the model.
    assert!(out.join("adapter_config.json").exists());
    assert!(out.join("adapter_model.safetensors").exists());
    assert!(!out.join("model.safetensors").exists());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 4);
    assert_eq!(config["lora_alpha"], 8.0);
    assert_eq!(
        config["target_modules"],
        serde_json::json!(["query", "value"])
    );
    assert_eq!(config["modules_to_save"], serde_json::json!(["classifier"]));
    let saved = tensors(&out.join("adapter_model.safetensors"));
    // 6 layers × (query, value) × (A, B) + the head's weight and bias, under peft's names.
    assert_eq!(saved.len(), 6 * 2 * 2 + 2, "{:?}", saved.keys());
    assert!(
        saved.contains_key(
            "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"
        )
    );
    assert!(saved.contains_key("base_model.model.classifier.weight"));
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("library_name: peft"), "{card}");

    // The adapter on its base, against the base checkpoint and the adapter's initial values.
    let source = Source::open_adapter(&out, &minilm()).unwrap();
    let cpu = zoo_engine::cpu();
    let (net, names) = source.build(None, None, 0, &cpu).unwrap();
    let trained: HashMap<String, Vec<f32>> = zoo_engine::export::state_dict(&net, &names)
        .into_iter()
        .map(|t| (t.name.clone(), t.f32s()))
        .collect();
    let base = tensors(&minilm().join("model.safetensors"));
    let (mut adapters, mut frozen) = (0, 0);
    for (name, v) in &trained {
        if name.contains(".lora_") || name.starts_with("classifier.") {
            adapters += 1;
            continue;
        }
        let original = f32s(&base[name]);
        assert!(
            original
                .iter()
                .zip(v)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "base tensor {name} changed"
        );
        frozen += 1;
    }
    assert_eq!(adapters, 26);
    assert!(frozen > 90, "{frozen} base tensors compared");
    let initial = {
        let fresh = Source::open(&minilm(), None).unwrap();
        let (mut n, mut nm) = fresh
            .build(Some((HeadSpec::Linear, 2)), None, o.seed, &cpu)
            .unwrap();
        let published = Published::of(&fresh, &nm, "linear");
        peft::attach(
            &mut n,
            &mut nm,
            LoraShape {
                r: 4,
                alpha: 8.0,
                dropout: 0.1,
            },
            &["query".into(), "value".into()],
            &published,
            &cpu,
            o.seed,
        )
        .unwrap();
        zoo_engine::export::state_dict(&n, &nm)
            .into_iter()
            .map(|t| (t.name.clone(), t.f32s()))
            .collect::<HashMap<_, _>>()
    };
    for (name, v) in &trained {
        if !(name.contains(".lora_") || name.starts_with("classifier.")) {
            continue;
        }
        let init = &initial[name];
        let moved = init
            .iter()
            .zip(v)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(moved > 1e-6, "{name} did not train (moved {moved})");
        if name.contains(".lora_B.") {
            assert!(init.iter().all(|x| *x == 0.0), "B starts at zero");
        }
    }

    // Merged: the same logits within 1e-5.
    let merged_dir = tmp.path().join("merged");
    let adapter = source.adapter.clone().unwrap();
    let (mut m, mut mn) = source.build(None, None, 0, &cpu).unwrap();
    peft::merge(&mut m, &mut mn);
    assert!(mn.params.values().all(|p| !p.name.contains(".lora_")));
    zoo_train::output::write_merged(&source, &m, &mn, "adapter", &adapter, &merged_dir).unwrap();
    let data = zoo_train::data::load(&csv).unwrap();
    let a = predict_logits(&net, &source, &data, 16, &Silent).unwrap();
    let merged = Source::open(&merged_dir, None).unwrap();
    let (mnet, _) = merged.build(None, None, 0, &cpu).unwrap();
    let b = predict_logits(&mnet, &merged, &data, 16, &Silent).unwrap();
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        worst < 1e-5,
        "merged logits differ from the adapter's by {worst}"
    );
    assert_eq!(merged.labels, vec!["negative", "positive"]);
}

struct Grads<'a> {
    grads: &'a burn::tensor::Gradients,
    names: &'a zoo_engine::Names,
    with: Vec<String>,
    without: Vec<String>,
    frozen: usize,
}

impl ModuleVisitor for Grads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let name = self.names.get(&param.id).unwrap_or("?").to_string();
        if !param.val().is_require_grad() {
            self.frozen += 1;
            return;
        }
        match param.val().grad(self.grads) {
            Some(g) if g.clone().abs().sum().into_scalar::<f32>() > 0.0 => self.with.push(name),
            _ => self.without.push(name),
        }
    }
}

/// Gradient coverage in one backward pass (issue 17): with LoRA attached and the base
/// frozen as `zoo finetune --peft` freezes it, exactly the adapter factors and the head
/// require a gradient, and each gets a non-zero one (B given non-zero values first, as after
/// a step, so that A's gradient is not zero by construction).
#[test]
fn only_adapters_and_the_head_get_gradients_issue_17() {
    let _turn = rng();
    let device = Device::autodiff(zoo_engine::cpu());
    let source = Source::open(&minilm(), None).unwrap();
    let (mut net, mut names) = source
        .build(Some((HeadSpec::Linear, 3)), None, 1, &device)
        .unwrap();
    let backbone = net.backbone_ids(&names);
    let published = Published::of(&source, &names, "linear");
    let shape = LoraShape {
        r: 2,
        alpha: 4.0,
        dropout: 0.0,
    };
    peft::attach(
        &mut net,
        &mut names,
        shape,
        &["query".into(), "value".into()],
        &published,
        &device,
        1,
    )
    .unwrap();
    let lora = peft::lora_ids(&names);
    let values: HashMap<String, Vec<f32>> = names
        .params
        .iter()
        .filter(|(id, _)| lora.contains(id))
        .map(|(_, p)| {
            // Both factors of a rank-2 adapter on a 384-wide layer hold 768 values.
            let n = 2 * 384;
            (
                p.name.clone(),
                (0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect(),
            )
        })
        .collect();
    let only_lora = zoo_engine::Names {
        params: names
            .params
            .iter()
            .filter(|(id, _)| lora.contains(id))
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        passthrough: Default::default(),
    };
    let net = zoo_engine::export::load_state(net, &only_lora, &values).unwrap();
    let frozen: HashSet<_> = backbone.difference(&lora).copied().collect();
    let net = zoo_engine::export::set_trainable(net, &frozen, false);
    let texts = [
        "A wonderful film.",
        "Dull and far too long.",
        "It was fine, I suppose.",
    ];
    let examples: Vec<Example> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Example {
            input: zoo_train::data::Input::Text(t.to_string()),
            label: i,
            origin: format!("line {i}"),
        })
        .collect();
    let refs: Vec<&Example> = examples.iter().collect();
    let (batch, _) = prepare(&source, &refs, Prep::Eval, &device).unwrap();
    let target: Tensor<2> = Tensor::random(
        [3, 3],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let loss = (net.logits(batch, source.pooling()) * target).sum();
    let grads = loss.backward();
    let mut v = Grads {
        grads: &grads,
        names: &names,
        with: Vec::new(),
        without: Vec::new(),
        frozen: 0,
    };
    burn::module::Module::visit(&net, &mut v);
    assert!(
        v.without.is_empty(),
        "trainable without a gradient: {:?}",
        v.without
    );
    let mut expected: Vec<String> = names
        .params
        .iter()
        .filter(|(id, _)| !backbone.contains(id) || lora.contains(id))
        .map(|(_, p)| p.name.clone())
        .collect();
    expected.sort();
    v.with.sort();
    assert_eq!(
        v.with, expected,
        "exactly the adapters (24) and the head (2) train"
    );
    assert_eq!(v.with.len(), 26);
    assert!(v.frozen > 90, "{} frozen tensors", v.frozen);
}

/// BitFit (issue 17): only biases and the head move; a full model folder is written (peft has
/// no format for a bias-only delta).
#[test]
fn bitfit_moves_only_biases_issue_17() {
    let _turn = rng();
    let tmp = tempfile::tempdir().unwrap();
    let csv = sentiment_csv(tmp.path(), 12);
    let out = tmp.path().join("bitfit");
    let o = Options {
        epochs: 1,
        batch_size: 8,
        lr: 1e-3,
        peft: Some("bitfit".into()),
        ..Options::default()
    };
    finetune(&minilm(), &csv, &out, &o, &Silent).unwrap();
    let trained = tensors(&out.join("model.safetensors"));
    let base = tensors(&minilm().join("model.safetensors"));
    let (mut biases, mut same) = (0, 0);
    for (name, v) in &base {
        let Some(t) = trained.get(name) else { continue };
        if name.ends_with(".bias") && !name.starts_with("pooler.") {
            if t != v {
                biases += 1;
            }
        } else {
            assert_eq!(t, v, "{name} is not a bias and changed");
            same += 1;
        }
    }
    assert!(biases > 40, "{biases} biases moved");
    assert!(same > 40);
}

fn write_adapter(dir: &Path, config: &serde_json::Value) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).unwrap();
}

/// A malformed adapter_config.json is an error that names the file and what is wrong
/// (issue 17): rank 0, no base, an unknown method, a target that matches no layer.
#[test]
fn a_malformed_adapter_config_is_a_clear_error_issue_17() {
    let tmp = tempfile::tempdir().unwrap();
    let good = serde_json::json!({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
        "target_modules": ["query"], "base_model_name_or_path": minilm().display().to_string(),
    });
    let cases: &[(&str, &str, serde_json::Value, &str)] = &[
        (
            "rank0",
            "r",
            serde_json::json!(0),
            "rank r must be at least 1",
        ),
        (
            "nobase",
            "base_model_name_or_path",
            serde_json::Value::Null,
            "base_model_name_or_path: missing",
        ),
        (
            "ia3",
            "peft_type",
            serde_json::json!("IA3"),
            "peft_type `IA3` is not implemented",
        ),
        (
            "regex",
            "target_modules",
            serde_json::json!(".*query"),
            "regular expression",
        ),
        ("alpha", "lora_alpha", serde_json::json!(-1), "lora_alpha"),
    ];
    for (dir, key, value, expected) in cases {
        let d = tmp.path().join(dir);
        let mut c = good.clone();
        c[*key] = value.clone();
        write_adapter(&d, &c);
        let e = peft::Adapter::read(&d).unwrap_err().to_string();
        assert!(
            e.contains(expected) && e.contains("adapter_config.json"),
            "{dir}: {e}"
        );
    }
    // An unknown target: found when the adapter meets its base.
    let d = tmp.path().join("target");
    let mut c = good;
    c["target_modules"] = serde_json::json!(["nosuch"]);
    write_adapter(&d, &c);
    let head = zoo_engine::export::NamedTensor {
        name: "base_model.model.classifier.weight".into(),
        shape: vec![2, 384],
        dtype: zoo_formats::Dtype::F32,
        data: vec![0; 2 * 384 * 4],
    };
    zoo_checkpoint::write_safetensors(&d.join("adapter_model.safetensors"), &[head.view()], None)
        .unwrap();
    let source = Source::open_adapter(&d, &minilm());
    let e = match source {
        Ok(s) => s
            .build(None, None, 0, &zoo_engine::cpu())
            .map(|_| ())
            .unwrap_err()
            .to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains("nosuch") && e.contains("matches no linear layer"),
        "{e}"
    );
    // A folder that is an adapter is not opened as a model on its own.
    let e = Source::open(&d, None).unwrap_err().to_string();
    assert!(e.contains("peft adapter"), "{e}");
}

/// Resume (issue 17): a LoRA run stopped after epoch 1 and resumed publishes the same adapter,
/// byte for byte, as one that ran straight through.
#[test]
fn a_resumed_lora_run_publishes_the_same_adapter_issue_17() {
    let _turn = rng();
    let tmp = tempfile::tempdir().unwrap();
    let csv = sentiment_csv(tmp.path(), 16);
    let o = Options {
        epochs: 2,
        ..lora_options()
    };
    finetune(&minilm(), &csv, &tmp.path().join("straight"), &o, &Silent).unwrap();
    let stopped = finetune(
        &minilm(),
        &csv,
        &tmp.path().join("resumed"),
        &Options {
            stop_after: Some(1),
            ..o.clone()
        },
        &Silent,
    );
    assert!(stopped.is_err(), "the first process stops after epoch 1");
    finetune(
        &minilm(),
        &csv,
        &tmp.path().join("resumed"),
        &Options { resume: true, ..o },
        &Silent,
    )
    .unwrap();
    let a = tensors(&tmp.path().join("straight/adapter_model.safetensors"));
    let b = tensors(&tmp.path().join("resumed/adapter_model.safetensors"));
    assert_eq!(a.len(), 26);
    let differing: Vec<(&String, f32)> = a
        .keys()
        .filter(|n| a[*n] != b[*n])
        .map(|n| {
            let d = f32s(&a[n])
                .iter()
                .zip(f32s(&b[n]))
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            (n, d)
        })
        .collect();
    assert!(
        differing.is_empty(),
        "the resumed adapter differs: {differing:?}"
    );
}

/// An adapter with an MLP head (two `modules_to_save` layers) reopens with its classes read
/// from the head's output layer (not the hidden layer's width) and predicts (issue 17).
#[test]
fn an_adapter_with_an_mlp_head_reopens_issue_17() {
    let _turn = rng();
    let tmp = tempfile::tempdir().unwrap();
    let csv = sentiment_csv(tmp.path(), 8);
    let out = tmp.path().join("mlp");
    let o = Options {
        epochs: 1,
        batch_size: 8,
        head: "mlp:16".into(),
        peft: Some("lora:r=2,alpha=4,dropout=0".into()),
        ..Options::default()
    };
    let s = finetune(&minilm(), &csv, &out, &o, &Silent).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["modules_to_save"].as_array().unwrap().len(),
        2,
        "{config}"
    );
    let source = Source::open_adapter(&out, &minilm()).unwrap();
    let (net, _) = source.build(None, None, 0, &zoo_engine::cpu()).unwrap();
    assert_eq!(net.head().classes(), 2);
    assert_eq!(source.labels, vec!["negative", "positive"]);
    let data = zoo_train::data::load(&csv).unwrap();
    let logits = predict_logits(&net, &source, &data, 8, &Silent).unwrap();
    assert_eq!(logits.len(), 2 * data.examples.len());
    assert!(s.eval.examples > 0);
}
