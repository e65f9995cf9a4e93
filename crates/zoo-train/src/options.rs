//! A fine-tuning run's options and its measured result: a leaf that the run
//! ([`crate::finetune`]) and its published output ([`crate::output`]) both read, so neither
//! depends on the other's internals.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::metrics::Evaluation;

/// What the card and the configs of a fine-tuned model say about its run: all that
/// [`crate::output::write`] takes from the options.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// `linear` or `mlp:HIDDEN`.
    pub head: String,
    /// `--peft` as given (`lora:r=8,...`, `bitfit`), when the run was parameter-efficient.
    pub peft: Option<String>,
    pub freeze: String,
    /// The base model's name (the hub repository it came from); default: the folder's name.
    pub base_model: Option<String>,
    /// The data set's id on a hub, when it has one.
    pub dataset_id: Option<String>,
    pub metric_for_best_model: String,
    pub epochs: usize,
    pub seed: u64,
    pub batch_size: usize,
    /// Every option, for the card's hyper-parameter table.
    pub hyperparameters: serde_json::Value,
}

/// Everything a run can be told, from flags or `--config run.toml` (same names).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate of the backbone.
    pub lr: f64,
    /// Peak learning rate of the head (default: 10 × `lr`).
    pub head_lr: Option<f64>,
    pub weight_decay: f64,
    /// Fraction of the steps spent warming up (from 0, as the Trainer does).
    pub warmup: f64,
    /// After the warm-up: `cosine`, `linear` or `constant`.
    #[serde(default = "default_scheduler")]
    pub lr_scheduler: String,
    /// What picks the best epoch and stops early: `loss`, `accuracy` or `f1` (macro-F1).
    #[serde(default = "default_best_metric")]
    pub metric_for_best_model: String,
    /// Layer-wise decay: each block below the head gets this factor of the next one's rate.
    pub layer_decay: f64,
    pub label_smoothing: f64,
    /// Bound on the global gradient norm.
    pub clip_grad: Option<f64>,
    /// `all` (the backbone), `none`, `stages:N` (the first N blocks), or name globs.
    pub freeze: String,
    /// Epochs at which one more block (from the top) is unfrozen, e.g. `2,4`.
    pub unfreeze_schedule: Option<String>,
    /// Keep every BatchNorm layer's running statistics fixed (gamma and beta still train
    /// where unfrozen): for small or few batches.
    pub freeze_bn_stats: bool,
    /// `linear` or `mlp:HIDDEN`.
    pub head: String,
    /// Parameter-efficient fine-tuning: `lora[:r=8,alpha=16,dropout=0.05,targets=a|b]` (a
    /// `peft` adapter is published) or `bitfit` (biases only).
    pub peft: Option<String>,
    pub augment: bool,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    pub seed: u64,
    pub val_fraction: f64,
    pub image_size: Option<u32>,
    /// Training examples per class (a subset, chosen with the seed).
    pub per_class: Option<usize>,
    pub max_val: Option<usize>,
    pub max_test: Option<usize>,
    /// Re-initialise every weight: the same architecture trained from scratch.
    pub from_scratch: bool,
    /// Text pooling: `mean`, `max`, `cls`, `pooler` (default: the folder's own).
    pub pooling: Option<String>,
    pub cache_dir: Option<PathBuf>,
    pub use_cache: bool,
    /// Compute the frozen prefix (`--freeze stages:N` without augmentation) once and train
    /// every epoch on the blocks above it; off with `--no-prefix-cache` (same result).
    pub prefix_cache: bool,
    pub resume: bool,
    /// A checkpoint every this many steps (default: every two minutes of training), besides
    /// the one at every epoch's end.
    pub checkpoint_every: Option<usize>,
    /// The base model's name in titles and the card's `base_model` (the hub repository it
    /// came from; default: the folder's name). Set by the CLI, not saved.
    #[serde(skip)]
    pub base_model: Option<String>,
    /// The data set's id on a hub (`org/name`): the card's `datasets:` and the `model-index`
    /// dataset type. Without it the card names no data set (a local folder is not one).
    #[serde(skip)]
    pub dataset_id: Option<String>,
    /// Stop after this many epochs in this process (tests of resume; not saved).
    #[serde(skip)]
    pub stop_after: Option<usize>,
    /// Stop after this many steps in this process, right after a checkpoint (tests of resume).
    #[serde(skip)]
    pub stop_after_steps: Option<u64>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            epochs: 10,
            batch_size: 32,
            lr: 3e-4,
            head_lr: None,
            weight_decay: 0.01,
            warmup: 0.1,
            lr_scheduler: default_scheduler(),
            metric_for_best_model: default_best_metric(),
            layer_decay: 1.0,
            label_smoothing: 0.1,
            clip_grad: Some(1.0),
            freeze: "none".into(),
            unfreeze_schedule: None,
            freeze_bn_stats: false,
            head: "linear".into(),
            peft: None,
            augment: true,
            patience: 3,
            seed: 0,
            val_fraction: 0.2,
            image_size: None,
            per_class: None,
            max_val: None,
            max_test: None,
            from_scratch: false,
            pooling: None,
            cache_dir: None,
            use_cache: true,
            prefix_cache: true,
            resume: false,
            checkpoint_every: None,
            base_model: None,
            dataset_id: None,
            stop_after: None,
            stop_after_steps: None,
        }
    }
}

impl Options {
    /// What the published model's card and configs say about this run.
    pub fn facts(&self) -> RunFacts {
        RunFacts {
            head: self.head.clone(),
            peft: self.peft.clone(),
            freeze: self.freeze.clone(),
            base_model: self.base_model.clone(),
            dataset_id: self.dataset_id.clone(),
            metric_for_best_model: self.metric_for_best_model.clone(),
            epochs: self.epochs,
            seed: self.seed,
            batch_size: self.batch_size,
            hyperparameters: serde_json::to_value(self).unwrap_or_default(),
        }
    }

    /// The options that define a run's result, as its checkpoint records them: without the
    /// per-process ones (`resume`, checkpoint frequency, the display name, test stops), so a
    /// resume may change those and nothing else.
    pub(crate) fn run_defining(&self) -> Options {
        Options {
            resume: false,
            checkpoint_every: None,
            base_model: None,
            dataset_id: None,
            stop_after: None,
            stop_after_steps: None,
            prefix_cache: true,
            ..self.clone()
        }
    }
}

fn default_scheduler() -> String {
    "cosine".into()
}

fn default_best_metric() -> String {
    "loss".into()
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub out: PathBuf,
    pub data: String,
    pub train_examples: usize,
    pub val_examples: usize,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub stopped_early: bool,
    /// On the test split when the data has one, else on validation.
    pub eval_split: String,
    pub eval: Evaluation,
    pub seconds: f64,
    /// Backbone forward batches this run computed (0 when every feature came from the cache).
    pub backbone_batches: usize,
    pub feature_cache_hits: usize,
    pub head_only: bool,
    pub trainable_tensors: usize,
    /// Values that trained (LoRA: the adapters and the head).
    pub trainable_parameters: usize,
    /// Bytes of the published weights (`model.safetensors`, or a LoRA run's
    /// `adapter_model.safetensors`).
    pub weights_bytes: u64,
}
