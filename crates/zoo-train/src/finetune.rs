//! `zoo finetune`: a model folder and a labelled data set in, a fine-tuned model folder with
//! its reports out.
//!
//! With the backbone frozen and no augmentation, its features are computed once (or read
//! from the [feature cache](crate::cache)) and only the head trains, on the cached features.
//! Otherwise every step runs the network, in train mode, with the frozen parts' BatchNorm
//! statistics fixed. Every epoch ends with a validation pass, a line in `metrics.jsonl`, and a
//! checkpoint that `--resume` continues from, so a killed run ends with the same bytes as an
//! uninterrupted one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::{Device, Tensor};
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use zoo_engine::Names;
use zoo_engine::classifier::{HeadSpec, Pooling};
use zoo_engine::export::{block_of, blocks, parameters, set_trainable, state_dict, trainable};

use crate::cache::{FeatureCache, MappedRows};
use crate::data::{Dataset, Example, Splits};
use crate::metrics::evaluate;
use crate::net::{Kind, Net, Prep, Source, prepare};
use crate::optim::{AdamW, Schedule, lr_at};
pub use crate::options::{Options, Summary};
use crate::peft::Peft;
use crate::report::EpochRecord;
use crate::{Progress, TrainError};

fn opt_err(s: impl Into<String>) -> TrainError {
    TrainError::Options(s.into())
}

/// The parameters `spec` freezes.
fn frozen_ids(spec: &str, net: &Net, names: &Names) -> Result<HashSet<ParamId>, TrainError> {
    let backbone = net.backbone_ids(names);
    let params: Vec<(ParamId, String)> = parameters(net, names)
        .into_iter()
        .filter(|(id, _)| backbone.contains(id))
        .collect();
    Ok(match spec {
        "all" | "backbone" => backbone,
        "none" | "" => HashSet::new(),
        s if s.starts_with("stages:") => {
            let n: usize = s["stages:".len()..]
                .parse()
                .map_err(|_| opt_err(format!("--freeze {s}: expected stages:N")))?;
            let order = blocks(&params);
            let first: HashSet<&String> = order.iter().take(n).collect();
            params
                .iter()
                .filter(|(_, name)| first.contains(&block_of(name)))
                .map(|(id, _)| *id)
                .collect()
        }
        globs => {
            let mut b = globset::GlobSetBuilder::new();
            for g in globs.split(',') {
                b.add(
                    globset::Glob::new(g.trim())
                        .map_err(|e| opt_err(format!("--freeze {g}: {e}")))?,
                );
            }
            let set = b.build().map_err(|e| opt_err(e.to_string()))?;
            let ids: HashSet<ParamId> = params
                .iter()
                .filter(|(_, n)| set.is_match(n))
                .map(|(id, _)| *id)
                .collect();
            if ids.is_empty() {
                return Err(opt_err(format!(
                    "--freeze {globs}: matches no parameter name"
                )));
            }
            ids
        }
    })
}

/// Cross-entropy with label smoothing.
fn loss(logits: Tensor<2>, labels: &[usize], smoothing: f64, device: &Device) -> Tensor<1> {
    let [n, k] = logits.dims();
    let off = (smoothing / k as f64) as f32;
    let on = (1.0 - smoothing) as f32 + off;
    let mut t = vec![off; n * k];
    for (i, &y) in labels.iter().enumerate() {
        t[i * k + y] = on;
    }
    let target: Tensor<2> = Tensor::from_data(TensorData::new(t, [n, k]), device);
    let logp = burn::tensor::activation::log_softmax(logits, 1);
    (target * logp).sum_dim(1).mean().neg().reshape([1])
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Logits of `net` on `d` (evaluation transform, no gradients).
pub fn predict_logits(
    net: &Net,
    source: &Source,
    d: &Dataset,
    batch: usize,
    progress: &dyn Progress,
) -> Result<Vec<f32>, TrainError> {
    let device = zoo_engine::cpu();
    let net = net.valid();
    let pooling = source.pooling();
    let mut out = Vec::with_capacity(d.len() * d.classes.len());
    let refs: Vec<&Example> = d.examples.iter().collect();
    progress.start("eval", d.len() as u64);
    for chunk in refs.chunks(batch.max(1)) {
        let (b, _) = prepare(source, chunk, Prep::Eval, &device)?;
        out.extend(to_vec(net.logits(b, pooling)));
        for _ in chunk {
            progress.step("");
        }
    }
    progress.finish();
    Ok(out)
}

/// Pooled backbone features of `d` (cached when possible). Returns (features, dim, batches
/// computed, cache hit).
/// Batch size of the passes without gradients. Images: 16, where the CPU kernels run fastest
/// (MobileNetV2 at 96²: 293 img/s against 253 at 64 — smaller activations stay in cache);
/// texts: twice the training batch.
fn inference_batch(source: &Source, o: &Options) -> usize {
    if source.is_text() {
        o.batch_size.max(1) * 2
    } else {
        16
    }
}

pub(crate) fn features(
    net: &Net,
    source: &Source,
    d: &Dataset,
    o: &Options,
    cache: Option<&FeatureCache>,
    phase: &str,
    progress: &dyn Progress,
) -> Result<(Vec<f32>, usize, usize, bool), TrainError> {
    let key = match cache {
        Some(_) => Some(FeatureCache::key(source, &d.examples)?),
        None => None,
    };
    if let (Some(c), Some(k)) = (cache, &key)
        && let Some((f, dim)) = c.get(k)
        && f.len() == d.len() * dim
    {
        progress.note(&format!(
            "{phase}: {} features from the cache ({})",
            d.len(),
            c.dir.display()
        ));
        return Ok((f, dim, 0, true));
    }
    let device = zoo_engine::cpu();
    let net = net.valid();
    let pooling = source.pooling();
    let refs: Vec<&Example> = d.examples.iter().collect();
    let mut out = Vec::new();
    let mut dim = 0;
    let mut batches = 0;
    progress.start(&format!("{phase} features"), d.len() as u64);
    for chunk in refs.chunks(inference_batch(source, o)) {
        let (b, _) = prepare(source, chunk, Prep::Eval, &device)?;
        let f = net.features(b, pooling);
        dim = f.dims()[1];
        out.extend(to_vec(f));
        batches += 1;
        for _ in chunk {
            progress.step("");
        }
    }
    progress.finish();
    if let (Some(c), Some(k)) = (cache, &key) {
        c.put(k, &out, dim)?;
    }
    Ok((out, dim, batches, false))
}

/// How many leading units of the backbone are entirely frozen (their parameters all in
/// `frozen`); `None` when none are.
fn frozen_prefix(
    net: &Net,
    params: &[(ParamId, String)],
    frozen: &HashSet<ParamId>,
) -> Option<usize> {
    let units = net.prefix_units();
    let mut k = 0;
    for unit in &units[..units.len().saturating_sub(1)] {
        let mut any = false;
        for (id, n) in params {
            if block_of(n) == *unit {
                any = true;
                if !frozen.contains(id) {
                    return (k > 0).then_some(k);
                }
            }
        }
        if !any {
            break;
        }
        k += 1;
    }
    (k > 0).then_some(k)
}

/// Activations at the freeze boundary, one row per example — `[c, h, w]` feature maps (a
/// ViT's `[1, tokens, dim]`), or a text's token states `[tokens, hidden]` padded to the
/// data set's longest — memory-mapped from the feature cache, or held in memory when the
/// run keeps no cache.
#[derive(Debug)]
enum Activations {
    Mapped(MappedRows),
    Owned {
        values: Vec<f32>,
        /// `[n, ...]`.
        shape: Vec<usize>,
    },
}

impl Activations {
    fn shape(&self) -> &[usize] {
        match self {
            Activations::Mapped(m) => &m.shape,
            Activations::Owned { shape, .. } => shape,
        }
    }

    /// The first `take` values of each row of `idx`, in order.
    fn rows(&self, idx: &[usize], take: usize) -> Vec<f32> {
        let mut x = Vec::with_capacity(idx.len() * take);
        let r: usize = self.shape()[1..].iter().product();
        for &i in idx {
            match self {
                Activations::Mapped(m) => m.extend_row_prefix(i, take, &mut x),
                Activations::Owned { values, .. } => {
                    x.extend_from_slice(&values[i * r..i * r + take]);
                }
            }
        }
        x
    }

    /// Logits of the examples `idx` of `d` from their activations after `k` units.
    fn logits(
        &self,
        net: &Net,
        source: &Source,
        d: &Dataset,
        idx: &[usize],
        k: usize,
        device: &Device,
    ) -> Result<Tensor<2>, TrainError> {
        let s = self.shape();
        if s.len() == 4 {
            let x = self.rows(idx, s[1] * s[2] * s[3]);
            let x = Tensor::from_data(TensorData::new(x, [idx.len(), s[1], s[2], s[3]]), device);
            return Ok(net.logits_from(x, k));
        }
        // Text: the batch's mask (padding to its longest) from the tokenizer, the token states
        // from the cache up to that length.
        let ex: Vec<&Example> = idx.iter().map(|&i| &d.examples[i]).collect();
        let (b, _) = prepare(source, &ex, Prep::Eval, device)?;
        let crate::net::Batch::Text { mask, .. } = b else {
            unreachable!("a text source prepares texts")
        };
        let t = mask.dims()[1];
        let x = self.rows(idx, t * s[2]);
        let x = Tensor::from_data(TensorData::new(x, [idx.len(), t, s[2]]), device);
        Ok(net.text_logits_from(x, mask, k, source.pooling()))
    }
}

/// Most bytes the frozen-prefix activations may take (`ZOO_PREFIX_CACHE_MAX_MB`, default
/// 4096): above it the run computes the whole network every step, and says so.
fn prefix_limit() -> usize {
    std::env::var("ZOO_PREFIX_CACHE_MAX_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(4096)
        << 20
}

/// The output of the first `k` frozen units for every example of `d` (evaluation transform),
/// from the feature cache when it has them (memory-mapped; computed ones stream to it);
/// `None` when they would exceed the size limit; with the backbone batches it computed.
#[allow(clippy::too_many_arguments)]
fn prefix_activations(
    net: &Net,
    source: &Source,
    d: &Dataset,
    k: usize,
    o: &Options,
    cache: Option<&FeatureCache>,
    phase: &str,
    progress: &dyn Progress,
) -> Result<(Option<Activations>, usize), TrainError> {
    let key = match cache {
        Some(_) => Some(FeatureCache::key_tagged(
            source,
            &d.examples,
            &format!("prefix:{k}"),
        )?),
        None => None,
    };
    if let (Some(c), Some(key)) = (cache, &key)
        && let Some(rows) = c.get_mapped(key)
        && rows.shape.len() == if source.is_text() { 3 } else { 4 }
        && rows.len() == d.len()
    {
        progress.note(&format!(
            "{phase}: frozen-prefix activations of {} examples from the cache ({})",
            d.len(),
            c.dir.display()
        ));
        return Ok((Some(Activations::Mapped(rows)), 0));
    }
    let device = zoo_engine::cpu();
    let valid = net.valid();
    let refs: Vec<&Example> = d.examples.iter().collect();
    let chunks: Vec<&[&Example]> = refs.chunks(inference_batch(source, o)).collect();
    // A text's token states are stored padded to the longest example's length.
    let longest = match source.is_text() {
        true => {
            let mut longest = 0;
            for chunk in &chunks {
                if let (crate::net::Batch::Text { mask, .. }, _) =
                    prepare(source, chunk, Prep::Eval, &device)?
                {
                    longest = longest.max(mask.dims()[1]);
                }
            }
            longest
        }
        false => 0,
    };
    let mut values = Vec::new();
    let mut writer = None;
    let mut shape = vec![d.len()];
    progress.start(&format!("{phase} frozen prefix"), d.len() as u64);
    for (i, chunk) in chunks.iter().enumerate() {
        let (b, _) = prepare(source, chunk, Prep::Eval, &device)?;
        let (y, row_shape, pad) = match b {
            crate::net::Batch::Image(x) => {
                let y = valid.run_image_prefix(x, k);
                let [_, c, h, w] = y.dims();
                (to_vec(y), vec![c, h, w], None)
            }
            crate::net::Batch::Text { ids, types, mask } => {
                let y = valid.run_text_prefix(ids, types, mask, k);
                let [_, t, h] = y.dims();
                (
                    to_vec(y),
                    vec![longest, h],
                    Some((t * h, (longest - t) * h)),
                )
            }
        };
        if i == 0 {
            shape.extend(row_shape);
            let bytes = shape.iter().product::<usize>() * 4;
            if bytes > prefix_limit() {
                progress.finish();
                progress.note(&format!(
                    "the frozen prefix's activations for {phase} would take {} MB, more than ZOO_PREFIX_CACHE_MAX_MB ({} MB): every step computes the whole network",
                    bytes >> 20,
                    prefix_limit() >> 20
                ));
                return Ok((None, i + 1));
            }
            if let (Some(c), Some(key)) = (cache, &key) {
                writer = Some(c.writer(key, &shape)?);
            }
        }
        let y = match pad {
            // Each text row padded with zeros to the longest (positions past an example's own
            // length are masked wherever they are read).
            Some((row, zeros)) if zeros > 0 => {
                let mut p = Vec::with_capacity(chunk.len() * (row + zeros));
                for r in y.chunks_exact(row) {
                    p.extend_from_slice(r);
                    p.resize(p.len() + zeros, 0.0);
                }
                p
            }
            _ => y,
        };
        match &mut writer {
            Some(w) => w.push(&y)?,
            None => values.extend(y),
        }
        for _ in chunk.iter() {
            progress.step("");
        }
    }
    progress.finish();
    let batches = chunks.len();
    match (writer, cache, &key) {
        (Some(w), Some(c), Some(key)) => {
            w.finish()?;
            let rows = c.get_mapped(key).ok_or_else(|| {
                TrainError::io(
                    &c.dir,
                    std::io::Error::other(
                        "the frozen-prefix activations just written do not read back",
                    ),
                )
            })?;
            Ok((Some(Activations::Mapped(rows)), batches))
        }
        _ => Ok((Some(Activations::Owned { values, shape }), batches)),
    }
}

/// A tensor by name: (name, shape, values).
type Named = (String, Vec<usize>, Vec<f32>);

/// Saved with every checkpoint for `--resume`, in the checkpoint file's own metadata so the
/// weights and the state that goes with them are replaced in one rename.
#[derive(Debug, Serialize, Deserialize)]
struct RunState {
    options: Options,
    epochs_done: usize,
    steps: u64,
    /// Best validation loss so far (none before the first epoch: JSON has no infinity).
    best_loss: Option<f64>,
    best_epoch: usize,
    bad_epochs: usize,
    history: Vec<EpochRecord>,
    unfrozen_blocks: usize,
    /// Progress inside the epoch after `epochs_done` (all zero at an epoch's end).
    #[serde(default)]
    partial: Partial,
}

/// How far an epoch got: batches done and the running training loss and accuracy.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Partial {
    batches: usize,
    loss_sum: f64,
    correct: usize,
    seen: usize,
    seconds: f64,
}

/// Metadata key of the run state in `.checkpoint/state.safetensors`.
const STATE_KEY: &str = "zoo.run_state";

fn read_state(path: &Path) -> Result<(RunState, HashMap<String, Vec<f32>>), TrainError> {
    let mapped = zoo_checkpoint::Mapped::open(path)?;
    let loaded = zoo_checkpoint::load(&mapped)?;
    let json = loaded.metadata.get(STATE_KEY).ok_or_else(|| {
        opt_err(format!(
            "{}: not a zoo checkpoint (no {STATE_KEY} in its metadata)",
            path.display()
        ))
    })?;
    let state: RunState =
        serde_json::from_str(json).map_err(|e| opt_err(format!("{}: {e}", path.display())))?;
    Ok((state, values_of(&loaded)))
}

fn best_path(dir: &Path, epoch: usize) -> PathBuf {
    dir.join(format!("best-{epoch}.safetensors"))
}

fn read_values(path: &Path) -> Result<HashMap<String, Vec<f32>>, TrainError> {
    let mapped = zoo_checkpoint::Mapped::open(path)?;
    Ok(values_of(&zoo_checkpoint::load(&mapped)?))
}

fn values_of(loaded: &zoo_checkpoint::Loaded<'_>) -> HashMap<String, Vec<f32>> {
    loaded
        .tensors
        .iter()
        .filter(|t| t.dtype == zoo_formats::Dtype::F32)
        .map(|t| {
            (
                t.name.clone(),
                zoo_formats::dtype::to_f32(&t.data, t.dtype).unwrap_or_default(),
            )
        })
        .collect()
}

fn write_values(
    path: &Path,
    values: &[Named],
    meta: Option<&BTreeMap<String, String>>,
) -> Result<(), TrainError> {
    let tensors: Vec<zoo_formats::safetensors::TensorData<'_>> = values
        .iter()
        .map(|(n, shape, v)| zoo_formats::safetensors::TensorData {
            name: n.clone(),
            dtype: zoo_formats::Dtype::F32,
            shape: shape.clone(),
            data: std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        })
        .collect();
    zoo_checkpoint::write_safetensors(path, &tensors, meta)?;
    Ok(())
}

/// The network's float tensors by name, running statistics as of the last step.
fn model_values(net: &Net, names: &Names) -> Vec<Named> {
    state_dict(net, names)
        .into_iter()
        .filter(|t| t.dtype == zoo_formats::Dtype::F32)
        .map(|t| {
            let v = t.f32s();
            (t.name, t.shape, v)
        })
        .collect()
}

/// Writes `.checkpoint/state.safetensors`: the model, the optimiser's moments and, in the
/// metadata, the run state — one atomic rename, so a kill at any moment leaves either the
/// previous checkpoint or this one.
fn save_checkpoint(
    dir: &Path,
    net: &Net,
    names: &Names,
    opt: &AdamW,
    state: &RunState,
) -> Result<(), TrainError> {
    let mut v = model_values(net, names);
    for (n, m) in opt.state(names) {
        let len = m.len();
        v.push((n, vec![len], m));
    }
    let json = serde_json::to_string(state).map_err(|e| opt_err(e.to_string()))?;
    let meta = BTreeMap::from([(STATE_KEY.to_string(), json)]);
    write_values(&dir.join("state.safetensors"), &v, Some(&meta))
}

/// Fine-tunes the model in `model_dir` on `data`, writing the result to `out`.
pub fn finetune(
    model_dir: &Path,
    data: &Path,
    out: &Path,
    o: &Options,
    progress: &dyn Progress,
) -> Result<Summary, TrainError> {
    let started = Instant::now();
    let head_spec = HeadSpec::parse(&o.head)
        .ok_or_else(|| opt_err(format!("--head {}: expected linear or mlp:HIDDEN", o.head)))?;
    if o.epochs == 0 || o.batch_size == 0 {
        return Err(opt_err("--epochs and --batch-size must be at least 1"));
    }
    let ckpt_dir = out.join(".checkpoint");
    let state_file = ckpt_dir.join("state.safetensors");
    let resumed = if o.resume && state_file.exists() {
        let (s, values) = read_state(&state_file)?;
        if s.options.run_defining() != o.run_defining() {
            return Err(opt_err(format!(
                "{}: the run being resumed used other options; resume with the same ones",
                out.display()
            )));
        }
        progress.note(&format!(
            "resuming after epoch {}{}",
            s.epochs_done,
            match s.partial.batches {
                0 => String::new(),
                n => format!(" and {n} batches of epoch {}", s.epochs_done + 1),
            }
        ));
        Some((s, values))
    } else {
        if o.resume {
            progress.note(&format!(
                "--resume: no checkpoint in {}, starting from the beginning",
                ckpt_dir.display()
            ));
        }
        None
    };

    // Data.
    let Splits {
        mut train,
        mut val,
        test,
        val_from_train,
    } = crate::data::load_splits(data, o.val_fraction, o.seed)?;
    // One file or one folder and a test size: a stratified test split is held out first.
    let mut test = test;
    if test.is_none()
        && val_from_train
        && let Some(n) = o.max_test
    {
        let mut full = train.clone();
        full.examples.extend(val.examples.iter().cloned());
        let (rest, held) = crate::data::stratified_split(&full, n, o.seed ^ 0x7e57);
        let f = o.val_fraction.clamp(0.01, 0.9);
        let (t, v) = crate::data::stratified_split(
            &rest,
            ((rest.len() as f64) * f).round().max(1.0) as usize,
            o.seed,
        );
        train = t;
        val = v;
        test = Some(held);
    }
    if let Some(n) = o.per_class {
        if val_from_train {
            // A small training subset; validation from the examples left over, in proportion.
            let mut full = train.clone();
            full.examples.extend(val.examples.iter().cloned());
            train = full.per_class(n, o.seed);
            let used: HashSet<&str> = train.examples.iter().map(|e| e.origin.as_str()).collect();
            let rest = Dataset {
                classes: full.classes.clone(),
                examples: full
                    .examples
                    .iter()
                    .filter(|e| !used.contains(e.origin.as_str()))
                    .cloned()
                    .collect(),
            };
            let f = o.val_fraction.clamp(0.01, 0.9);
            let n_val = ((train.len() as f64) * f / (1.0 - f)).round().max(1.0) as usize;
            val = rest.at_most(n_val, o.seed);
        } else {
            train = train.per_class(n, o.seed);
        }
    }
    if let Some(n) = o.max_val {
        val = val.at_most(n, o.seed);
    }
    let test = test.map(|t| match o.max_test {
        Some(n) => t.at_most(n, o.seed),
        None => t,
    });
    let classes = train.classes.clone();

    // Model.
    let mut source = Source::open(model_dir, o.image_size)?;
    if let (Some(p), Kind::Text { pooling, .. }) = (&o.pooling, &mut source.kind) {
        *pooling = Pooling::parse(p)
            .ok_or_else(|| opt_err(format!("--pooling {p}: expected mean, max, cls or pooler")))?;
    }
    let is_text = source.is_text();
    if is_text != train.is_text() {
        return Err(opt_err(format!(
            "{} is a {} model but {} holds {}",
            model_dir.display(),
            if is_text { "text" } else { "image" },
            data.display(),
            if train.is_text() { "texts" } else { "images" }
        )));
    }
    let device = Device::autodiff(zoo_engine::cpu());
    device.seed(o.seed);
    let peft = o.peft.as_deref().map(Peft::parse).transpose()?;
    if peft.is_some() && o.from_scratch {
        return Err(opt_err(
            "--peft adapts a pre-trained model; it does not combine with --from-scratch",
        ));
    }
    let (mut net, mut names) = source.build(
        Some((head_spec, classes.len())),
        o.from_scratch.then_some(o.seed),
        o.seed,
        &device,
    )?;
    // Parameter-efficient runs: adapters (or the biases) are all of the backbone that trains.
    let published = crate::peft::Published::of(&source, &names, &o.head);
    let base_backbone = net.backbone_ids(&names);
    let mut adapter_out = None;
    let adapter_ids: HashSet<ParamId> = match &peft {
        Some(Peft::Lora { shape, targets }) => {
            let targets = match targets {
                Some(t) => t.clone(),
                None => crate::peft::default_targets(&source)?,
            };
            let adapted = crate::peft::attach(
                &mut net, &mut names, *shape, &targets, &published, &device, o.seed,
            )?;
            progress.note(&format!(
                "LoRA r={} alpha={} on {} linear layers ({}); the base model stays frozen",
                shape.r,
                shape.alpha,
                adapted.len(),
                targets.join(", ")
            ));
            // Globs are zoo's: the config lists the modules they chose, which peft reads alike.
            let written = if targets.iter().any(|t| t.contains(['*', '?', '['])) {
                adapted
            } else {
                targets
            };
            adapter_out = Some(crate::output::AdapterOut {
                published: published.clone(),
                shape: *shape,
                targets: written,
            });
            crate::peft::lora_ids(&names)
        }
        Some(Peft::BitFit) => crate::peft::bias_ids(&base_backbone, &names),
        None => HashSet::new(),
    };
    let frozen = if peft.is_some() {
        // The base is frozen; --freeze then picks among the adapters (or biases) by block.
        let chosen = frozen_ids(&o.freeze, &net, &names)?;
        net.backbone_ids(&names)
            .into_iter()
            .filter(|id| !adapter_ids.contains(id) || chosen.contains(id))
            .collect()
    } else {
        frozen_ids(&o.freeze, &net, &names)?
    };
    let mut net = set_trainable(net, &frozen, false);
    // With --freeze-bn-stats (and in parameter-efficient runs, whose base stays as it was)
    // no BatchNorm leaves its running statistics, whatever trains.
    let settle = |net: Net| {
        if o.freeze_bn_stats || peft.is_some() {
            zoo_engine::export::set_batch_norm_training(net, false)
        } else {
            net
        }
    };
    net = settle(net);
    let backbone = net.backbone_ids(&names);
    let schedule: Vec<usize> = match &o.unfreeze_schedule {
        Some(s) => s
            .split(',')
            .map(|x| {
                x.trim().parse().map_err(|_| {
                    opt_err(format!("--unfreeze-schedule {s}: expected epochs like 2,4"))
                })
            })
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    let head_only = frozen == backbone && schedule.is_empty();
    let use_features = head_only && (!o.augment || is_text);
    if head_only && o.augment && !is_text {
        progress.note("augmentation is on, so the frozen backbone runs every epoch and the feature cache is bypassed (--no-augment uses the cache)");
    }

    // Layer-wise learning rates: the head at head_lr, each block below it decayed.
    let head_lr = o.head_lr.unwrap_or(o.lr * 10.0);
    let mut opt = AdamW::new(o.weight_decay);
    let params = parameters(&net, &names);
    let order = blocks(
        &params
            .iter()
            .filter(|(id, _)| backbone.contains(id))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let backbone_names: HashSet<&str> = params
        .iter()
        .filter(|(id, _)| backbone.contains(id))
        .map(|(_, n)| n.as_str())
        .collect();
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    for (id, name) in &params {
        let (group, scale) = if backbone.contains(id) {
            let b = block_of(name);
            let depth = order.len() - order.iter().position(|x| *x == b).unwrap_or(0);
            (b, o.layer_decay.powi(depth as i32 - 1) * o.lr / head_lr)
        } else {
            ("head".to_string(), 1.0)
        };
        opt.lr_scale.insert(*id, scale);
        groups.insert(group, scale);
    }
    // Gradual unfreezing: the frozen blocks from the top down.
    let frozen_blocks: Vec<String> = order
        .iter()
        .rev()
        .filter(|b| {
            params
                .iter()
                .any(|(id, n)| frozen.contains(id) && block_of(n) == **b)
        })
        .cloned()
        .collect();

    let steps_per_epoch = train.len().div_ceil(o.batch_size);
    let total_steps = steps_per_epoch * o.epochs;
    let warmup = ((total_steps as f64) * o.warmup).round() as usize;
    let lr_schedule = Schedule::parse(&o.lr_scheduler).ok_or_else(|| {
        opt_err(format!(
            "--lr-scheduler {}: expected cosine, linear or constant",
            o.lr_scheduler
        ))
    })?;
    let higher_is_better = match o.metric_for_best_model.as_str() {
        "loss" | "eval_loss" => false,
        "accuracy" | "eval_accuracy" | "f1" | "eval_f1" | "macro_f1" => true,
        other => {
            return Err(opt_err(format!(
                "--metric-for-best-model {other}: expected loss, accuracy or f1"
            )));
        }
    };

    // The cache on disk (head-only features and the frozen prefix share it).
    let cache = o.use_cache.then(|| FeatureCache {
        dir: o
            .cache_dir
            .clone()
            .unwrap_or_else(FeatureCache::default_dir),
    });
    let mut backbone_batches = 0;
    let mut cache_hits = 0;
    let mut cached: Option<(Vec<f32>, Vec<f32>, usize)> = None;
    if use_features {
        let (tf, dim, b1, h1) =
            features(&net, &source, &train, o, cache.as_ref(), "train", progress)?;
        let (vf, _, b2, h2) = features(
            &net,
            &source,
            &val,
            o,
            cache.as_ref(),
            "validation",
            progress,
        )?;
        backbone_batches += b1 + b2;
        cache_hits += usize::from(h1) + usize::from(h2);
        cached = Some((tf, vf, dim));
    }

    // The frozen prefix, computed once (image models, no augmentation, a fixed freeze).
    let prefix = if !use_features
        && (is_text || !o.augment)
        && o.prefix_cache
        && !o.from_scratch
        && schedule.is_empty()
    {
        frozen_prefix(&net, &params, &frozen)
    } else {
        None
    };
    let prefix = match prefix {
        Some(k) => {
            let (t, b1) = prefix_activations(
                &net,
                &source,
                &train,
                k,
                o,
                cache.as_ref(),
                "train",
                progress,
            )?;
            backbone_batches += b1;
            let v = match &t {
                Some(_) => {
                    let (v, b2) = prefix_activations(
                        &net,
                        &source,
                        &val,
                        k,
                        o,
                        cache.as_ref(),
                        "validation",
                        progress,
                    )?;
                    backbone_batches += b2;
                    v
                }
                None => None,
            };
            match (t, v) {
                (Some(t), Some(v)) => {
                    progress.note(&format!(
                        "the first {k} blocks are frozen: their output is computed once and every epoch trains the blocks above"
                    ));
                    Some((k, t, v))
                }
                _ => None,
            }
        }
        None => None,
    };

    // Resume.
    std::fs::create_dir_all(&ckpt_dir).map_err(|e| TrainError::io(&ckpt_dir, e))?;
    let mut state = RunState {
        options: o.clone(),
        epochs_done: 0,
        steps: 0,
        best_loss: None,
        best_epoch: 0,
        bad_epochs: 0,
        history: Vec::new(),
        unfrozen_blocks: 0,
        partial: Partial::default(),
    };
    // One frozen block starts training (its BatchNorm too, unless --freeze-bn-stats).
    let unfreeze = |net: Net, block: &str| {
        let ids: HashSet<ParamId> = params
            .iter()
            .filter(|(id, n)| block_of(n) == block && (peft.is_none() || adapter_ids.contains(id)))
            .map(|(id, _)| *id)
            .collect();
        settle(set_trainable(net, &ids, true))
    };
    if let Some((s, values)) = resumed {
        for b in frozen_blocks.iter().take(s.unfrozen_blocks) {
            net = unfreeze(net, b);
        }
        net = zoo_engine::export::load_state(net, &names, &values)
            .map_err(|m| opt_err(format!("checkpoint lacks {}", m.join(", "))))?;
        opt.restore(&names, s.steps, &values, &zoo_engine::cpu());
        state = s;
    }
    state.options = o.run_defining();
    let first_step = state.steps;
    // The best epoch's weights by name (read back from its file when resuming).
    let mut best: Option<HashMap<String, Vec<f32>>> = if state.best_epoch > 0 {
        Some(read_values(&best_path(&ckpt_dir, state.best_epoch))?)
    } else {
        None
    };

    let mut stopped_early = false;
    let mut epochs_this_process = 0;
    let smoothing = o.label_smoothing;
    while state.epochs_done < o.epochs {
        let epoch = state.epochs_done + 1;
        // Progress inside this epoch when resuming from a mid-epoch checkpoint.
        let partial = std::mem::take(&mut state.partial);
        if let Some(&at) = schedule.get(state.unfrozen_blocks)
            && partial.batches == 0
            && epoch >= at
            && state.unfrozen_blocks < frozen_blocks.len()
        {
            let b = &frozen_blocks[state.unfrozen_blocks];
            net = unfreeze(net, b);
            state.unfrozen_blocks += 1;
            progress.note(&format!("epoch {epoch}: unfreezing {b}"));
        }
        let t0 = Instant::now();
        let mut order_idx: Vec<usize> = (0..train.len()).collect();
        order_idx.shuffle(&mut ChaCha8Rng::seed_from_u64(
            o.seed.wrapping_add(epoch as u64),
        ));
        progress.start(
            &format!("epoch {epoch}/{}", o.epochs),
            (steps_per_epoch - partial.batches.min(steps_per_epoch)) as u64,
        );
        let (mut loss_sum, mut correct, mut seen) =
            (partial.loss_sum, partial.correct, partial.seen);
        let mut last_checkpoint = Instant::now();
        for (b, chunk) in order_idx
            .chunks(o.batch_size)
            .enumerate()
            .skip(partial.batches)
        {
            // Dropout draws from the step's own seed, so a run resumed mid-epoch draws the
            // same masks as one that never stopped.
            device.seed(
                o.seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(state.steps.wrapping_mul(0x9e37_79b9)),
            );
            let labels: Vec<usize> = chunk.iter().map(|&i| train.examples[i].label).collect();
            let logits = match &cached {
                Some((tf, _, dim)) => {
                    let mut x = Vec::with_capacity(chunk.len() * dim);
                    for &i in chunk {
                        x.extend_from_slice(&tf[i * dim..(i + 1) * dim]);
                    }
                    let x: Tensor<2> =
                        Tensor::from_data(TensorData::new(x, [chunk.len(), *dim]), &device);
                    net.head_forward(x)
                }
                None if prefix.is_some() => {
                    let (k, acts, _) = prefix.as_ref().unwrap();
                    acts.logits(&net, &source, &train, chunk, *k, &device)?
                }
                None => {
                    let ex: Vec<&Example> = chunk.iter().map(|&i| &train.examples[i]).collect();
                    let prep = if o.augment && !is_text {
                        Prep::Augment(o.seed.wrapping_mul(7919).wrapping_add(epoch as u64))
                    } else {
                        Prep::Eval
                    };
                    let (b, _) = prepare(&source, &ex, prep, &device)?;
                    backbone_batches += 1;
                    net.logits(b, source.pooling())
                }
            };
            let preds = logits
                .clone()
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap_or_default();
            correct += preds
                .iter()
                .zip(&labels)
                .filter(|(p, y)| **p as usize == **y)
                .count();
            let l = loss(logits, &labels, smoothing, &device);
            let lv = f64::from(l.clone().into_scalar::<f32>());
            loss_sum += lv * labels.len() as f64;
            seen += labels.len();
            let grads = GradientsParams::from_grads(l.backward(), &net);
            let lr = lr_at(
                head_lr,
                state.steps as usize,
                total_steps,
                warmup,
                lr_schedule,
            );
            let (n, _) = opt.step(lr, net, grads, o.clip_grad);
            net = n;
            state.steps += 1;
            progress.step(&format!("loss {:.4}", loss_sum / seen as f64));
            let due = match o.checkpoint_every {
                Some(n) => n > 0 && state.steps.is_multiple_of(n as u64),
                None => last_checkpoint.elapsed().as_secs() >= 120,
            };
            let stop = o
                .stop_after_steps
                .is_some_and(|n| state.steps - first_step >= n);
            if (due || stop) && b + 1 < steps_per_epoch {
                state.partial = Partial {
                    batches: b + 1,
                    loss_sum,
                    correct,
                    seen,
                    seconds: partial.seconds + t0.elapsed().as_secs_f64(),
                };
                save_checkpoint(&ckpt_dir, &net, &names, &opt, &state)?;
                state.partial = Partial::default();
                last_checkpoint = Instant::now();
                if stop {
                    return Err(opt_err(format!(
                        "stopped after step {} (--stop-after-steps); --resume continues",
                        state.steps
                    )));
                }
            }
        }
        progress.finish();
        // Validation.
        let val_logits = match &cached {
            Some((_, vf, dim)) => {
                let head = net.head().valid();
                let x: Tensor<2> = Tensor::from_data(
                    TensorData::new(vf.clone(), [val.len(), *dim]),
                    &zoo_engine::cpu(),
                );
                to_vec(head.forward(x))
            }
            None => match &prefix {
                Some((k, _, va)) => {
                    let valid = net.valid();
                    let cpu = zoo_engine::cpu();
                    let idx: Vec<usize> = (0..val.len()).collect();
                    let mut out = Vec::with_capacity(val.len() * classes.len());
                    for chunk in idx.chunks(inference_batch(&source, o)) {
                        out.extend(to_vec(va.logits(&valid, &source, &val, chunk, *k, &cpu)?));
                    }
                    out
                }
                None => {
                    let b = inference_batch(&source, o);
                    backbone_batches += val.len().div_ceil(b);
                    predict_logits(&net, &source, &val, b, &crate::Silent)?
                }
            },
        };
        let labels: Vec<usize> = val.examples.iter().map(|e| e.label).collect();
        let ev = evaluate(&val_logits, &labels, &classes);
        let lr_now = lr_at(
            head_lr,
            state.steps.saturating_sub(1) as usize,
            total_steps,
            warmup,
            lr_schedule,
        );
        let live = trainable(&net, &names);
        let record = EpochRecord {
            epoch,
            step: state.steps,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: ev.loss,
            val_accuracy: ev.accuracy,
            val_macro_f1: ev.macro_f1,
            // A frozen group's rate is 0: nothing in it moves.
            lr: groups
                .iter()
                .map(|(g, s)| {
                    let training = live.iter().any(|(_, n)| {
                        if g == "head" {
                            !backbone_names.contains(n.as_str())
                        } else {
                            backbone_names.contains(n.as_str()) && block_of(n) == *g
                        }
                    });
                    (g.clone(), if training { lr_now * s } else { 0.0 })
                })
                .collect(),
            trainable_tensors: live.len(),
            seconds: partial.seconds + t0.elapsed().as_secs_f64(),
        };
        progress.note(&format!(
            "epoch {epoch}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} macro-F1 {:.3}",
            record.train_loss,
            record.train_accuracy,
            record.val_loss,
            record.val_accuracy,
            record.val_macro_f1
        ));
        // Divergence: training loss falls while validation loss rises, two epochs running.
        let h = &state.history;
        if h.len() >= 2 {
            let (a, b) = (&h[h.len() - 2], &h[h.len() - 1]);
            if b.train_loss < a.train_loss
                && record.train_loss < b.train_loss
                && b.val_loss > a.val_loss
                && record.val_loss > b.val_loss
            {
                progress.note(&format!(
                    "warning: epoch {epoch}: training loss falls ({:.4}) while validation loss rises ({:.4}): overfitting",
                    record.train_loss, record.val_loss
                ));
            }
        }
        state.history.push(record);
        let metric = match o.metric_for_best_model.trim_start_matches("eval_") {
            "accuracy" => ev.accuracy,
            "f1" | "macro_f1" => ev.macro_f1,
            _ => ev.loss,
        };
        let better = |b: f64| {
            if higher_is_better {
                metric > b + 1e-9
            } else {
                metric < b - 1e-6
            }
        };
        if state.best_loss.is_none_or(better) {
            state.best_loss = Some(metric);
            state.best_epoch = epoch;
            state.bad_epochs = 0;
            let v = model_values(&net, &names);
            write_values(&best_path(&ckpt_dir, epoch), &v, None)?;
            best = Some(v.into_iter().map(|(n, _, x)| (n, x)).collect());
        } else {
            state.bad_epochs += 1;
        }
        state.epochs_done = epoch;
        save_checkpoint(&ckpt_dir, &net, &names, &opt, &state)?;
        // Only the best epoch's weights that the saved state names are kept.
        for e in 1..=epoch {
            if e != state.best_epoch {
                let _ = std::fs::remove_file(best_path(&ckpt_dir, e));
            }
        }
        epochs_this_process += 1;
        if state.bad_epochs >= o.patience.max(1) && epoch < o.epochs {
            progress.note(&format!(
                "early stopping after epoch {epoch}: no better validation {} for {} epochs (best: epoch {})",
                o.metric_for_best_model, state.bad_epochs, state.best_epoch
            ));
            stopped_early = true;
            break;
        }
        if o.stop_after.is_some_and(|n| epochs_this_process >= n) && epoch < o.epochs {
            return Err(opt_err(format!(
                "stopped after epoch {epoch} (--stop-after); --resume continues"
            )));
        }
    }

    // The best epoch's weights.
    if let Some(values) = &best {
        net = zoo_engine::export::load_state(net, &names, values)
            .map_err(|m| opt_err(format!("best checkpoint lacks {}", m.join(", "))))?;
    }

    // Final evaluation: the test split when there is one.
    let (eval_split, eval_set) = match &test {
        Some(t) => ("test", t),
        None => ("validation", &val),
    };
    let logits = if use_features {
        let (f, dim, b, hit) = features(
            &net,
            &source,
            eval_set,
            o,
            cache.as_ref(),
            eval_split,
            progress,
        )?;
        backbone_batches += b;
        cache_hits += usize::from(hit);
        let x: Tensor<2> = Tensor::from_data(
            TensorData::new(f, [eval_set.len(), dim]),
            &zoo_engine::cpu(),
        );
        to_vec(net.head().valid().forward(x))
    } else {
        let b = inference_batch(&source, o);
        backbone_batches += eval_set.len().div_ceil(b);
        predict_logits(&net, &source, eval_set, b, progress)?
    };
    let labels: Vec<usize> = eval_set.examples.iter().map(|e| e.label).collect();
    let eval = evaluate(&logits, &labels, &classes);

    let summary = Summary {
        out: out.to_path_buf(),
        data: data.display().to_string(),
        train_examples: train.len(),
        val_examples: val.len(),
        epochs_run: state.epochs_done,
        best_epoch: state.best_epoch,
        stopped_early,
        eval_split: eval_split.to_string(),
        eval,
        seconds: started.elapsed().as_secs_f64(),
        backbone_batches,
        feature_cache_hits: cache_hits,
        head_only,
        trainable_tensors: trainable(&net, &names).len(),
        trainable_parameters: zoo_engine::export::trainable_values(&net),
        weights_bytes: 0,
    };
    crate::output::write(
        &source,
        &net,
        &names,
        &classes,
        &o.facts(),
        &summary,
        &state.history,
        out,
        adapter_out.as_ref(),
    )?;
    let mut summary = summary;
    let weights = if adapter_out.is_some() {
        crate::peft::WEIGHTS_FILE
    } else {
        "model.safetensors"
    };
    summary.weights_bytes = std::fs::metadata(out.join(weights)).map_or(0, |m| m.len());
    let _ = std::fs::remove_dir_all(&ckpt_dir);
    Ok(summary)
}
