//! README.md front matter.

use serde_yaml_ng::{Mapping, Value};

/// Largest front matter accepted, in bytes.
pub const MAX_FRONT_MATTER: usize = 1 << 20;

/// Why a card could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("front matter is not closed by a `---` line")]
    Unclosed,
    #[error("front matter is {0} bytes, over the {MAX_FRONT_MATTER}-byte limit")]
    TooLarge(usize),
    #[error("front matter is not valid YAML: {0}")]
    Yaml(String),
    #[error("front matter must be a YAML mapping")]
    NotAMapping,
    #[error("`{field}`: {reason}")]
    Field { field: String, reason: String },
}

/// A model card: YAML metadata and the Markdown body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelCard {
    pub metadata: Mapping,
    pub body: String,
}

/// One benchmark result from `model-index`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EvalResult {
    /// `task.type`, e.g. `image-classification`.
    pub task: String,
    /// `dataset.type`, e.g. `imagenet-1k`.
    pub dataset: String,
    pub dataset_name: Option<String>,
    pub split: Option<String>,
    /// `metrics[].type`, e.g. `accuracy`.
    pub metric: String,
    /// `metrics[].name`, e.g. `top-1`.
    pub metric_name: Option<String>,
    pub value: f64,
}

impl EvalResult {
    /// The name a metric is searched by: its `name` when given (`top-1`), else its `type`.
    pub fn key(&self) -> &str {
        self.metric_name.as_deref().unwrap_or(&self.metric)
    }
}

fn key(s: &str) -> Value {
    Value::String(s.to_string())
}

/// A scalar or a list of scalars, as strings.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        other => scalar(other).into_iter().collect(),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Drops YAML tags (`!tag value` → `value`): cards on the Hub do not use them, JSON
/// (`cardData`) cannot hold them, and the emitter cannot always write them back.
/// Whether a mapping anywhere in `value` has a mapping or a list as a key.
fn has_complex_key(value: &Value) -> bool {
    match value {
        Value::Sequence(items) => items.iter().any(has_complex_key),
        Value::Mapping(m) => m.iter().any(|(k, v)| {
            matches!(k, Value::Mapping(_) | Value::Sequence(_)) || has_complex_key(v)
        }),
        _ => false,
    }
}

fn untag(value: Value) -> Value {
    match value {
        Value::Tagged(t) => untag(t.value),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(untag).collect()),
        Value::Mapping(m) => {
            Value::Mapping(m.into_iter().map(|(k, v)| (untag(k), untag(v))).collect())
        }
        other => other,
    }
}

impl ModelCard {
    /// Parses a README.md. A file without front matter is a card with empty metadata.
    pub fn parse(text: &str) -> Result<Self, CardError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let Some(rest) = text
            .strip_prefix("---\n")
            .or_else(|| text.strip_prefix("---\r\n"))
        else {
            return Ok(ModelCard {
                metadata: Mapping::new(),
                body: text.to_string(),
            });
        };
        // The closing line is `---` alone.
        let mut offset = 0;
        let mut end = None;
        for line in rest.split_inclusive('\n') {
            if line.trim_end_matches(['\r', '\n']) == "---" {
                end = Some((offset, offset + line.len()));
                break;
            }
            offset += line.len();
        }
        let (yaml_end, body_start) = match end {
            Some(e) => e,
            None if rest.trim_end() == "---" || rest.ends_with("\n---") => {
                (rest.len() - 3, rest.len())
            }
            None => return Err(CardError::Unclosed),
        };
        let yaml = &rest[..yaml_end];
        if yaml.len() > MAX_FRONT_MATTER {
            return Err(CardError::TooLarge(yaml.len()));
        }
        let metadata = if yaml.trim().is_empty() {
            Mapping::new()
        } else {
            let value: Value =
                serde_yaml_ng::from_str(yaml).map_err(|e| CardError::Yaml(e.to_string()))?;
            let value = untag(value);
            if has_complex_key(&value) {
                // YAML allows a mapping or a list as a key (`? {a: 1}`); no card field is one,
                // the Hub's JSON `cardData` cannot carry one, and serde_yaml_ng's emitter
                // fails on some (issue 16, found by the `card` fuzz target).
                return Err(CardError::Yaml(
                    "a mapping or a list used as a key is not supported".into(),
                ));
            }
            match value {
                Value::Mapping(m) => m,
                Value::Null => Mapping::new(),
                _ => return Err(CardError::NotAMapping),
            }
        };
        Ok(ModelCard {
            metadata,
            body: rest[body_start..].to_string(),
        })
    }

    /// Renders the card: front matter (when there is any) then the body.
    /// A card from its front matter as JSON (the Hub API's `cardData`), with an empty body.
    /// `null` is an empty card; anything but an object or `null` is [`CardError::NotAMapping`].
    pub fn from_json(card_data: &serde_json::Value) -> Result<Self, CardError> {
        let metadata = match card_data {
            serde_json::Value::Null => Mapping::new(),
            serde_json::Value::Object(_) => match serde_yaml_ng::to_value(card_data) {
                Ok(Value::Mapping(m)) => m,
                _ => return Err(CardError::NotAMapping),
            },
            _ => return Err(CardError::NotAMapping),
        };
        Ok(ModelCard {
            metadata,
            body: String::new(),
        })
    }

    pub fn render(&self) -> String {
        if self.metadata.is_empty() {
            // A body that itself starts with `---` needs an empty front matter before it,
            // or it would read back as front matter.
            // `parse` strips one byte-order mark first, so look past one here too (issue 16:
            // a body of BOM + `---` came back from a render as unclosed front matter).
            let b = self.body.strip_prefix('\u{feff}').unwrap_or(&self.body);
            let starts_like_front_matter = b.starts_with("---\n") || b.starts_with("---\r\n");
            return if starts_like_front_matter {
                format!("---\n---\n{}", self.body)
            } else {
                self.body.clone()
            };
        }
        let yaml = match serde_yaml_ng::to_string(&self.metadata) {
            Ok(y) => y,
            // Never a panic on a card's contents: YAML is a superset of JSON, so the mapping
            // as one JSON line is still front matter (`parse` refuses the keys known to need
            // this).
            Err(_) => format!(
                "{}\n",
                serde_json::to_string(&self.metadata).unwrap_or_else(|_| "{}".into())
            ),
        };
        format!("---\n{yaml}---\n{}", self.body)
    }

    /// The metadata as JSON (the Hub's `cardData`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.metadata).unwrap_or(serde_json::Value::Null)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.metadata.get(key(field))
    }

    /// Sets a field, keeping its place if it exists (appended otherwise).
    pub fn set(&mut self, field: &str, value: impl Into<Value>) {
        self.metadata.insert(key(field), value.into());
    }

    fn string(&self, field: &str) -> Option<String> {
        self.get(field).and_then(scalar)
    }

    fn list(&self, field: &str) -> Vec<String> {
        self.get(field).map(strings).unwrap_or_default()
    }

    pub fn license(&self) -> Option<String> {
        self.string("license")
    }
    pub fn pipeline_tag(&self) -> Option<String> {
        self.string("pipeline_tag")
    }
    pub fn library_name(&self) -> Option<String> {
        self.string("library_name")
    }
    pub fn tags(&self) -> Vec<String> {
        self.list("tags")
    }
    /// `base_model_relation`: `adapter`, `merge`, `quantized` or `finetune` (the Hub infers
    /// it when the card does not say).
    pub fn base_model_relation(&self) -> Option<String> {
        self.string("base_model_relation")
    }
    pub fn datasets(&self) -> Vec<String> {
        self.list("datasets")
    }
    pub fn language(&self) -> Vec<String> {
        self.list("language")
    }
    /// Lineage: the models this one was fine-tuned (or otherwise derived) from.
    pub fn base_model(&self) -> Vec<String> {
        self.list("base_model")
    }

    /// Sets a list field; a single item is written as a plain string where the Hub does so
    /// (`base_model`), a list otherwise.
    pub fn set_list(&mut self, field: &str, items: &[String]) {
        let value = if field == "base_model" && items.len() == 1 {
            Value::String(items[0].clone())
        } else {
            Value::Sequence(items.iter().map(|s| Value::String(s.clone())).collect())
        };
        self.set(field, value);
    }

    /// Every result in `model-index`, flattened. Malformed entries are errors naming the field.
    pub fn results(&self) -> Result<Vec<EvalResult>, CardError> {
        let Some(index) = self.get("model-index") else {
            return Ok(Vec::new());
        };
        let field = |reason: &str| CardError::Field {
            field: "model-index".into(),
            reason: reason.into(),
        };
        let models = index.as_sequence().ok_or_else(|| field("must be a list"))?;
        let mut out = Vec::new();
        for model in models {
            let Some(results) = model.get("results") else {
                continue;
            };
            for r in results
                .as_sequence()
                .ok_or_else(|| field("`results` must be a list"))?
            {
                let task = r
                    .get("task")
                    .and_then(|t| t.get("type"))
                    .and_then(scalar)
                    .unwrap_or_default();
                let ds = r.get("dataset");
                let dataset = ds
                    .and_then(|d| d.get("type"))
                    .and_then(scalar)
                    .unwrap_or_default();
                let dataset_name = ds.and_then(|d| d.get("name")).and_then(scalar);
                let split = ds.and_then(|d| d.get("split")).and_then(scalar);
                let metrics = r
                    .get("metrics")
                    .and_then(Value::as_sequence)
                    .ok_or_else(|| field("a result has no `metrics` list"))?;
                for m in metrics {
                    let value = match m.get("value") {
                        Some(Value::Number(n)) => n.as_f64(),
                        Some(Value::String(s)) => s.trim().trim_end_matches('%').parse().ok(),
                        _ => None,
                    };
                    let value = value.ok_or_else(|| field("a metric has no numeric `value`"))?;
                    out.push(EvalResult {
                        task: task.clone(),
                        dataset: dataset.clone(),
                        dataset_name: dataset_name.clone(),
                        split: split.clone(),
                        metric: m.get("type").and_then(scalar).unwrap_or_default(),
                        metric_name: m.get("name").and_then(scalar),
                        value,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Replaces `model-index` with these results for one model, grouped by task and data set.
    pub fn set_results(&mut self, model_name: &str, results: &[EvalResult]) {
        type Group<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Vec<&'a EvalResult>,
        );
        let mut groups: Vec<Group<'_>> = Vec::new();
        for r in results {
            let k = (
                r.task.as_str(),
                r.dataset.as_str(),
                r.dataset_name.as_deref(),
                r.split.as_deref(),
            );
            match groups.iter_mut().find(|g| (g.0, g.1, g.2, g.3) == k) {
                Some(g) => g.4.push(r),
                None => groups.push((k.0, k.1, k.2, k.3, vec![r])),
            }
        }
        let mut list = Vec::new();
        for (task, dataset, name, split, rs) in groups {
            let mut t = Mapping::new();
            t.insert(key("type"), key(task));
            let mut d = Mapping::new();
            d.insert(key("type"), key(dataset));
            if let Some(n) = name {
                d.insert(key("name"), key(n));
            }
            if let Some(s) = split {
                d.insert(key("split"), key(s));
            }
            let metrics = rs
                .iter()
                .map(|r| {
                    let mut m = Mapping::new();
                    m.insert(key("type"), key(&r.metric));
                    m.insert(key("value"), Value::from(r.value));
                    if let Some(n) = &r.metric_name {
                        m.insert(key("name"), key(n));
                    }
                    Value::Mapping(m)
                })
                .collect();
            let mut entry = Mapping::new();
            entry.insert(key("task"), Value::Mapping(t));
            entry.insert(key("dataset"), Value::Mapping(d));
            entry.insert(key("metrics"), Value::Sequence(metrics));
            list.push(Value::Mapping(entry));
        }
        let mut model = Mapping::new();
        model.insert(key("name"), key(model_name));
        model.insert(key("results"), Value::Sequence(list));
        self.set("model-index", Value::Sequence(vec![Value::Mapping(model)]));
    }
}
