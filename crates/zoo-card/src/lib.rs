//! Model cards and configs, read and written without losing what zoo does not know.
//!
//! - [`ModelCard`]: a README.md with YAML front matter (`license`, `pipeline_tag`, `tags`,
//!   `datasets`, `base_model`, `model-index`, ...). The front matter is kept as an ordered
//!   YAML mapping; typed accessors read and write the fields zoo uses, every other field
//!   and the field order survive a round trip.
//! - [`Config`]: a `config.json`, either timm-style (`architecture`, `num_classes`,
//!   `label_names`, `pretrained_cfg`) or Hugging Face's own (`model_type`, `architectures`,
//!   `id2label`/`label2id`). Kept as an ordered JSON object, with typed accessors.

mod card;
mod config;

pub use card::{CardError, EvalResult, ModelCard};
pub use config::{Config, ConfigError, ConfigKind, PretrainedCfg};
