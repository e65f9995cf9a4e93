//! `zoo finetune`, `zoo eval` and `zoo predict` (image and text classifiers), on zoo-train.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use zoo_train::Progress;
use zoo_train::data::{Dataset, Example, Input};
use zoo_train::finetune::Options;
use zoo_train::net::Source;

use crate::client::{HubArgs, push_dir, resolve_model};

/// Progress bars on stderr (none when quiet, not a terminal or HF_HUB_DISABLE_PROGRESS_BARS
/// is set; notes printed unless quiet).
pub struct Bars {
    bar: std::cell::RefCell<Option<ProgressBar>>,
    show: bool,
    quiet: bool,
}

impl Bars {
    pub fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        Bars {
            bar: std::cell::RefCell::new(None),
            show: !quiet
                && std::io::stderr().is_terminal()
                && !zoo_client::settings::progress_bars_disabled(),
            quiet,
        }
    }
}

impl Progress for Bars {
    fn start(&self, phase: &str, total: u64) {
        if self.show {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>16} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(phase.to_string());
            *self.bar.borrow_mut() = Some(b);
        }
    }
    fn step(&self, message: &str) {
        if let Some(b) = &*self.bar.borrow() {
            b.inc(1);
            if !message.is_empty() {
                b.set_message(message.to_string());
            }
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
    fn note(&self, line: &str) {
        if !self.quiet {
            match &*self.bar.borrow() {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// A model folder or a hub repository `org/name[@revision]`.
    model: String,
    /// Image folders (PATH/<class>/* or PATH/train|val|test/<class>/*), or a CSV/JSONL with
    /// `text` and `label`.
    #[arg(long)]
    data: PathBuf,
    /// The output folder (model, config, card, metrics, pictures, report; `.checkpoint/` while
    /// running). Also `--output-dir`.
    #[arg(long, visible_alias = "output-dir")]
    out: PathBuf,
    /// A TOML file with any of the options below (flags win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// At most this many epochs [default: 10]. Also `--num-train-epochs`.
    #[arg(long, visible_alias = "num-train-epochs")]
    epochs: Option<usize>,
    /// Training batch size [default: 32].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate of the backbone [default: 3e-4]. Also `--learning-rate`.
    #[arg(long, visible_alias = "learning-rate")]
    lr: Option<f64>,
    /// Peak learning rate of the head [default: 10 × lr].
    #[arg(long)]
    head_lr: Option<f64>,
    /// Decoupled weight decay, not on biases and norm weights [default: 0.01].
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Fraction of steps spent warming up from 0 [default: 0.1]. Also `--warmup-ratio`.
    #[arg(long, visible_alias = "warmup-ratio")]
    warmup: Option<f64>,
    /// After the warm-up: cosine | linear | constant [default: cosine].
    #[arg(long)]
    lr_scheduler: Option<String>,
    /// What picks the best epoch (restored at the end) and stops early: loss (lowest
    /// validation loss) | accuracy | f1 (macro-F1) [default: loss].
    #[arg(long)]
    metric_for_best_model: Option<String>,
    /// Layer-wise learning-rate decay per block below the head [default: 1.0 = off].
    #[arg(long)]
    layer_decay: Option<f64>,
    /// Label smoothing of the cross-entropy [default: 0.1]. Also `--label-smoothing-factor`.
    #[arg(long, visible_alias = "label-smoothing-factor")]
    label_smoothing: Option<f64>,
    /// Bound on the global gradient norm [default: 1.0]; 0 turns clipping off. Also
    /// `--max-grad-norm`.
    #[arg(long, visible_alias = "max-grad-norm")]
    clip_grad: Option<f64>,
    /// all | none | stages:N | comma-separated name globs [default: none].
    #[arg(long)]
    freeze: Option<String>,
    /// Epochs at which one more frozen block (from the top) starts training, e.g. 2,4.
    #[arg(long)]
    unfreeze_schedule: Option<String>,
    /// linear | mlp:HIDDEN [default: linear].
    #[arg(long)]
    head: Option<String>,
    /// Parameter-efficient: `lora[:r=8,alpha=16,dropout=0.05,targets=query|value]` trains
    /// low-rank adapters and the head and publishes a peft adapter (defaults: attention
    /// query/value for BERT-family and ViT, the block MLPs of ConvNeXt); `bitfit` trains the
    /// biases and the head.
    #[arg(long, value_name = "METHOD")]
    peft: Option<String>,
    /// No random resized crop / flip (lets a frozen backbone use the feature cache).
    #[arg(long)]
    no_augment: bool,
    /// Keep every BatchNorm's running statistics fixed (gamma and beta still train).
    #[arg(long)]
    freeze_bn_stats: bool,
    /// Epochs without a better best-model metric before stopping [default: 3].
    #[arg(long)]
    patience: Option<usize>,
    /// Seed of splits, shuffles, augmentation, head initialisation and dropout [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Validation share when the data has no val split (stratified) [default: 0.2].
    #[arg(long)]
    val_fraction: Option<f64>,
    /// Input resolution for images (e.g. 96).
    #[arg(long)]
    image_size: Option<u32>,
    /// Training examples per class (a seeded subset).
    #[arg(long)]
    per_class: Option<usize>,
    /// At most this many validation examples (a seeded subset).
    #[arg(long)]
    max_val: Option<usize>,
    /// Test examples: a cap on a test split, or the size of a stratified held-out split carved
    /// first when the data has none.
    #[arg(long)]
    max_test: Option<usize>,
    /// Re-initialise all weights: the same architecture trained from scratch.
    #[arg(long)]
    from_scratch: bool,
    /// Text pooling: mean | max | cls | pooler [default: the model's].
    #[arg(long)]
    pooling: Option<String>,
    /// Feature cache folder [default: $ZOO_FEATURE_CACHE or ~/.cache/checkpoint-zoo/features].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compute frozen features without reading or writing the cache.
    #[arg(long)]
    no_cache: bool,
    /// Run the frozen first blocks every step instead of once (`--freeze stages:N` without
    /// augmentation computes their output once by default; the result is the same).
    #[arg(long)]
    no_prefix_cache: bool,
    /// The data set's id on a hub (`org/name`), for the card's `datasets:` (a local folder's
    /// name is not written there).
    #[arg(long)]
    dataset_id: Option<String>,
    /// Continue a killed run from its last checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// A checkpoint every N steps [default: every two minutes, and at every epoch's end].
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<usize>,
    /// Stop after this many epochs (to test --resume).
    #[arg(long, hide = true)]
    stop_after: Option<usize>,
    /// Stop after this many steps, mid-epoch (to test --resume).
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    /// Publish the result to this hub repository.
    #[arg(long)]
    push: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

fn options(a: &FinetuneArgs) -> Result<Options> {
    let mut o: Options = match &a.config {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("{}: run config", p.display()))?,
        None => Options::default(),
    };
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = a.$f.clone() { o.$f = v; } )* };
    }
    set!(
        epochs,
        batch_size,
        lr,
        weight_decay,
        warmup,
        layer_decay,
        label_smoothing,
        patience,
        seed,
        val_fraction
    );
    if a.head_lr.is_some() {
        o.head_lr = a.head_lr;
    }
    if let Some(c) = a.clip_grad {
        o.clip_grad = (c > 0.0).then_some(c);
    }
    if let Some(f) = &a.freeze {
        o.freeze = f.clone();
    }
    if a.unfreeze_schedule.is_some() {
        o.unfreeze_schedule = a.unfreeze_schedule.clone();
    }
    if let Some(h) = &a.head {
        o.head = h.clone();
    }
    if a.peft.is_some() {
        o.peft = a.peft.clone();
    }
    if let Some(v) = &a.lr_scheduler {
        o.lr_scheduler = v.clone();
    }
    if let Some(v) = &a.metric_for_best_model {
        o.metric_for_best_model = v.clone();
    }
    o.freeze_bn_stats |= a.freeze_bn_stats;
    if a.no_augment {
        o.augment = false;
    }
    for (dst, src) in [
        (&mut o.per_class, a.per_class),
        (&mut o.max_val, a.max_val),
        (&mut o.max_test, a.max_test),
    ] {
        if src.is_some() {
            *dst = src;
        }
    }
    if a.image_size.is_some() {
        o.image_size = a.image_size;
    }
    o.from_scratch |= a.from_scratch;
    if a.pooling.is_some() {
        o.pooling = a.pooling.clone();
    }
    if a.cache_dir.is_some() {
        o.cache_dir = a.cache_dir.clone();
    }
    if a.no_cache {
        o.use_cache = false;
    }
    if a.no_prefix_cache {
        o.prefix_cache = false;
    }
    o.resume |= a.resume;
    if a.checkpoint_every.is_some() {
        o.checkpoint_every = a.checkpoint_every;
    }
    o.stop_after = a.stop_after;
    o.stop_after_steps = a.stop_after_steps;
    o.dataset_id = a.dataset_id.clone();
    Ok(o)
}

pub fn finetune(a: &FinetuneArgs) -> Result<ExitCode> {
    let mut o = options(a)?;
    let model = resolve_model(&a.model, &a.hub)?;
    // Lineage: base_model names the hub repository when the model came from one.
    if !Path::new(&a.model).exists() {
        o.base_model = Some(a.model.split('@').next().unwrap_or(&a.model).to_string());
    }
    let bars = Bars::new(a.hub.quiet || a.json);
    let s = zoo_train::finetune::finetune(&model, &a.data, &a.out, &o, &bars)
        .with_context(|| format!("fine-tuning {} on {}", a.model, a.data.display()))?;
    let pushed = match &a.push {
        Some(repo) => Some(push_dir(&a.out, repo, &a.hub)?),
        None => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&s)?;
        v["pushed"] = json!(pushed);
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!(
            "{:<22} {:>9} {:>9} {:>7} {:>6} {:>8}",
            "split",
            "accuracy",
            "macro-F1",
            "epochs",
            "best",
            "seconds"
        );
        outln!(
            "{:<22} {:>9.4} {:>9.4} {:>7} {:>6} {:>8.1}",
            format!("{} ({})", s.eval_split, s.eval.examples),
            s.eval.accuracy,
            s.eval.macro_f1,
            s.epochs_run,
            s.best_epoch,
            s.seconds
        );
        outln!("report: {}", a.out.join("report.html").display());
        if let Some(c) = pushed {
            outln!("pushed to {} at {c}", a.push.as_deref().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A fine-tuned model folder or `org/name[@revision]`.
    model: String,
    /// Labelled data, as for `zoo finetune` (a folder with test/ uses it).
    #[arg(long)]
    data: PathBuf,
    /// Evaluate on at most this many examples (stratified).
    #[arg(long)]
    max: Option<usize>,
    /// Examples per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Also draw the confusion matrix here.
    #[arg(long)]
    confusion_png: Option<PathBuf>,
    /// Print the evaluation as JSON (`accuracy`, `top5`, `macro_f1`, `per_class`, `confusion`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

/// Opens a model folder or hub repository; a peft adapter is opened on its base model (a
/// folder, or a hub repository pulled into the cache).
pub fn open_model(spec: &str, hub: &HubArgs) -> Result<(PathBuf, Source)> {
    let dir = resolve_model(spec, hub)?;
    if !zoo_train::peft::is_adapter(&dir) {
        let source = Source::open(&dir, None)?;
        return Ok((dir, source));
    }
    let adapter = zoo_train::peft::Adapter::read(&dir)?;
    let base_spec = match &adapter.revision {
        Some(r) if !Path::new(&adapter.base).exists() => format!("{}@{r}", adapter.base),
        _ => adapter.base.clone(),
    };
    let base = resolve_model(&base_spec, hub)
        .with_context(|| format!("{spec}: fetching the adapter's base model {base_spec}"))?;
    let source = Source::open_adapter(&dir, &base)?;
    Ok((dir, source))
}

pub fn eval(a: &EvalArgs) -> Result<ExitCode> {
    let (dir, source) = open_model(&a.model, &a.hub)?;
    if source.labels.is_empty() {
        bail!(
            "{}: config.json names no classes (label_names / id2label)",
            dir.display()
        );
    }
    let data = if a.data.join("test").is_dir() {
        a.data.join("test")
    } else {
        a.data.clone()
    };
    let mut d = zoo_train::data::load(&data)?.relabel(&source.labels)?;
    if let Some(n) = a.max {
        d = d.at_most(n, 0);
    }
    let (net, _) = source.build(None, None, 0, &zoo_engine::cpu())?;
    let bars = Bars::new(a.hub.quiet || a.json);
    let logits = zoo_train::finetune::predict_logits(&net, &source, &d, a.batch_size, &bars)?;
    let labels: Vec<usize> = d.examples.iter().map(|e| e.label).collect();
    let e = zoo_train::metrics::evaluate(&logits, &labels, &source.labels);
    if let Some(p) = &a.confusion_png {
        zoo_train::report::confusion(p, &e, &format!("{} on {}", a.model, data.display()))?;
    }
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        outln!("examples  {}", e.examples);
        outln!("accuracy  {:.4}", e.accuracy);
        if let Some(t) = e.top5 {
            outln!("top-5     {t:.4}");
        }
        outln!("macro-F1  {:.4}", e.macro_f1);
        outln!("loss      {:.4}\n", e.loss);
        outln!("{}", e.table());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model folder (config.json + model.safetensors) or `org/name[@revision]`.
    model: String,
    /// Images (JPEG, PNG, WebP) for an image model; texts for a text model.
    #[arg(required = true)]
    inputs: Vec<String>,
    /// How many classes to show per input.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON: per input, the top classes with `index`, `label`, `score` and `logit`.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    hub: HubArgs,
}

pub fn predict(a: &PredictArgs) -> Result<ExitCode> {
    let (_, source) = open_model(&a.model, &a.hub)?;
    let (net, _) = source.build(None, None, 0, &zoo_engine::cpu())?;
    let examples: Vec<Example> = a
        .inputs
        .iter()
        .map(|i| Example {
            input: if source.is_text() {
                Input::Text(i.clone())
            } else {
                Input::Image(PathBuf::from(i))
            },
            label: 0,
            origin: i.clone(),
        })
        .collect();
    let classes = source.labels.clone();
    let k = net.head().classes();
    let d = Dataset {
        classes: (0..k).map(|i| i.to_string()).collect(),
        examples,
    };
    let logits = zoo_train::finetune::predict_logits(&net, &source, &d, 16, &zoo_train::Silent)?;
    let mut all = Vec::new();
    for (i, input) in a.inputs.iter().enumerate() {
        let row = &logits[i * k..(i + 1) * k];
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = row.iter().map(|x| (x - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let probs: Vec<f32> = exp.iter().map(|e| e / sum).collect();
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&x, &y| probs[y].total_cmp(&probs[x]));
        let top: Vec<serde_json::Value> = order
            .iter()
            .take(a.top)
            .map(|&j| json!({"index": j, "label": classes.get(j).cloned().unwrap_or_else(|| j.to_string()), "score": probs[j], "logit": row[j]}))
            .collect();
        all.push((input.clone(), top));
    }
    if a.json {
        let doc: Vec<serde_json::Value> = all.iter().map(|(_, top)| json!(top)).collect();
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (input, top) in &all {
            outln!("{input}");
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

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// A peft LoRA adapter: a folder or `org/name[@revision]` (its base is fetched too).
    adapter: String,
    /// Where to write the merged model folder.
    #[arg(long)]
    out: PathBuf,
    /// Publish the merged model to this hub repository.
    #[arg(long)]
    push: Option<String>,
    #[command(flatten)]
    hub: HubArgs,
}

/// `zoo merge`: folds an adapter into its base (`W + alpha/r · B A`, peft's
/// `merge_and_unload`) and writes a full model folder.
pub fn merge(a: &MergeArgs) -> Result<ExitCode> {
    let (dir, source) = open_model(&a.adapter, &a.hub)?;
    let Some(adapter) = source.adapter.clone() else {
        bail!(
            "{}: not a peft adapter (no adapter_config.json)",
            dir.display()
        );
    };
    let (mut net, mut names) = source.build(None, None, 0, &zoo_engine::cpu())?;
    zoo_train::peft::merge(&mut net, &mut names);
    zoo_train::output::write_merged(&source, &net, &names, &a.adapter, &adapter, &a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    outln!(
        "merged {} (LoRA r={} on {}) into {}",
        a.adapter,
        adapter.shape.r,
        adapter.base,
        a.out.display()
    );
    if let Some(repo) = &a.push {
        let c = push_dir(&a.out, repo, &a.hub)?;
        outln!("pushed to {repo} at {c}");
    }
    Ok(ExitCode::SUCCESS)
}
