//! `zoo bench`: inference and one AdamW training step of the engine's workloads on the CPU —
//! MobileNetV2 (batch 32, 96²), ResNet-18 (batch 16, 224²), EfficientNet-B0 (batch 32, 96²),
//! ViT-S/16 (batch 16, 224²) and MiniLM-L6 (batch 32, 128 tokens) — for
//! `benches/engine/bench.py` to put side by side with PyTorch. `--profile` prints where each
//! training step goes, per op kind, forward and backward (`zoo_kernels::profile`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::{Device, Int, Tensor};
use burn::tensor::{Distribution, TensorData};
use clap::Args;
use serde_json::json;
use zoo_engine::bert::{Bert, BertConfig};
use zoo_engine::{Model, Weights};
use zoo_kernels::profile;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// A folder with `resnet18.safetensors`, `mobilenet_v2.safetensors`,
    /// `efficientnet_b0.safetensors` and `vit_small_patch16_224.safetensors` (torchvision / timm
    /// names; `benches/engine/bench.py` writes them). Missing files skip that model.
    #[arg(long)]
    weights: PathBuf,
    /// A BERT-family model folder (all-MiniLM-L6-v2).
    #[arg(long)]
    minilm: Option<PathBuf>,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    /// Only these workloads (comma-separated: mobilenet_v2, resnet18, efficientnet_b0,
    /// vit_small_patch16_224, minilm).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Print each training step's time per op kind, forward and backward.
    #[arg(long)]
    profile: bool,
    /// Skip the inference measurements.
    #[arg(long)]
    no_inference: bool,
    /// Skip the training steps.
    #[arg(long)]
    no_training: bool,
    #[arg(long)]
    json: bool,
}

/// (architecture, batch, image size).
const IMAGE_WORKLOADS: [(&str, usize, usize); 4] = [
    ("mobilenet_v2", 32, 96),
    ("resnet18", 16, 224),
    ("efficientnet_b0", 32, 96),
    ("vit_small_patch16_224", 16, 224),
];

fn weights(path: &Path, device: &Device) -> Result<Weights> {
    let mapped = zoo_checkpoint::Mapped::open(path)?;
    let loaded = zoo_checkpoint::load(&mapped)?;
    Ok(Weights::from_loaded(&loaded, device))
}

fn cross_entropy(logits: Tensor<2>) -> Tensor<1> {
    let [b, classes] = logits.dims();
    let device = logits.device();
    let labels: Vec<i64> = (0..b as i64).map(|i| i % classes as i64).collect();
    let onehot = Tensor::<1, Int>::from_data(TensorData::new(labels, [b]), &device)
        .one_hot(classes)
        .float();
    (burn::tensor::activation::log_softmax(logits, 1) * onehot)
        .sum()
        .neg()
        .div_scalar(b as f64)
        .reshape([1])
}

/// Wall times of one training step's parts.
#[derive(Debug, Default, Clone, Copy)]
struct StepTimes {
    forward: Duration,
    backward: Duration,
    optimizer: Duration,
}

/// Runs `iters` training steps after a warm-up; returns items/s of the fastest step and,
/// when profiling, the median step's profile.
fn train_steps<M>(
    mut model: M,
    items: usize,
    iters: usize,
    profiling: bool,
    forward: impl Fn(&M) -> Tensor<1>,
) -> (f64, Option<profile::Report>)
where
    M: burn::module::Module + Clone,
{
    let mut optim = AdamWConfig::new().init();
    let mut step = |model: M, times: &mut StepTimes| -> (M, Instant) {
        let t0 = Instant::now();
        let loss = forward(&model);
        let _ = loss.clone().into_data();
        let t1 = Instant::now();
        let grads = loss.backward();
        let t2 = Instant::now();
        let grads = GradientsParams::from_grads(grads, &model);
        let model = optim.step(1e-4, model, grads);
        let t3 = Instant::now();
        times.forward += t1 - t0;
        times.backward += t2 - t1;
        times.optimizer += t3 - t2;
        (model, t1)
    };
    let mut warm = StepTimes::default();
    model = step(model, &mut warm).0;
    let mut times = StepTimes::default();
    let mut rows: Vec<profile::Report> = Vec::new();
    let mut best = f64::INFINITY;
    for _ in 0..iters.max(1) {
        let start = Instant::now();
        let mut one = StepTimes::default();
        if profiling {
            profile::enable(true);
        }
        let (m, backward_start) = step(model, &mut one);
        model = m;
        best = best.min(start.elapsed().as_secs_f64());
        if profiling {
            rows.push(profile::report(
                one.forward,
                backward_start,
                one.backward,
                one.optimizer,
            ));
            profile::enable(false);
        }
        times.forward += one.forward;
        times.backward += one.backward;
        times.optimizer += one.optimizer;
    }
    let rate = items as f64 / best;
    // The median step's profile (by total time).
    rows.sort_by(|a, b| a.step_ms().total_cmp(&b.step_ms()));
    let median = rows.get(rows.len() / 2).cloned();
    (rate, median)
}

/// One profiled inference pass (forward time per op kind).
fn profile_inference(f: impl FnOnce()) -> profile::Report {
    profile::enable(true);
    let t = Instant::now();
    f();
    let forward = t.elapsed();
    let report = profile::report(forward, Instant::now(), Duration::ZERO, Duration::ZERO);
    profile::enable(false);
    report
}

/// Items per second of the fastest of `iters` timed runs of `f` (after one warm-up): on a
/// shared machine other work only ever slows a run down (`bench.py` times PyTorch the same
/// way).
fn rate(items: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let best = (0..iters.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    items as f64 / best
}

pub fn run(a: &BenchArgs) -> Result<ExitCode> {
    let cpu = zoo_engine::cpu();
    let ad = Device::autodiff(cpu.clone());
    let wanted = |name: &str| a.only.is_empty() || a.only.iter().any(|o| o == name);
    let mut doc = serde_json::Map::new();
    let mut tables = Vec::new();
    for (arch, batch, size) in IMAGE_WORKLOADS {
        if !wanted(arch) {
            continue;
        }
        let path = a.weights.join(format!("{arch}.safetensors"));
        if !path.exists() {
            if !a.only.is_empty() {
                bail!("{}: no such file", path.display());
            }
            continue;
        }
        if !a.no_inference {
            let w = weights(&path, &cpu)?;
            let (model, _) =
                Model::build(arch, &w, true).with_context(|| path.display().to_string())?;
            let x: Tensor<4> =
                Tensor::random([batch, 3, size, size], Distribution::Normal(0.0, 1.0), &cpu);
            let r = rate(batch, a.iters, || {
                let _ = model.forward(x.clone()).into_data();
            });
            doc.insert(format!("{arch}_inference_img_per_s"), json!(r));
            if a.profile {
                tables.push(
                    profile_inference(|| {
                        let _ = model.forward(x.clone()).into_data();
                    })
                    .table(&format!("{arch} inference (batch {batch}, {size}²)")),
                );
            }
        }
        if a.no_training {
            continue;
        }
        let w = weights(&path, &ad)?;
        let (model, _) =
            Model::build(arch, &w, true).with_context(|| path.display().to_string())?;
        let x: Tensor<4> =
            Tensor::random([batch, 3, size, size], Distribution::Normal(0.0, 1.0), &ad);
        let (r, prof) = train_steps(model, batch, a.iters, a.profile, |m: &Model| {
            cross_entropy(m.forward(x.clone()))
        });
        doc.insert(format!("{arch}_adamw_step_img_per_s"), json!(r));
        if let Some(p) = prof {
            tables.push(p.table(&format!("{arch} training step (batch {batch}, {size}²)")));
        }
    }
    if let Some(dir) = &a.minilm
        && wanted("minilm")
    {
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json"))
                .with_context(|| dir.join("config.json").display().to_string())?,
        )?;
        let c = BertConfig::from_json(&config)?;
        let ids_data: Vec<i64> = (0..32 * 128).map(|i| 1000 + (i * 7919) % 28000).collect();
        let inputs = |d: &Device| {
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids_data.clone(), [32, 128]), d);
            (ids.zeros_like(), ids, Tensor::<2>::ones([32, 128], d))
        };
        if !a.no_inference {
            let bert = Bert::load(&weights(&dir.join("model.safetensors"), &cpu)?, &c)?;
            let (types, ids, mask) = inputs(&cpu);
            let r = rate(32, a.iters, || {
                let _ = Bert::mean_pool(
                    bert.forward(ids.clone(), types.clone(), mask.clone()),
                    mask.clone(),
                )
                .into_data();
            });
            doc.insert("minilm_inference_seq_per_s".into(), json!(r));
            if a.profile {
                tables.push(
                    profile_inference(|| {
                        let _ = Bert::mean_pool(
                            bert.forward(ids.clone(), types.clone(), mask.clone()),
                            mask.clone(),
                        )
                        .into_data();
                    })
                    .table("minilm inference (batch 32, 128 tokens)"),
                );
            }
        }
        if a.no_training {
            return finish(a, doc, tables);
        }
        let bert = Bert::load(&weights(&dir.join("model.safetensors"), &ad)?, &c)?;
        let (types, ids, mask) = inputs(&ad);
        let target: Tensor<2> =
            Tensor::random([32, c.hidden_size], Distribution::Normal(0.0, 1.0), &ad);
        let (r, prof) = train_steps(bert, 32, a.iters, a.profile, |m: &Bert| {
            let e = Bert::mean_pool(
                m.forward(ids.clone(), types.clone(), mask.clone()),
                mask.clone(),
            );
            (e - target.clone()).powi_scalar(2).mean().reshape([1])
        });
        doc.insert("minilm_adamw_step_seq_per_s".into(), json!(r));
        if let Some(p) = prof {
            tables.push(p.table("minilm training step (batch 32, 128 tokens)"));
        }
    }
    finish(a, doc, tables)
}

/// Prints the figures (and the profile tables).
fn finish(
    a: &BenchArgs,
    mut doc: serde_json::Map<String, serde_json::Value>,
    tables: Vec<String>,
) -> Result<ExitCode> {
    doc.insert("threads".into(), json!(rayon_threads()));
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::Value::Object(doc))?
        );
    } else {
        for (k, v) in &doc {
            outln!("{k:40} {v}");
        }
        for t in tables {
            outln!("\n{t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}
