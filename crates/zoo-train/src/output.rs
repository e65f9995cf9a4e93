//! The fine-tuned model folder: `model.safetensors` (standard names, loadable by PyTorch),
//! `config.json`, a `README.md` card with `base_model` and `model-index`, `metrics.jsonl`,
//! `curves.png`, `confusion.png` and `report.html`.

use std::path::Path;

use serde_json::{Value, json};
use zoo_card::{Config, EvalResult, ModelCard};
use zoo_engine::Names;
use zoo_engine::export::state_dict;

use crate::TrainError;
use crate::layout::{self, TextLayout};
use crate::net::{Kind, Net, Source};
use crate::options::{RunFacts, Summary};
use crate::report::EpochRecord;
use zoo_engine::classifier::HeadSpec;

/// Files a text model folder needs besides the weights and config.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "merges.txt",
    "vocab.json",
    "sentence_bert_config.json",
];

fn io(path: &Path) -> impl Fn(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::io(path, e)
}

/// A LoRA run's adapter, to publish in `peft`'s format instead of a full model.
#[derive(Debug, Clone)]
pub struct AdapterOut {
    pub published: crate::peft::Published,
    pub shape: zoo_engine::lora::LoraShape,
    /// `target_modules` as written (the names given, or the modules globs chose).
    pub targets: Vec<String>,
}

/// Writes the model folder (a `peft` adapter folder for a LoRA run).
#[allow(clippy::too_many_arguments)]
pub fn write(
    source: &Source,
    net: &Net,
    names: &Names,
    classes: &[String],
    o: &RunFacts,
    s: &Summary,
    history: &[EpochRecord],
    out: &Path,
    adapter: Option<&AdapterOut>,
) -> Result<(), TrainError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let base = o.base_model.clone().unwrap_or_else(|| {
        source
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let (library, task) = match adapter {
        Some(a) => {
            // The base as peft finds it: the hub repository, or the folder's full path.
            let base_ref = o.base_model.clone().unwrap_or_else(|| {
                std::fs::canonicalize(&source.dir)
                    .unwrap_or_else(|_| source.dir.clone())
                    .display()
                    .to_string()
            });
            let (task, task_type) = if source.is_text() {
                ("text-classification", Some("SEQ_CLS"))
            } else {
                ("image-classification", None)
            };
            let (pooling, image_size) = match &source.kind {
                Kind::Text { pooling, .. } => (Some(pooling.name()), None),
                Kind::Image { transform, .. } => (None, Some(transform.height)),
            };
            let zoo = json!({
                "labels": classes,
                "head": o.head,
                "pooling": pooling,
                "image_size": image_size,
                "base_model": base,
            });
            crate::peft::write(
                net,
                names,
                &a.published,
                a.shape,
                &a.targets,
                &base_ref,
                task_type,
                &zoo,
                out,
            )?;
            ("peft", task)
        }
        None => write_model(source, net, names, classes, o, out)?,
    };
    write_run(source, classes, o, s, history, out, &base, library, task)
}

/// Writes the weights and configs of a full model folder; returns the card's
/// `library_name` and task.
pub fn write_model(
    source: &Source,
    net: &Net,
    names: &Names,
    classes: &[String],
    o: &RunFacts,
    out: &Path,
) -> Result<(&'static str, &'static str), TrainError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut tensors = state_dict(net, names);
    let mut text_layout = None;
    let (config_text, task) = match &source.kind {
        Kind::Image { arch, cfg, .. } => {
            // timm's architecture and tensor names, so `timm.create_model("hf-hub:…",
            // pretrained=True)` loads the model (zoo reads both layouts back).
            let tv = zoo_engine::timm::torchvision_arch(arch);
            for t in &mut tensors {
                if let Some(n) = zoo_engine::timm::to_timm(tv, &t.name) {
                    t.shape = zoo_engine::timm::timm_shape(&n, &t.shape);
                    t.name = n;
                }
            }
            tensors.sort_by(|a, b| a.name.cmp(&b.name));
            let cfg = zoo_engine::timm::with_timm_names(tv, cfg.clone());
            let mut c = Config::timm(zoo_engine::timm::timm_arch(tv), classes, &cfg);
            c.raw.insert("zoo".into(), json!({"head": o.head}));
            (c.to_json_string(), "image-classification")
        }
        Kind::Text {
            config,
            pooling,
            family,
            tokenizer,
            ..
        } => {
            let hidden = zoo_engine::bert::BertConfig::from_json(config)
                .map(|c| c.hidden_size)
                .map_err(|e| TrainError::Options(format!("config.json: {e}")))?;
            let has_pooler = tensors
                .iter()
                .any(|t| t.name.ends_with("pooler.dense.weight"));
            let spec = HeadSpec::parse(&o.head).unwrap_or(HeadSpec::Linear);
            let layout = TextLayout::choose(family, *pooling, spec, has_pooler, hidden);
            let export =
                layout::export_text(family, layout, *pooling, std::mem::take(&mut tensors))?;
            tensors = export.root;
            let mut c = config.clone();
            let arch = match layout {
                TextLayout::Transformers(class) => class.to_string(),
                TextLayout::SentenceTransformers => match family.as_str() {
                    "roberta" => "RobertaModel".to_string(),
                    "distilbert" => "DistilBertModel".to_string(),
                    _ => "BertModel".to_string(),
                },
            };
            c["architectures"] = json!([arch]);
            c["id2label"] = Value::Object(
                classes
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i.to_string(), json!(l)))
                    .collect(),
            );
            c["label2id"] = Value::Object(
                classes
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), json!(i)))
                    .collect(),
            );
            c["problem_type"] = json!("single_label_classification");
            c["zoo"] = json!({"head": o.head, "pooling": pooling.name(), "layout": layout.name()});
            layout::remove_st_modules(out)?;
            if layout == TextLayout::SentenceTransformers {
                layout::write_st_modules(out, *pooling, hidden, &export.dense)?;
                if !source.dir.join("sentence_bert_config.json").exists() {
                    let p = out.join("sentence_bert_config.json");
                    let v =
                        json!({"max_seq_length": tokenizer.max_length(), "do_lower_case": false});
                    zoo_checkpoint::write_bytes_atomic(
                        &p,
                        serde_json::to_string_pretty(&v)
                            .unwrap_or_default()
                            .as_bytes(),
                    )?;
                }
            }
            text_layout = Some(layout);
            for f in TOKENIZER_FILES {
                let from = source.dir.join(f);
                if from.exists() {
                    let bytes = std::fs::read(&from).map_err(io(&from))?;
                    zoo_checkpoint::write_bytes_atomic(&out.join(f), &bytes)?;
                }
            }
            (
                serde_json::to_string_pretty(&c).unwrap_or_default() + "\n",
                "text-classification",
            )
        }
    };
    let weights = out.join("model.safetensors");
    let views: Vec<_> = tensors.iter().map(|t| t.view()).collect();
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    zoo_checkpoint::write_safetensors(&weights, &views, Some(&meta))?;
    let cp = out.join("config.json");
    zoo_checkpoint::write_bytes_atomic(&cp, config_text.as_bytes())?;
    Ok((library_name(&source.kind, text_layout, o), task))
}

/// The run's own files: metrics, trainer state, pictures, the report and the card.
#[allow(clippy::too_many_arguments)]
fn write_run(
    source: &Source,
    classes: &[String],
    o: &RunFacts,
    s: &Summary,
    history: &[EpochRecord],
    out: &Path,
    base: &str,
    library: &'static str,
    task: &'static str,
) -> Result<(), TrainError> {
    // metrics.jsonl
    let mp = out.join("metrics.jsonl");
    let mut lines = String::new();
    for r in history {
        lines.push_str(&serde_json::to_string(r).unwrap_or_default());
        lines.push('\n');
    }
    zoo_checkpoint::write_bytes_atomic(&mp, lines.as_bytes())?;
    let tp = out.join("trainer_state.json");
    let state = trainer_state(o, s, history);
    zoo_checkpoint::write_bytes_atomic(
        &tp,
        serde_json::to_string_pretty(&state)
            .unwrap_or_default()
            .as_bytes(),
    )?;

    // Pictures and the report.
    let data_name = Path::new(&s.data)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| s.data.clone());
    // What kind of run made the folder, in titles and the card.
    let (kind, how) = match o.peft.as_deref() {
        Some(p) if library == "peft" => (
            "LoRA adapter for",
            format!(
                " with `--peft {p}`: low-rank adapters and the head trained ({} values), every weight of `{base}` unchanged",
                s.trainable_parameters
            ),
        ),
        Some(p) => (
            "fine-tuned (BitFit)",
            format!(
                " with `--peft {p}`: only the biases and the head trained ({} values)",
                s.trainable_parameters
            ),
        ),
        None => ("fine-tuned", String::new()),
    };
    let title = if library == "peft" {
        format!("{kind} {base}, trained on {data_name}")
    } else {
        format!("{base} {kind} on {data_name}")
    };
    crate::report::curves(&out.join("curves.png"), history, &title)?;
    crate::report::confusion(
        &out.join("confusion.png"),
        &s.eval,
        &format!("{title}: {} split", s.eval_split),
    )?;
    let mut summary = vec![
        ("base model".to_string(), source.dir.display().to_string()),
        ("data".to_string(), s.data.clone()),
        (
            "examples".to_string(),
            format!(
                "{} train, {} validation, {} {}",
                s.train_examples, s.val_examples, s.eval.examples, s.eval_split
            ),
        ),
        (
            format!("{} accuracy", s.eval_split),
            format!("{:.4}", s.eval.accuracy),
        ),
        (
            format!("{} macro-F1", s.eval_split),
            format!("{:.4}", s.eval.macro_f1),
        ),
        (
            "epochs".to_string(),
            format!(
                "{} run, best {}{}",
                s.epochs_run,
                s.best_epoch,
                if s.stopped_early {
                    " (stopped early)"
                } else {
                    ""
                }
            ),
        ),
        ("freeze".to_string(), o.freeze.clone()),
        ("head".to_string(), o.head.clone()),
        (
            "parameter-efficient".to_string(),
            o.peft.clone().unwrap_or_else(|| "no".into()),
        ),
        ("seconds".to_string(), format!("{:.1}", s.seconds)),
    ];
    if let Some(t5) = s.eval.top5 {
        summary.insert(5, (format!("{} top-5", s.eval_split), format!("{t5:.4}")));
    }
    crate::report::html(&out.join("report.html"), &title, &summary, history, &s.eval)?;

    // The card.
    let mut card = ModelCard::default();
    // The library that loads the model as published: timm for an image model with a linear
    // head, transformers for a text classifier; zoo alone for what neither loads.
    card.set("library_name", library);
    card.set("pipeline_tag", task);
    card.set_list("base_model", &[base.to_string()]);
    if let Some(id) = &o.dataset_id {
        card.set_list("datasets", std::slice::from_ref(id));
    }
    let dataset_type = o.dataset_id.clone().unwrap_or_else(|| data_name.clone());
    let result = |metric: &str, value: f64| EvalResult {
        task: task.to_string(),
        dataset: dataset_type.clone(),
        dataset_name: Some(data_name.clone()),
        split: Some(s.eval_split.clone()),
        metric: metric.to_string(),
        metric_name: None,
        value,
    };
    let mut results = vec![
        result("accuracy", s.eval.accuracy),
        result("f1", s.eval.macro_f1),
    ];
    if let Some(t5) = s.eval.top5 {
        results.push(EvalResult {
            metric_name: Some("top-5".into()),
            ..result("accuracy", t5)
        });
    }
    card.set_results(&format!("{base}-finetuned"), &results);
    let hp = o.hyperparameters.clone();
    let mut body = format!(
        "\n# {title}\n\nFine-tuned by `zoo finetune` from `{base}` on `{data_name}`{how} ({} training and {} validation examples, {} classes: {}).\n\n## Results\n\n| split | examples | accuracy | macro-F1 |\n|---|---|---|---|\n| {} | {} | {:.4} | {:.4} |\n\n## Hyper-parameters\n\n| name | value |\n|---|---|\n",
        s.train_examples,
        s.val_examples,
        classes.len(),
        classes.join(", "),
        s.eval_split,
        s.eval.examples,
        s.eval.accuracy,
        s.eval.macro_f1
    );
    if let Value::Object(m) = hp {
        for (k, v) in m {
            if !v.is_null() && k != "resume" && k != "cache_dir" {
                body.push_str(&format!("| {k} | {v} |\n"));
            }
        }
    }
    body.push_str(&usage(library, base, classes.len(), source.is_text()));
    body.push_str(
        "\nTraining curves, the confusion matrix and per-class figures: `report.html`.\n",
    );
    card.body = body;
    let rp = out.join("README.md");
    zoo_checkpoint::write_bytes_atomic(&rp, card.render().as_bytes())?;
    Ok(())
}

/// `trainer_state.json` as transformers' Trainer writes it: the run's shape and a
/// `log_history` with a training entry (`loss`, `learning_rate`) and an evaluation entry
/// (`eval_loss`, `eval_accuracy`, `eval_f1`) per epoch.
fn trainer_state(o: &RunFacts, s: &Summary, history: &[EpochRecord]) -> serde_json::Value {
    let mut log = Vec::new();
    for r in history {
        let lr = r.lr.values().copied().fold(0.0, f64::max);
        log.push(json!({"epoch": r.epoch as f64, "step": r.step, "loss": r.train_loss, "learning_rate": lr}));
        log.push(json!({
            "epoch": r.epoch as f64,
            "step": r.step,
            "eval_loss": r.val_loss,
            "eval_accuracy": r.val_accuracy,
            "eval_f1": r.val_macro_f1,
            "eval_runtime": r.seconds,
        }));
    }
    let best = history.iter().find(|r| r.epoch == s.best_epoch);
    let best_metric = best.map(
        |r| match o.metric_for_best_model.trim_start_matches("eval_") {
            "accuracy" => r.val_accuracy,
            "f1" | "macro_f1" => r.val_macro_f1,
            _ => r.val_loss,
        },
    );
    let metric = match o.metric_for_best_model.trim_start_matches("eval_") {
        "f1" | "macro_f1" => "eval_f1".to_string(),
        m => format!("eval_{m}"),
    };
    json!({
        "best_metric": best_metric,
        "best_model_checkpoint": null,
        "best_global_step": best.map(|r| r.step),
        "epoch": history.last().map_or(0.0, |r| r.epoch as f64),
        "global_step": history.last().map_or(0, |r| r.step),
        "is_hyper_param_search": false,
        "is_local_process_zero": true,
        "is_world_process_zero": true,
        "log_history": log,
        "logging_steps": history.first().map_or(0, |r| r.step),
        "max_steps": history.first().map_or(0, |r| r.step) * o.epochs as u64,
        "metric_for_best_model": metric,
        "num_train_epochs": o.epochs,
        "seed": o.seed,
        "train_batch_size": o.batch_size,
        "trial_name": null,
        "trial_params": null,
    })
}

/// The card's `library_name`: the tool the published model loads in with the same outputs —
/// timm for an image model with a linear head; for a text classifier, transformers or
/// sentence-transformers as [`TextLayout::choose`] says; zoo alone for an image model with an
/// MLP head (timm has no such head).
fn library_name(kind: &Kind, text: Option<TextLayout>, o: &RunFacts) -> &'static str {
    match (kind, text) {
        (_, Some(layout)) => layout.library(),
        (Kind::Image { .. }, _) if o.head == "linear" => "timm",
        _ => "zoo",
    }
}

/// The card's usage snippet, for the library the card names (`REPO` stands for the
/// repository the folder is pushed to).
fn usage(library: &str, base: &str, classes: usize, text: bool) -> String {
    let peft = if text {
        format!(
            "```python\nfrom peft import PeftModel\nfrom transformers import AutoModelForSequenceClassification\nbase = AutoModelForSequenceClassification.from_pretrained(\"{base}\", num_labels={classes})\nmodel = PeftModel.from_pretrained(base, \"REPO\").eval()\n```\n\n(a LoRA adapter on `{base}`; `zoo merge REPO --out DIR` folds it into a full model)\n"
        )
    } else {
        format!(
            "```python\nimport timm\nfrom peft import PeftModel\nbase = timm.create_model(\"hf-hub:{base}\", pretrained=True, num_classes={classes})\nmodel = PeftModel.from_pretrained(base, \"REPO\").eval()\n```\n\n(a LoRA adapter on `{base}`; `zoo merge REPO --out DIR` folds it into a full model)\n"
        )
    };
    let code = match library {
        "peft" => peft.as_str(),
        "timm" => {
            "```python\nimport timm, torch\nmodel = timm.create_model(\"hf-hub:REPO\", pretrained=True).eval()\ncfg = timm.data.resolve_data_config({}, model=model)\ntransform = timm.data.create_transform(**cfg)\nlogits = model(transform(image).unsqueeze(0))  # image: a PIL image\n```\n"
        }
        "transformers" => {
            "```python\nfrom transformers import pipeline\nclassify = pipeline(\"text-classification\", model=\"REPO\")\nclassify(\"A wonderful film.\")\n```\n"
        }
        "sentence-transformers" => {
            "```python\nfrom sentence_transformers import SentenceTransformer\nmodel = SentenceTransformer(\"REPO\")\nlogits = model.encode([\"A wonderful film.\"])  # one logit per class, in config.json's id2label order\n```\n"
        }
        _ => {
            "```sh\nzoo predict REPO INPUT...\n```\n\n(an MLP head on an image backbone: no timm architecture has it, so this model loads in zoo only)\n"
        }
    };
    format!("\n## Usage\n\n{code}\nOr with zoo: `zoo predict REPO INPUT...`.\n")
}

/// Writes a merged adapter (the network with its adapters folded in) as a full model folder
/// with a card naming the base and the adapter.
pub fn write_merged(
    source: &Source,
    net: &Net,
    names: &Names,
    adapter_name: &str,
    adapter: &crate::peft::Adapter,
    out: &Path,
) -> Result<(), TrainError> {
    let facts = RunFacts {
        head: adapter.head.clone(),
        peft: None,
        freeze: String::new(),
        base_model: Some(adapter.base.clone()),
        dataset_id: None,
        metric_for_best_model: "loss".into(),
        epochs: 0,
        seed: 0,
        batch_size: 0,
        hyperparameters: Value::Null,
    };
    let (library, task) = write_model(source, net, names, &adapter.labels, &facts, out)?;
    let mut card = ModelCard::default();
    card.set("library_name", library);
    card.set("pipeline_tag", task);
    card.set_list("base_model", std::slice::from_ref(&adapter.base));
    card.set("base_model_relation", "merge");
    card.body = format!(
        "\n# {adapter_name}, merged\n\nThe LoRA adapter `{adapter_name}` (r = {}, alpha = {}) folded into its base `{}` by `zoo merge`: every adapted weight is `W + alpha/r · B A`, so this full model gives the adapter's outputs without peft.\n{}",
        adapter.shape.r,
        adapter.shape.alpha,
        adapter.base,
        usage(
            library,
            &adapter.base,
            adapter.labels.len(),
            source.is_text()
        )
    );
    let rp = out.join("README.md");
    zoo_checkpoint::write_bytes_atomic(&rp, card.render().as_bytes())?;
    Ok(())
}
