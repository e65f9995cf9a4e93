//! Transfer learning on top of the model library: data sets, a model folder turned into a
//! backbone with a new head, fine-tuning (frozen-feature cache, AdamW with warm-up and cosine
//! decay, layer-wise learning rates, early stopping, resume), evaluation and reports.
//!
//! Start reading at [`finetune::finetune`].

pub mod cache;
pub mod data;
pub mod embed;
pub mod finetune;
pub mod layout;
pub mod metrics;
pub mod net;
pub mod optim;
pub mod options;
pub mod output;
pub mod peft;
pub mod rank;
pub mod report;
pub mod scores;

/// Why training or evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad data: a missing column, an unknown label, an unreadable image (named).
    #[error("{0}")]
    Data(String),
    /// The model folder cannot be used.
    #[error("{path}: {reason}")]
    Model { path: String, reason: String },
    #[error(transparent)]
    Preprocess(#[from] zoo_preprocess::PreprocessError),
    #[error(transparent)]
    Checkpoint(#[from] zoo_checkpoint::Error),
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// Options that do not make sense together (named).
    #[error("{0}")]
    Options(String),
    #[error("report: {0}")]
    Report(String),
}

impl TrainError {
    pub(crate) fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        TrainError::Io {
            path: path.display().to_string(),
            error,
        }
    }
}

/// Receives progress while a run goes on (the CLI draws progress bars; tests print nothing).
pub trait Progress {
    /// A phase starts with `total` steps (`"features"`, `"epoch 3/10"`, `"eval"`).
    fn start(&self, _phase: &str, _total: u64) {}
    /// One step done; `message` is the running loss or similar.
    fn step(&self, _message: &str) {}
    /// The phase ended.
    fn finish(&self) {}
    /// A line for the user (warnings, cache hits).
    fn note(&self, _line: &str) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;
impl Progress for Silent {}
