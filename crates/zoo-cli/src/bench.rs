//! `zoo bench`: inference and one AdamW training step of ResNet-18 (batch 16, 224²) and
//! MiniLM-L6 (batch 32, 128 tokens) on the CPU, for `benches/engine/bench.py` to put side by
//! side with PyTorch.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::{Device, Int, Tensor};
use burn::tensor::{Distribution, TensorData};
use clap::Args;
use serde_json::json;
use zoo_engine::Weights;
use zoo_engine::bert::{Bert, BertConfig};
use zoo_engine::resnet::ResNet;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// ResNet-18 weights with torchvision names (safetensors or .pth).
    #[arg(long)]
    resnet18: PathBuf,
    /// A BERT-family model folder (all-MiniLM-L6-v2).
    #[arg(long)]
    minilm: PathBuf,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 3)]
    iters: usize,
    #[arg(long)]
    json: bool,
}

/// Items per second over `iters` runs after a warm-up.
fn rate(items: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    (items * iters) as f64 / t.elapsed().as_secs_f64()
}

fn weights(path: &std::path::Path, device: &Device) -> Result<Weights> {
    let mapped = zoo_checkpoint::Mapped::open(path)?;
    let loaded = zoo_checkpoint::load(&mapped)?;
    Ok(Weights::from_loaded(&loaded, device))
}

fn cross_entropy(logits: Tensor<2>, classes: usize) -> Tensor<1> {
    let [b, _] = logits.dims();
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

pub fn run(a: &BenchArgs) -> Result<ExitCode> {
    let cpu = zoo_engine::cpu();
    let ad = Device::autodiff(cpu.clone());
    // ResNet-18.
    let resnet = ResNet::load(
        &weights(&a.resnet18, &cpu)?,
        [2, 2, 2, 2],
        false,
        Some(1000),
    )
    .context("ResNet-18 weights")?;
    let x: Tensor<4> = Tensor::random([16, 3, 224, 224], Distribution::Normal(0.0, 1.0), &cpu);
    let r_inf = rate(16, a.iters, || {
        let _ = resnet.forward(x.clone()).into_data();
    });
    let mut model = ResNet::load(&weights(&a.resnet18, &ad)?, [2, 2, 2, 2], false, Some(1000))?;
    let mut optim = AdamWConfig::new().init();
    let xa: Tensor<4> = Tensor::random([16, 3, 224, 224], Distribution::Normal(0.0, 1.0), &ad);
    let r_train = rate(16, a.iters, || {
        let loss = cross_entropy(model.forward(xa.clone()), 1000);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model.clone(), grads);
    });
    // MiniLM-L6.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.minilm.join("config.json"))?)?;
    let c = BertConfig::from_json(&config)?;
    let bert = Bert::load(&weights(&a.minilm.join("model.safetensors"), &cpu)?, &c)?;
    let ids_data: Vec<i64> = (0..32 * 128).map(|i| 1000 + (i * 7919) % 28000).collect();
    let inputs = |d: &Device| {
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids_data.clone(), [32, 128]), d);
        (ids.zeros_like(), ids, Tensor::<2>::ones([32, 128], d))
    };
    let (types, ids, mask) = inputs(&cpu);
    let b_inf = rate(32, a.iters, || {
        let _ = Bert::mean_pool(
            bert.forward(ids.clone(), types.clone(), mask.clone()),
            mask.clone(),
        )
        .into_data();
    });
    let mut bert_t = Bert::load(&weights(&a.minilm.join("model.safetensors"), &ad)?, &c)?;
    let mut optim = AdamWConfig::new().init();
    let (types, ids, mask) = inputs(&ad);
    let target: Tensor<2> =
        Tensor::random([32, c.hidden_size], Distribution::Normal(0.0, 1.0), &ad);
    let b_train = rate(32, a.iters, || {
        let e = Bert::mean_pool(
            bert_t.forward(ids.clone(), types.clone(), mask.clone()),
            mask.clone(),
        );
        let loss = (e - target.clone()).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &bert_t);
        bert_t = optim.step(1e-4, bert_t.clone(), grads);
    });
    let doc = json!({
        "resnet18_inference_img_per_s": r_inf,
        "resnet18_adamw_step_img_per_s": r_train,
        "minilm_inference_seq_per_s": b_inf,
        "minilm_adamw_step_seq_per_s": b_train,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "parameters_resnet18": resnet.num_params(),
    });
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        outln!("resnet18 inference (b16, 224²): {r_inf:.1} img/s");
        outln!("resnet18 AdamW step (b16):      {r_train:.1} img/s");
        outln!("minilm inference (b32, 128):    {b_inf:.1} seq/s");
        outln!("minilm AdamW step (b32, 128):   {b_train:.1} seq/s");
    }
    Ok(ExitCode::SUCCESS)
}
