//! `config.json`: timm-style for image models, Hugging Face's schema for text models.

use serde_json::{Map, Value, json};

/// Why a config could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config.json is not valid JSON: {0}")]
    Json(String),
    #[error("config.json must be a JSON object")]
    NotAnObject,
    #[error("config.json: `{field}`: {reason}")]
    Field { field: String, reason: String },
}

fn field(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Which schema a config follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    /// `architecture`, `num_classes`, `label_names`, `pretrained_cfg`.
    Timm,
    /// `model_type`, `architectures`, `id2label`, `label2id`.
    HuggingFace,
}

/// Image preprocessing as timm records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PretrainedCfg {
    /// `[channels, height, width]`.
    pub input_size: [u32; 3],
    pub interpolation: String,
    pub crop_pct: f64,
    /// timm's crop mode (`center`, `squash`, `border`); absent means `center`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_mode: Option<String>,
    pub mean: [f64; 3],
    pub std: [f64; 3],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_conv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

impl Default for PretrainedCfg {
    /// torchvision's ImageNet preprocessing: 224², bilinear, crop 0.875, ImageNet mean/std.
    fn default() -> Self {
        PretrainedCfg {
            input_size: [3, 224, 224],
            interpolation: "bilinear".into(),
            crop_pct: 0.875,
            crop_mode: None,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
            first_conv: None,
            classifier: None,
            license: None,
        }
    }
}

/// A `config.json`, kept whole; accessors read and write the fields zoo uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub raw: Map<String, Value>,
}

impl Config {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match serde_json::from_str::<Value>(text).map_err(|e| ConfigError::Json(e.to_string()))? {
            Value::Object(raw) => Ok(Config { raw }),
            _ => Err(ConfigError::NotAnObject),
        }
    }

    pub fn to_json_string(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.raw).expect("a JSON map always serialises");
        s.push('\n');
        s
    }

    /// A new timm-style config for an image classifier.
    pub fn timm(architecture: &str, labels: &[String], pretrained_cfg: &PretrainedCfg) -> Self {
        let mut c = Config::default();
        c.raw.insert("architecture".into(), json!(architecture));
        c.set_labels(labels);
        c.raw.insert(
            "pretrained_cfg".into(),
            serde_json::to_value(pretrained_cfg).unwrap(),
        );
        c
    }

    pub fn kind(&self) -> ConfigKind {
        if self.raw.contains_key("architecture") || self.raw.contains_key("pretrained_cfg") {
            ConfigKind::Timm
        } else {
            ConfigKind::HuggingFace
        }
    }

    /// timm's `architecture`, or Hugging Face's `model_type` (`bert`, `roberta`, ...).
    pub fn architecture(&self) -> Option<&str> {
        match self.kind() {
            ConfigKind::Timm => self.raw.get("architecture").and_then(Value::as_str),
            ConfigKind::HuggingFace => self.raw.get("model_type").and_then(Value::as_str),
        }
    }

    /// Class names in index order: timm's `label_names`, or Hugging Face's `id2label`.
    pub fn label_names(&self) -> Result<Vec<String>, ConfigError> {
        if let Some(v) = self.raw.get("label_names") {
            let items = v
                .as_array()
                .ok_or_else(|| field("label_names", "must be a list"))?;
            return items
                .iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| field("label_names", "must hold strings"))
                })
                .collect();
        }
        let Some(v) = self.raw.get("id2label") else {
            return Ok(Vec::new());
        };
        let map = v
            .as_object()
            .ok_or_else(|| field("id2label", "must be an object"))?;
        let mut pairs = map
            .iter()
            .map(|(k, v)| {
                let i: usize = k
                    .parse()
                    .map_err(|_| field("id2label", format!("key `{k}` is not an index")))?;
                let name = v
                    .as_str()
                    .ok_or_else(|| field("id2label", "values must be strings"))?;
                Ok((i, name.to_string()))
            })
            .collect::<Result<Vec<_>, ConfigError>>()?;
        pairs.sort();
        if pairs.iter().enumerate().any(|(i, (k, _))| i != *k) {
            return Err(field("id2label", "indices must be 0..n without gaps"));
        }
        Ok(pairs.into_iter().map(|(_, n)| n).collect())
    }

    /// `num_classes` (timm), else `num_labels` or the size of `id2label` (Hugging Face).
    pub fn num_classes(&self) -> Option<usize> {
        if let Some(n) = self
            .raw
            .get("num_classes")
            .or_else(|| self.raw.get("num_labels"))
            .and_then(Value::as_u64)
        {
            return Some(n as usize);
        }
        self.label_names()
            .ok()
            .filter(|l| !l.is_empty())
            .map(|l| l.len())
    }

    /// Sets the classes: `num_classes` + `label_names` for timm, `id2label` + `label2id` for
    /// Hugging Face (which derives `num_labels` from them).
    pub fn set_labels(&mut self, labels: &[String]) {
        match self.kind() {
            ConfigKind::Timm => {
                self.raw.insert("num_classes".into(), json!(labels.len()));
                self.raw.insert("label_names".into(), json!(labels));
            }
            ConfigKind::HuggingFace => {
                let id2label: Map<String, Value> = labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (i.to_string(), json!(l)))
                    .collect();
                let label2id: Map<String, Value> = labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| (l.clone(), json!(i)))
                    .collect();
                self.raw.insert("id2label".into(), Value::Object(id2label));
                self.raw.insert("label2id".into(), Value::Object(label2id));
                self.raw.remove("num_labels");
            }
        }
    }

    /// timm's preprocessing, or `None` when the config has none.
    pub fn pretrained_cfg(&self) -> Result<Option<PretrainedCfg>, ConfigError> {
        let Some(v) = self.raw.get("pretrained_cfg") else {
            return Ok(None);
        };
        // Fill what is missing from the defaults, keep what is there.
        let mut merged = serde_json::to_value(PretrainedCfg::default()).unwrap();
        if let (Value::Object(m), Value::Object(given)) = (&mut merged, v) {
            for (k, v) in given {
                if !v.is_null() {
                    m.insert(k.clone(), v.clone());
                }
            }
        } else {
            return Err(field("pretrained_cfg", "must be an object"));
        }
        serde_json::from_value(merged)
            .map(Some)
            .map_err(|e| field("pretrained_cfg", e.to_string()))
    }

    /// Writes the preprocessing, keeping any other `pretrained_cfg` fields already present.
    pub fn set_pretrained_cfg(&mut self, cfg: &PretrainedCfg) {
        let new = serde_json::to_value(cfg).unwrap();
        match self.raw.get_mut("pretrained_cfg") {
            Some(Value::Object(old)) => {
                if let Value::Object(new) = new {
                    for (k, v) in new {
                        old.insert(k, v);
                    }
                }
            }
            _ => {
                self.raw.insert("pretrained_cfg".into(), new);
            }
        }
    }
}
