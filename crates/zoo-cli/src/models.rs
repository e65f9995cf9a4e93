//! `zoo import` and `zoo predict`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
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
pub struct EmbedArgs {
    /// A zoo image model folder, or a Hugging Face text encoder folder (config.json with
    /// `model_type: bert`, model.safetensors, tokenizer.json).
    model: PathBuf,
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
    #[arg(long, short)]
    quiet: bool,
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
    let cfg = default_cfg(tv_arch);
    let config = Config::timm(zoo_engine::timm::timm_arch(tv_arch), &labels, &cfg);
    std::fs::write(a.out.join("config.json"), config.to_json_string())?;
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
        // timm's ViT weights: inputs in [-1, 1], bicubic, crop 0.9.
        a if a.starts_with("vit_") => PretrainedCfg {
            mean: [0.5; 3],
            std: [0.5; 3],
            crop_pct: 0.9,
            interpolation: "bicubic".into(),
            classifier: Some("head".into()),
            first_conv: Some("patch_embed.proj".into()),
            ..PretrainedCfg::default()
        },
        // torchvision's ConvNeXt weights: resize 236, crop 224.
        a if a.starts_with("convnext") => PretrainedCfg {
            crop_pct: 224.0 / 236.0,
            classifier: Some("classifier.2".into()),
            first_conv: Some("features.0.0".into()),
            ..PretrainedCfg::default()
        },
        // torchvision's EfficientNet-B0 weights: bicubic resize 256, crop 224.
        "efficientnet_b0" => PretrainedCfg {
            interpolation: "bicubic".into(),
            classifier: Some("classifier.1".into()),
            first_conv: Some("features.0.0".into()),
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
    let weights = Weights::from_loaded(&loaded, &zoo_engine::cpu()).in_torchvision_layout(&arch);
    let (model, _) =
        Model::build(&arch, &weights, true).with_context(|| weights_path.display().to_string())?;
    weights
        .finish()
        .with_context(|| weights_path.display().to_string())?;
    Ok((model, labels, transform))
}

/// What to embed: image paths or texts, with a name for each.
enum Inputs {
    Images(Vec<PathBuf>),
    Texts(Vec<String>),
}

fn read_inputs(data: &Path) -> Result<Inputs> {
    if data.is_dir() {
        let mut images = Vec::new();
        let mut stack = vec![data.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d)
                .with_context(|| format!("reading {}", d.display()))?
                .flatten()
            {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                    matches!(
                        x.to_ascii_lowercase().as_str(),
                        "jpg" | "jpeg" | "png" | "webp"
                    )
                }) {
                    images.push(p);
                }
            }
        }
        images.sort();
        anyhow::ensure!(
            !images.is_empty(),
            "{}: no images (jpg, png, webp)",
            data.display()
        );
        return Ok(Inputs::Images(images));
    }
    let ext = data
        .extension()
        .and_then(|x| x.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "csv" {
        let mut rd =
            csv::Reader::from_path(data).with_context(|| format!("reading {}", data.display()))?;
        let headers = rd
            .headers()
            .with_context(|| format!("{}: header", data.display()))?
            .clone();
        let col = headers
            .iter()
            .position(|h| h == "text")
            .with_context(|| format!("{}: no `text` column", data.display()))?;
        let mut texts = Vec::new();
        for (i, r) in rd.records().enumerate() {
            let r = r.with_context(|| format!("{}: line {}", data.display(), i + 2))?;
            texts.push(r.get(col).unwrap_or("").to_string());
        }
        return Ok(Inputs::Texts(texts));
    }
    let text =
        std::fs::read_to_string(data).with_context(|| format!("reading {}", data.display()))?;
    Ok(Inputs::Texts(
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

pub fn embed(a: &EmbedArgs) -> Result<ExitCode> {
    let inputs = read_inputs(&a.data)?;
    let device = zoo_engine::cpu();
    let n = match &inputs {
        Inputs::Images(v) => v.len(),
        Inputs::Texts(v) => v.len(),
    };
    let bar = if a.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(n as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("embedding [{bar:30}] {pos}/{len} {per_sec} {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    let batch = a.batch_size.max(1);
    let mut rows: Vec<f32> = Vec::new();
    let mut dim = 0;
    let names: Vec<String>;
    match &inputs {
        Inputs::Images(paths) => {
            let (model, _, t) = read_model(&a.model)?;
            for chunk in paths.chunks(batch) {
                let mut x = Vec::new();
                for p in chunk {
                    x.extend(t.load(p)?);
                }
                let x: Tensor<4> = Tensor::from_data(
                    burn::tensor::TensorData::new(
                        x,
                        [chunk.len(), 3, t.height as usize, t.width as usize],
                    ),
                    &device,
                );
                let f = model.features(x);
                dim = f.dims()[1];
                rows.extend(
                    f.into_data()
                        .try_to_vec::<f32>()
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                );
                bar.inc(chunk.len() as u64);
            }
            names = paths
                .iter()
                .map(|p| p.strip_prefix(&a.data).unwrap_or(p).display().to_string())
                .collect();
        }
        Inputs::Texts(texts) => {
            let (bert, tok) = read_text_model(&a.model)?;
            let pooling = pooling_mode(&a.model)?;
            let mut cut = 0;
            for chunk in texts.chunks(batch) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let b = tok
                    .encode(&refs, a.no_truncate)
                    .with_context(|| format!("{}", a.data.display()))?;
                cut += b.truncated.len();
                let ids = Tensor::<2, burn::prelude::Int>::from_data(
                    burn::tensor::TensorData::new(b.ids, [b.batch, b.tokens]),
                    &device,
                );
                let types = Tensor::<2, burn::prelude::Int>::from_data(
                    burn::tensor::TensorData::new(b.type_ids, [b.batch, b.tokens]),
                    &device,
                );
                let mask = Tensor::<2>::from_data(
                    burn::tensor::TensorData::new(b.mask, [b.batch, b.tokens]),
                    &device,
                );
                let hidden = bert.forward(ids, types, mask.clone());
                let f = match pooling {
                    Pooling::Cls => zoo_engine::bert::Bert::cls_pool(hidden),
                    Pooling::Max => zoo_engine::bert::Bert::max_pool(hidden, mask),
                    Pooling::Mean => zoo_engine::bert::Bert::mean_pool(hidden, mask),
                };
                dim = f.dims()[1];
                rows.extend(
                    f.into_data()
                        .try_to_vec::<f32>()
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?,
                );
                bar.inc(chunk.len() as u64);
            }
            if cut > 0 {
                eprintln!(
                    "warning: {cut} inputs were longer than {} tokens and were cut (--no-truncate makes this an error)",
                    tok.max_length
                );
            }
            names = (0..texts.len()).map(|i| i.to_string()).collect();
        }
    }
    bar.finish_and_clear();
    let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensor = zoo_formats::safetensors::TensorData {
        name: "embeddings".into(),
        dtype: zoo_formats::Dtype::F32,
        shape: vec![n, dim],
        data: std::borrow::Cow::Owned(bytes),
    };
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("model".to_string(), a.model.display().to_string());
    meta.insert("inputs".to_string(), serde_json::to_string(&names)?);
    zoo_checkpoint::write_atomic(&a.out, |w| {
        zoo_formats::safetensors::write(std::slice::from_ref(&tensor), Some(&meta), w).map_err(
            |error| zoo_checkpoint::Error::Write {
                path: a.out.clone(),
                error,
            },
        )
    })?;
    outln!("wrote {}: {n} × {dim} embeddings", a.out.display());
    Ok(ExitCode::SUCCESS)
}

/// How token states become one vector: sentence-transformers' `1_Pooling/config.json`,
/// mean pooling when the folder has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pooling {
    Mean,
    Cls,
    Max,
}

fn pooling_mode(dir: &Path) -> Result<Pooling> {
    let path = dir.join("1_Pooling/config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(Pooling::Mean);
    };
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    let on = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    if on("pooling_mode_mean_sqrt_len_tokens") {
        bail!(
            "{}: pooling_mode_mean_sqrt_len_tokens is not implemented yet",
            path.display()
        );
    }
    Ok(if on("pooling_mode_cls_token") {
        Pooling::Cls
    } else if on("pooling_mode_max_tokens") {
        Pooling::Max
    } else if on("pooling_mode_mean_tokens") {
        Pooling::Mean
    } else {
        bail!("{}: no pooling mode is on", path.display())
    })
}

fn read_text_model(
    dir: &Path,
) -> Result<(zoo_engine::bert::Bert, zoo_preprocess::text::TextTokenizer)> {
    let config_path = dir.join("config.json");
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?,
    )
    .with_context(|| config_path.display().to_string())?;
    let kind = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !matches!(kind, "bert" | "roberta" | "distilbert") {
        bail!(
            "{}: model_type `{kind}` is not implemented yet for text (available: bert, roberta, distilbert)",
            config_path.display()
        );
    }
    let c = zoo_engine::bert::BertConfig::from_json(&config)
        .with_context(|| config_path.display().to_string())?;
    let weights_path = dir.join("model.safetensors");
    let mapped = zoo_checkpoint::Mapped::open(&weights_path)?;
    let loaded = zoo_checkpoint::load(&mapped)?;
    let weights = Weights::from_loaded(&loaded, &zoo_engine::cpu());
    let bert = zoo_engine::bert::Bert::load(&weights, &c)
        .with_context(|| weights_path.display().to_string())?;
    weights
        .finish()
        .with_context(|| weights_path.display().to_string())?;
    let tok = zoo_preprocess::text::TextTokenizer::from_dir(dir, c.max_position_embeddings)?;
    Ok((bert, tok))
}
