//! `zoo import` and `zoo predict`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use zoo_card::{Config, ModelCard, PretrainedCfg};
use zoo_engine::{Model, Tensor, Weights};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A checkpoint: .pth, .bin, .pt, .safetensors.
    checkpoint: PathBuf,
    /// Architecture, spelled as torchvision/timm do (mobilenet_v2, ...).
    #[arg(long)]
    arch: String,
    /// Class names, one per line, in index order.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// A README.md whose front matter (licence, results, ...) becomes the card.
    #[arg(long)]
    card_from: Option<PathBuf>,
    /// The zoo model folder to write.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A zoo model folder (config.json + model.safetensors).
    model: PathBuf,
    /// Images (JPEG, PNG, WebP).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[arg(long, default_value_t = 5)]
    top: usize,
    #[arg(long)]
    json: bool,
}

pub fn import(a: &ImportArgs) -> Result<ExitCode> {
    let mapped = zoo_checkpoint::Mapped::open(&a.checkpoint)?;
    let loaded = zoo_checkpoint::load(&mapped)
        .with_context(|| format!("reading {}", a.checkpoint.display()))?;
    let device = zoo_engine::cpu();
    let weights = Weights::from_loaded(&loaded, &device);
    let (_, classes) = Model::build(&a.arch, &weights, true)
        .with_context(|| format!("{}: as {}", a.checkpoint.display(), a.arch))?;
    weights
        .finish()
        .with_context(|| format!("{}: as {}", a.checkpoint.display(), a.arch))?;
    let classes = classes.unwrap_or(0);
    let labels: Vec<String> = match &a.labels {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading {}", p.display()))?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => (0..classes).map(|i| format!("class_{i}")).collect(),
    };
    if labels.len() != classes {
        bail!(
            "{} has {} class names but the checkpoint's head has {classes} outputs",
            a.labels.as_ref().unwrap().display(),
            labels.len()
        );
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let out_weights = a.out.join("model.safetensors");
    zoo_checkpoint::write_atomic(&out_weights, |w| {
        zoo_formats::safetensors::write(&loaded.tensors, Some(&meta), w).map_err(|error| {
            zoo_checkpoint::Error::Write {
                path: out_weights.clone(),
                error,
            }
        })
    })?;
    let cfg = default_cfg(&a.arch);
    let config = Config::timm(&a.arch, &labels, &cfg);
    std::fs::write(a.out.join("config.json"), config.to_json_string())?;
    let mut card = match &a.card_from {
        Some(p) => ModelCard::parse(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{}: card", p.display()))?,
        None => ModelCard::default(),
    };
    if card.library_name().is_none() {
        card.set("library_name", "zoo");
    }
    if card.pipeline_tag().is_none() {
        card.set("pipeline_tag", "image-classification");
    }
    if card.body.trim().is_empty() {
        card.body = format!(
            "\n# {}\n\nImported by `zoo import` from `{}`.\n",
            a.arch,
            a.checkpoint
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
    }
    std::fs::write(a.out.join("README.md"), card.render())?;
    outln!(
        "wrote {} ({} parameters, {} classes)",
        a.out.display(),
        loaded.parameters(),
        classes
    );
    Ok(ExitCode::SUCCESS)
}

/// Preprocessing and layer names each architecture's published weights expect.
fn default_cfg(arch: &str) -> PretrainedCfg {
    match arch {
        // Inputs in [-1, 1], as the packaged EfficientNet-Lite0 weights were trained.
        "efficientnet_lite0" => PretrainedCfg {
            mean: [0.498; 3],
            std: [0.502; 3],
            classifier: Some("_fc".into()),
            first_conv: Some("_conv_stem".into()),
            ..PretrainedCfg::default()
        },
        a if a.starts_with("resnet") => PretrainedCfg {
            classifier: Some("fc".into()),
            first_conv: Some("conv1".into()),
            ..PretrainedCfg::default()
        },
        _ => PretrainedCfg {
            classifier: Some("classifier.1".into()),
            first_conv: Some("features.0.0".into()),
            ..PretrainedCfg::default()
        },
    }
}

fn read_model(dir: &Path) -> Result<(Model, Vec<String>, zoo_preprocess::ImageTransform)> {
    let config_path = dir.join("config.json");
    let config = Config::parse(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?,
    )
    .with_context(|| config_path.display().to_string())?;
    let arch = config
        .architecture()
        .with_context(|| format!("{}: no architecture", config_path.display()))?
        .to_string();
    let labels = config.label_names()?;
    let cfg = config.pretrained_cfg()?.unwrap_or_default();
    let transform = zoo_preprocess::ImageTransform::from_cfg(&cfg)?;
    let weights_path = dir.join("model.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&weights_path)?;
    let loaded = zoo_checkpoint::load(&mapped)?;
    let weights = Weights::from_loaded(&loaded, &zoo_engine::cpu());
    let (model, _) =
        Model::build(&arch, &weights, true).with_context(|| weights_path.display().to_string())?;
    weights
        .finish()
        .with_context(|| weights_path.display().to_string())?;
    Ok((model, labels, transform))
}

pub fn predict(a: &PredictArgs) -> Result<ExitCode> {
    let (model, labels, t) = read_model(&a.model)?;
    let device = zoo_engine::cpu();
    let mut all = Vec::new();
    for input in &a.inputs {
        let x = t.load(input)?;
        let x: Tensor<4> = Tensor::from_data(
            burn_data(x, [1, 3, t.height as usize, t.width as usize]),
            &device,
        );
        let probs: Vec<f32> = burn::tensor::activation::softmax(model.forward(x), 1)
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        let top: Vec<serde_json::Value> = order
            .iter()
            .take(a.top)
            .map(|&i| json!({"index": i, "label": labels.get(i).cloned().unwrap_or_else(|| i.to_string()), "score": probs[i]}))
            .collect();
        all.push((input.clone(), top));
    }
    if a.json {
        let doc: Vec<serde_json::Value> = all.iter().map(|(_, top)| json!(top)).collect();
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (input, top) in &all {
            outln!("{}", input.display());
            for p in top {
                outln!(
                    "  {:>6.2}%  {}",
                    p["score"].as_f64().unwrap_or(0.0) * 100.0,
                    p["label"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn burn_data(v: Vec<f32>, shape: [usize; 4]) -> burn::tensor::TensorData {
    burn::tensor::TensorData::new(v, shape)
}
