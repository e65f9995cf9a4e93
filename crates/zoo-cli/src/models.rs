//! `zoo import` and `zoo predict`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use zoo_card::{Config, ModelCard};
use zoo_engine::{Model, Weights};

use crate::client::{HubArgs, resolve_model};

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
pub struct EmbedArgs {
    /// A model folder — a zoo/timm image model, or a text encoder (config.json with
    /// `model_type` bert/roberta/distilbert, model.safetensors, tokenizer.json) — or
    /// `org/name[@revision]` on the hub.
    model: String,
    /// A folder of images (searched recursively), a text file (one input per line) or a CSV
    /// with a `text` column.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the embeddings (`embeddings`: [N, D] f32, inputs in the metadata).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// A text longer than the model's limit is an error instead of being cut.
    #[arg(long)]
    no_truncate: bool,
    /// Text pooling: mean | cls | max | pooler [default: what the folder declares, else mean].
    #[arg(long)]
    pooling: Option<String>,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn import(a: &ImportArgs) -> Result<ExitCode> {
    let mapped = zoo_checkpoint::Mapped::open(&a.checkpoint)?;
    let loaded = zoo_checkpoint::load(&mapped)
        .with_context(|| format!("reading {}", a.checkpoint.display()))?;
    let device = zoo_engine::cpu();
    let weights = Weights::from_loaded(&loaded, &device).in_torchvision_layout(&a.arch);
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
    // timm's architecture and tensor names (the same tensors), so timm loads the folder as
    // published; a timm-named checkpoint is written as it is.
    let tv_arch = zoo_engine::timm::torchvision_arch(&a.arch);
    let names: Vec<&str> = loaded.tensors.iter().map(|t| t.name.as_str()).collect();
    let mut tensors = loaded.tensors.clone();
    if !zoo_engine::timm::is_timm_layout(tv_arch, &names) {
        for t in &mut tensors {
            if let Some(n) = zoo_engine::timm::to_timm(tv_arch, &t.name) {
                t.shape = zoo_engine::timm::timm_shape(&n, &t.shape);
                t.name = n;
            }
        }
        tensors.sort_by(|x, y| x.name.cmp(&y.name));
    }
    zoo_checkpoint::write_safetensors(&out_weights, &tensors, Some(&meta))?;
    let cfg = zoo_engine::timm::pretrained_cfg(tv_arch);
    let config = Config::timm(zoo_engine::timm::timm_arch(tv_arch), &labels, &cfg);
    zoo_checkpoint::write_bytes_atomic(
        &a.out.join("config.json"),
        config.to_json_string().as_bytes(),
    )?;
    let mut card = match &a.card_from {
        Some(p) => ModelCard::parse(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{}: card", p.display()))?,
        None => ModelCard::default(),
    };
    if card.library_name().is_none() {
        card.set("library_name", "timm");
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
    zoo_checkpoint::write_bytes_atomic(&a.out.join("README.md"), card.render().as_bytes())?;
    outln!(
        "wrote {} ({} parameters, {} classes)",
        a.out.display(),
        loaded.parameters(),
        classes
    );
    Ok(ExitCode::SUCCESS)
}

pub fn embed(a: &EmbedArgs) -> Result<ExitCode> {
    let pooling =
        match a.pooling.as_deref() {
            None => None,
            Some(p) => Some(zoo_engine::classifier::Pooling::parse(p).with_context(|| {
                format!("--pooling {p}: not a pooling (mean, cls, max, pooler)")
            })?),
        };
    let inputs = zoo_train::embed::read_inputs(&a.data)?;
    let dir = resolve_model(&a.model, &a.hub)?;
    let opts = zoo_train::embed::EmbedOptions {
        batch_size: a.batch_size,
        no_truncate: a.no_truncate,
        pooling,
    };
    let progress = crate::train::Bars::new(a.hub.quiet);
    let e = zoo_train::embed::embed(&dir, &a.data, inputs, &opts, &progress)
        .with_context(|| format!("embedding {} with {}", a.data.display(), a.model))?;
    if e.truncated > 0 {
        eprintln!(
            "warning: {} inputs were longer than {} tokens and were cut (--no-truncate makes this an error)",
            e.truncated, e.max_length
        );
    }
    zoo_train::embed::write(&e, &a.model, &a.out)?;
    outln!("wrote {}: {} × {} embeddings", a.out.display(), e.n, e.dim);
    Ok(ExitCode::SUCCESS)
}

/// `zoo rank`: which checkpoint to start from, scored on the user's own labelled data.
#[derive(clap::Args, Debug)]
pub struct RankArgs {
    /// Labelled data: an image folder (`CLASS/IMAGE`, or `train/CLASS/IMAGE`) or a CSV /
    /// JSONL file with `text` and `label`.
    #[arg(long)]
    data: PathBuf,
    /// The candidates: model folders or `org/name[@revision]` on the hub.
    #[arg(required = true)]
    models: Vec<String>,
    /// The score that orders the candidates: knn | logme | linear-probe | h-score (the
    /// default: the best predictor of fine-tuned accuracy in benches/rank).
    #[arg(long, default_value = "linear-probe")]
    by: String,
    /// Neighbours of the k-NN score.
    #[arg(long, default_value_t = 5)]
    k: usize,
    /// Folds of the linear probe.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute features again instead of reading the feature cache.
    #[arg(long)]
    no_cache: bool,
    /// Image models see the images at this size (as `zoo finetune --image-size` would).
    #[arg(long, value_name = "PIXELS")]
    image_size: Option<u32>,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn rank(a: &RankArgs) -> Result<ExitCode> {
    let by = zoo_train::rank::Score::parse(&a.by)?;
    let dataset =
        zoo_train::data::load(&a.data).with_context(|| format!("reading {}", a.data.display()))?;
    let models = a
        .models
        .iter()
        .map(|m| Ok((m.clone(), resolve_model(m, &a.hub)?)))
        .collect::<Result<Vec<_>>>()?;
    let opts = zoo_train::rank::RankOptions {
        k: a.k,
        folds: a.folds,
        seed: a.seed,
        cache: (!a.no_cache).then(zoo_train::cache::FeatureCache::default_dir),
        by,
        image_size: a.image_size,
    };
    let progress = crate::train::Bars::new(a.hub.quiet || a.json);
    let ranked = zoo_train::rank::rank(&models, &a.data, &dataset, &opts, &progress)
        .with_context(|| format!("ranking on {}", a.data.display()))?;
    if a.json {
        let rows: Vec<serde_json::Value> = ranked
            .iter()
            .enumerate()
            .map(|(i, c)| {
                serde_json::json!({
                    "rank": i + 1, "model": c.model, "dim": c.dim,
                    "knn": c.knn, "logme": c.logme, "linear_probe": c.linear_probe, "h_score": c.h_score,
                    "feature_seconds": c.feature_seconds, "score_seconds": c.score_seconds, "cached": c.cached,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "data": a.data.display().to_string(), "examples": dataset.examples.len(),
                "classes": dataset.classes.len(), "by": by.name(),
                "recommended": ranked[0].model, "candidates": rows,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} examples, {} classes; ordered by {}",
        dataset.examples.len(),
        dataset.classes.len(),
        by.name()
    );
    outln!(
        "{:<4} {:<40} {:>6} {:>7} {:>8} {:>7} {:>8} {:>9}",
        "rank",
        "model",
        "knn",
        "logme",
        "probe",
        "h-score",
        "dim",
        "seconds"
    );
    for (i, c) in ranked.iter().enumerate() {
        outln!(
            "{:<4} {:<40} {:>6.3} {:>7.3} {:>8.3} {:>7.3} {:>8} {:>9.1}{}",
            i + 1,
            c.model,
            c.knn,
            c.logme,
            c.linear_probe,
            c.h_score,
            c.dim,
            c.feature_seconds + c.score_seconds,
            if c.cached { " (cached)" } else { "" }
        );
    }
    let best = &ranked[0];
    let why = match ranked.get(1) {
        Some(next) => format!(
            "its {} is {:.3} against {:.3} for {}",
            by.name(),
            best.score(by),
            next.score(by),
            next.model
        ),
        None => "the only candidate".to_string(),
    };
    outln!("recommended: {} — {why}", best.model);
    Ok(ExitCode::SUCCESS)
}
